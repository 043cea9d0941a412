# The weft front end itself.
$ weft
? 2
! usage: weft COMMAND

$ weft no-such-command
? 2
! weft: unknown command 'no-such-command'
! usage: weft COMMAND

$ weft --help
? 0

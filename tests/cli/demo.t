# weft demo: registry, errors, and the core demos on small inputs (results checked by the demo).
$ weft demo --help
? 0
~ primes
~ digits

$ weft demo no-such-demo
? 2
! weft demo: unknown demo 'no-such-demo'

$ weft demo primes --limit 100000 --workers 2
? 0
~ primes found
~ 9592
~ thread pool
~ process pool

$ weft demo primes --workers 0
? 2
! bad --workers '0'

$ weft demo digits 999 12345
? 0
~ 13500
~ equal

$ weft demo digits 12x
? 2
! bad n '12x'

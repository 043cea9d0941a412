# weft orders load: help, usage errors, and an engine that is not there (every order given up:
# exit 1). The load itself is tested against a running engine by tests/orders/load.sh.
$ weft orders load --help
? 0
~ --steps A:B:S
~ Idempotency-Key
~ --acked FILE

$ weft orders load --rate 0
? 2
! --rate must be a rate > 0

$ weft orders load --steps 5k:1k:1k
? 2
! --steps must be A:B:S

$ weft orders load --hot-sku 2
? 2
! --hot-sku must be a share 0..1

$ weft orders load --url ftp://127.0.0.1:1
? 2
! --url must be http://HOST:PORT

$ weft orders load --connections 0
? 2
! --connections must be 1..100000

$ weft orders load nope
? 2
! unexpected argument 'nope'

$ weft orders load --url http://127.0.0.1:1 --rate 50 --duration 0.2 --retry-for 0 --sample 0
? 1
~ gave up 10
~ refused x10

# weft orders payment-mock and logistics: help and usage errors (the servers themselves are tested
# by test-orders-mock and tests/orders/*.sh).
$ weft orders payment-mock --help
? 0
~ Idempotency-Key
~ --timeout-rate

$ weft orders payment-mock --fail-rate 2
? 2
! --fail-rate: '2' is not a number in 0..1

$ weft orders payment-mock --latency 50:10
? 2
! --latency: '50:10' is not P50MS:P99MS

$ weft orders payment-mock --fail-rate 0.6 --timeout-rate 0.6
? 2
! --fail-rate plus --timeout-rate is over 1

$ weft orders payment-mock --listen nope
? 2
! --listen: 'nope' is not HOST:PORT

$ weft orders logistics --help
? 0
~ weft:ship:dead
~ --max-deliveries

$ weft orders logistics
? 2
! --redis URL is required

$ weft orders logistics --redis http://x
? 2
! is not redis://HOST:PORT[/DB]

$ weft orders logistics --redis redis://127.0.0.1:1 --db mysql://x
? 2
! unknown database URL 'mysql://x'

$ weft orders logistics --redis redis://127.0.0.1:1 --db sqlite:/nonexistent/x.db
? 2
! unable to open database file

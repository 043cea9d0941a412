#!/usr/bin/env bash
# scripts/services.sh: Redis and PostgreSQL start on loopback, answer, restart on the same port
# keeping PostgreSQL's data, and stop by pid, also when the script using them fails (the trap).
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
svc=$src/scripts/services.sh
dir=$(mktemp -d)
trap '"$svc" stop "$dir"; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

redis=$("$svc" start redis "$dir")
pg=$("$svc" start postgres "$dir")
[[ $redis == redis://127.0.0.1:* ]] || fail "redis url '$redis'"
[[ $pg == postgresql://weft@127.0.0.1:*/postgres ]] || fail "postgres url '$pg'"
rport=${redis##*:}
[ "$(redis-cli -p "$rport" set k v)" = OK ] || fail "redis SET"
psql -qtA "$pg" -c 'create table t(x int); insert into t values (42)' >/dev/null
[ "$(psql -qtA "$pg" -c 'show synchronous_commit')" = on ] || fail "synchronous_commit"
[ "$(psql -qtA "$pg" -c 'show fsync')" = on ] || fail "fsync"
[ "$("$svc" url redis "$dir")" = "$redis" ] || fail "url redis"

# A second start of the same server under the same DIR is refused.
if "$svc" start redis "$dir" 2>/dev/null; then fail "second start accepted"; fi

# Restart: the same URL; PostgreSQL keeps its rows.
old=$(cat "$dir/postgres.pid")
[ "$("$svc" restart postgres "$dir")" = "$pg" ] || fail "postgres restart url"
[ "$(cat "$dir/postgres.pid")" != "$old" ] || fail "postgres restart pid"
kill -0 "$old" 2>/dev/null && fail "old postgres still runs"
[ "$(psql -qtA "$pg" -c 'select x from t')" = 42 ] || fail "postgres lost its data"
[ "$("$svc" restart redis "$dir")" = "$redis" ] || fail "redis restart url"
[ "$(redis-cli -p "$rport" ping)" = PONG ] || fail "redis after restart"

# A failing user of the services stops them through its trap.
sub=$(mktemp -d -p "$dir")
( trap '"$svc" stop "$sub"' EXIT; "$svc" start redis "$sub" >/dev/null; exit 3 ) && fail "sub"
[ -f "$sub/redis.port" ] || fail "sub redis never started"
[ ! -f "$sub/redis.pid" ] || fail "sub redis pid file left"
if redis-cli -p "$(cat "$sub/redis.port")" ping >/dev/null 2>&1; then fail "sub redis still answers"; fi

# stop: both gone.
rpid=$(cat "$dir/redis.pid") ppid=$(cat "$dir/postgres.pid")
"$svc" stop "$dir"
kill -0 "$rpid" 2>/dev/null && fail "redis survived stop"
kill -0 "$ppid" 2>/dev/null && fail "postgres survived stop"
echo "services: ok"

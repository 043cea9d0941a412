#!/usr/bin/env bash
# weft orders logistics against a real Redis and PostgreSQL (and SQLite): every shipment applied
# exactly once when the consumer is killed (kill -9) between its commit and its XACK and restarted
# under its own name, or replaced by another consumer that claims its entries; poison entries go
# to weft:ship:dead after --max-deliveries deliveries; the stream ends empty.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
svc=$src/scripts/services.sh
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  "$svc" stop "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$dir"/w*.err; do [ -f "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" >&2; done; exit 1; }

redis=$("$svc" start redis "$dir")
pg=$("$svc" start postgres "$dir")
rcli() { redis-cli -p "${redis##*:}" "$@"; }
sql() { psql -qtAX "$pg" -c "$1"; }

schema="CREATE TABLE orders(id TEXT PRIMARY KEY, idem_key TEXT UNIQUE NOT NULL,
  body_hash TEXT NOT NULL, user_id TEXT, items TEXT, amount_cents BIGINT, payment_token TEXT,
  status TEXT NOT NULL, reason TEXT, created_ms BIGINT, completed_ms BIGINT, stages TEXT,
  updated_ms BIGINT);
CREATE TABLE shipments(order_id TEXT PRIMARY KEY, applied_ms BIGINT);"
sql "$schema"

# add_paid FROM TO: orders oFROM..oTO, paid, each with its stream entry.
add_paid() {
  sql "INSERT INTO orders(id, idem_key, body_hash, status, created_ms)
       SELECT 'o' || g, 'k' || g, 'h', 'paid', 0 FROM generate_series($1, $2) g"
  seq "$1" "$2" | awk '{printf "XADD weft:ship * order_id o%d items [] at_ms 1\n", $1}' | rcli >/dev/null
}

# wait_for CMD...: polls until CMD succeeds (bounded: 60 s).
wait_for() {
  local i
  for i in $(seq 1 600); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for: $*"
}
stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }
count_is() { [ "$(sql "$1")" = "$2" ]; }
pending_is() { [ "$(rcli xpending weft:ship logistics | head -1)" = "$1" ]; }

# start_worker NAME [ENV=...] -- [ARGS]: a worker in the background; its pid in $wpid.
start_worker() {
  local name=$1; shift
  env "$@" "$weft" orders logistics --redis "$redis" --db "$pg" --consumer "$name" --batch 100 \
    ${WARGS:-} >"$dir/w-$name.out" 2>"$dir/w-$name.err" &
  wpid=$!
  pids+=("$wpid")
}
stop_worker() { kill -TERM "$1"; wait "$1" || fail "worker exited with $?"; }

N=3000
add_paid 1 $N

# 1. Killed between commit and XACK, restarted under the same name.
start_worker c1 WEFT_ORDERS_LOGISTICS_STOP_BEFORE_ACK=1
wait_for stopped "$wpid"
[ "$(sql 'select count(*) from shipments')" = 100 ] || fail "first batch not committed"
pending_is 100 || fail "first batch not pending"
kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true
start_worker c1
wait_for count_is "select count(*) from orders where status = 'shipped'" $N
wait_for pending_is 0
stop_worker "$wpid"
grep -q "applied 2900, duplicates 100, dead-lettered 0" "$dir/w-c1.out" ||
  fail "restart: $(cat "$dir/w-c1.out")"
[ "$(sql 'select count(*) from shipments')" = $N ] || fail "shipments != orders"
[ "$(sql 'select count(*) from orders where completed_ms is null')" = 0 ] || fail "completed_ms"
[ "$(rcli xlen weft:ship)" = 0 ] || fail "acknowledged entries not deleted"

# 2. Killed the same way, and replaced by a consumer of another name, which claims its entries.
add_paid $((N + 1)) $((N + 500))
start_worker c2 WEFT_ORDERS_LOGISTICS_STOP_BEFORE_ACK=1
wait_for stopped "$wpid"
kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true
WARGS="--claim-idle-ms 300" start_worker c3
wait_for count_is "select count(*) from shipments" $((N + 500))
wait_for pending_is 0
stop_worker "$wpid"
grep -q "applied 400, duplicates 100, dead-lettered 0" "$dir/w-c3.out" ||
  fail "claim: $(cat "$dir/w-c3.out")"
[ "$(sql "select count(*) from orders where status <> 'shipped'")" = 0 ] || fail "not all shipped"

# 3. Poison: an unknown order, an order not paid, an entry without order_id. Each is refused
# --max-deliveries times (retried through XAUTOCLAIM), then dead-lettered and acknowledged; a good
# entry among them is applied.
sql "INSERT INTO orders(id, idem_key, body_hash, status) VALUES ('r1', 'kr1', 'h', 'reserved')"
add_paid 9001 9001
rcli xadd weft:ship '*' order_id nope-1 at_ms 1 >/dev/null
rcli xadd weft:ship '*' order_id r1 at_ms 1 >/dev/null
rcli xadd weft:ship '*' something else >/dev/null
WARGS="--claim-idle-ms 100 --max-deliveries 3" start_worker c4
wait_for count_is "select count(*) from shipments where order_id = 'o9001'" 1
dead_is() { [ "$(rcli xlen weft:ship:dead)" = "$1" ]; }
wait_for dead_is 3
wait_for pending_is 0
stop_worker "$wpid"
dead=$(rcli xrange weft:ship:dead - +)
for want in nope-1 "unknown order" r1 "order is reserved" "no order_id field"; do
  grep -qF -- "$want" <<<"$dead" || fail "dead letters lack '$want': $dead"
done
[ "$(grep -cx 3 <<<"$dead")" -ge 3 ] || fail "dead letters not after 3 deliveries: $dead"
[ "$(sql "select status from orders where id = 'r1'")" = reserved ] || fail "r1 changed"
grep -q "applied 1, duplicates 0, dead-lettered 3" "$dir/w-c4.out" ||
  fail "poison: $(cat "$dir/w-c4.out")"

# 4. The same on SQLite: killed before XACK, restarted, applied once.
if command -v sqlite3 >/dev/null; then
  db=$dir/orders.db
  sqlite3 "$db" "PRAGMA journal_mode=WAL; $schema" >/dev/null
  sqlite3 "$db" "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 1000)
    INSERT INTO orders(id, idem_key, body_hash, status) SELECT 's' || x, 'k' || x, 'h', 'paid' FROM g"
  seq 1 1000 | awk '{printf "XADD weft:ship * order_id s%d at_ms 1\n", $1}' | rcli >/dev/null
  pg=sqlite:$db start_worker s1 WEFT_ORDERS_LOGISTICS_STOP_BEFORE_ACK=1
  wait_for stopped "$wpid"
  kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true
  pg=sqlite:$db start_worker s1
  sq_shipped() { [ "$(sqlite3 "$db" "select count(*) from orders where status = 'shipped'")" = 1000 ]; }
  wait_for sq_shipped
  wait_for pending_is 0
  stop_worker "$wpid"
  grep -q "applied 900, duplicates 100, dead-lettered 0" "$dir/w-s1.out" ||
    fail "sqlite: $(cat "$dir/w-s1.out")"
  [ "$(sqlite3 "$db" "select count(*) from orders where status = 'shipped'")" = 1000 ] ||
    fail "sqlite: not all shipped"
else
  echo "logistics: sqlite3 not installed, SQLite part skipped"
fi
# 5. Started before the engine created the tables: it waits for them, then ships.
sql "CREATE DATABASE late" >/dev/null
late=${pg%/postgres}/late
rcli flushall >/dev/null
pg=$late start_worker late1
grep_err() { grep -q "waiting for the schema" "$dir/w-late1.err"; }
wait_for grep_err
psql -qtAX "$late" -c "$schema" >/dev/null
psql -qtAX "$late" -c "INSERT INTO orders(id, idem_key, body_hash, status) VALUES ('l1', 'kl1', 'h', 'paid')"
rcli xadd weft:ship '*' order_id l1 at_ms 1 >/dev/null
late_shipped() { [ "$(psql -qtAX "$late" -c "select status from orders where id = 'l1'")" = shipped ]; }
wait_for late_shipped
stop_worker "$wpid"

# 6. Redis restarted under a running worker (its data gone): it reconnects, re-creates the group
# and ships what is added afterwards.
pg=$late start_worker late2
psql -qtAX "$late" -c "INSERT INTO orders(id, idem_key, body_hash, status) VALUES ('l2', 'kl2', 'h', 'paid')"
"$svc" restart redis "$dir" >/dev/null
rcli xadd weft:ship '*' order_id l2 at_ms 1 >/dev/null
l2_shipped() { [ "$(psql -qtAX "$late" -c "select status from orders where id = 'l2'")" = shipped ]; }
wait_for l2_shipped
grep -q "connection lost; reconnecting" "$dir/w-late2.err" || fail "no reconnect logged"
stop_worker "$wpid"
echo "logistics: ok"

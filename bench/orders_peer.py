#!/usr/bin/env python3
"""The brief's order engine (挑战 4) in Python, the peer of `weft orders serve` in
bench/bench-orders.sh: FastAPI on uvicorn (asyncio) takes the orders; create is an asyncpg INSERT;
stock is reserved under a Redis lock per SKU (SET NX PX, random token, Lua compare-and-delete) in
a ProcessPoolExecutor; payment calls the payment mock with httpx, retrying with the same
Idempotency-Key; logistics is an XADD to a stream and a consumer-group task; statistics are
aggregated in a separate process fed by a multiprocessing.Queue. Same HTTP API and tables as
weft, so the same load and the same SQL measure both.

usage: PEER_DB=postgresql://... PEER_REDIS=redis://... PEER_PAYMENT=http://... \
       orders_peer.py HOST PORT
"""
import asyncio, hashlib, json, multiprocessing as mp, os, sys, time, uuid
from concurrent.futures import ProcessPoolExecutor

import asyncpg, httpx, redis, redis.asyncio as aioredis, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

DB, REDIS, PAY = os.environ["PEER_DB"], os.environ["PEER_REDIS"], os.environ["PEER_PAYMENT"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders(id TEXT PRIMARY KEY, idem_key TEXT UNIQUE NOT NULL,
  body_hash TEXT NOT NULL, user_id TEXT, items TEXT, amount_cents BIGINT, payment_token TEXT,
  status TEXT NOT NULL, reason TEXT, created_ms BIGINT, completed_ms BIGINT, stages TEXT,
  updated_ms BIGINT);
CREATE TABLE IF NOT EXISTS stock(sku TEXT PRIMARY KEY, available BIGINT NOT NULL
  CHECK(available >= 0), reserved BIGINT NOT NULL, fence BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS stock_moves(order_id TEXT, sku TEXT, kind TEXT, qty BIGINT,
  PRIMARY KEY(order_id, sku, kind));
CREATE TABLE IF NOT EXISTS stock_sets(sku TEXT, qty BIGINT, at_ms BIGINT,
  delta BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS shipments(order_id TEXT PRIMARY KEY, applied_ms BIGINT);
"""
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
ms = lambda: int(time.time() * 1000)
app, g = FastAPI(), {}
err = lambda code, msg: JSONResponse({"error": msg}, code)

_r = None
def reserve(items):  # in a worker process: lock each SKU in order, check, decrement, unlock
    global _r
    _r = _r or redis.Redis.from_url(REDIS)
    need = {}
    for i in items: need[i["sku"]] = need.get(i["sku"], 0) + i["qty"]
    token, held = uuid.uuid4().hex, []
    try:
        for s in sorted(need):
            while not _r.set(f"peer:lock:{s}", token, nx=True, px=2000): time.sleep(0.0002)
            held.append(s)
        avail = _r.mget([f"weft:stock:{s}" for s in held])
        if any(a is None or int(a) < need[s] for s, a in zip(held, avail)): return False
        p = _r.pipeline(transaction=False)
        for s in held: p.decrby(f"weft:stock:{s}", need[s])
        p.execute()
        return True
    finally:
        for s in held: _r.eval(RELEASE, 1, f"peer:lock:{s}", token)

def stats(q):  # the CPU side: per-SKU and revenue aggregates, in their own process
    n, revenue, per_sku = 0, 0, {}
    while (m := q.get()) is not None:
        n, revenue = n + 1, revenue + m[0]
        for sku, qty in m[1]: per_sku[sku] = per_sku.get(sku, 0) + qty
    print(f"peer stats: {n} orders, revenue {revenue}, {len(per_sku)} skus", file=sys.stderr)

@app.on_event("startup")
async def start():
    g["db"] = await asyncpg.create_pool(DB, min_size=4, max_size=24)
    await g["db"].execute(SCHEMA)
    g["r"] = aioredis.Redis.from_url(REDIS)
    try: await g["r"].xgroup_create("peer:ship", "logistics", id="0", mkstream=True)
    except redis.ResponseError: pass
    g["http"] = httpx.AsyncClient(timeout=1.0, limits=httpx.Limits(max_connections=512))
    g["procs"] = ProcessPoolExecutor(2)
    g["q"] = mp.Queue(); g["stats"] = mp.Process(target=stats, args=(g["q"],)); g["stats"].start()
    g["tasks"] = set(); g["ship"] = asyncio.create_task(logistics())

@app.on_event("shutdown")
async def stop():
    g["ship"].cancel(); g["q"].put(None); g["stats"].join(); g["procs"].shutdown()
    await g["http"].aclose(); await g["db"].close()

@app.get("/healthz")
async def healthz(): return {"status": "ok"}

@app.put("/stock/{sku}")
async def put_stock(sku: str, req: Request):
    qty = (await req.json()).get("qty")
    if not isinstance(qty, int) or qty < 0: return err(400, "qty: a non-negative integer is required")
    async with g["db"].acquire() as c, c.transaction():
        old = await c.fetchval("SELECT available FROM stock WHERE sku=$1", sku) or 0
        await c.execute("INSERT INTO stock VALUES($1,$2,0) ON CONFLICT(sku) DO UPDATE SET available=$2", sku, qty)
        await c.execute("INSERT INTO stock_sets VALUES($1,$2,$3,$4)", sku, qty, ms(), qty - old)
    await g["r"].set(f"weft:stock:{sku}", qty)
    return {"sku": sku, "available": qty}

@app.post("/orders")
async def create(req: Request):
    key, raw = req.headers.get("idempotency-key"), await req.body()
    if not key or len(key) > 255: return err(400, "Idempotency-Key header: 1 to 255 bytes required")
    if len(raw) > 65536: return err(413, "body over 64 KiB")
    try:
        o = json.loads(raw); items = o["items"]; amount = o["amount_cents"]
        assert isinstance(o["user"], str) and isinstance(o["payment_token"], str) and type(amount) is int
        assert isinstance(items, list) and 0 < len(items) <= 100
        assert all(isinstance(i["sku"], str) and type(i["qty"]) is int and i["qty"] > 0 for i in items)
    except Exception: return err(400, "order: user, items (1..100 of sku, qty > 0), amount_cents, payment_token required")
    h, oid, now = hashlib.sha256(raw).hexdigest(), uuid.uuid4().hex, ms()
    async with g["db"].acquire() as c:
        ok = await c.fetchval("INSERT INTO orders(id, idem_key, body_hash, user_id, items, amount_cents,"
            " payment_token, status, created_ms, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,'accepted',$8,$8)"
            " ON CONFLICT(idem_key) DO NOTHING RETURNING id", oid, key, h, o["user"], json.dumps(items),
            amount, o["payment_token"], now)
        if ok is None:
            old = await c.fetchrow("SELECT id, body_hash FROM orders WHERE idem_key=$1", key)
            if old["body_hash"] != h: return err(422, "Idempotency-Key used with another body")
            return JSONResponse({"id": old["id"], "status": "accepted"}, 200)
    t = asyncio.create_task(pipeline(oid, items, amount)); g["tasks"].add(t); t.add_done_callback(g["tasks"].discard)
    return JSONResponse({"id": oid, "status": "accepted"}, 201)

async def status(c, oid, new, old, reason=None):
    await c.execute("UPDATE orders SET status=$2::text, reason=$4::text, updated_ms=$5::bigint, completed_ms="
                    "CASE WHEN $2::text IN ('rejected','payment_failed') THEN $5::bigint END WHERE id=$1 AND status=$3",
                    oid, new, old, reason, ms())

async def moves(c, oid, items, kind, sign):
    for i in sorted(items, key=lambda i: i["sku"]):
        await c.execute("INSERT INTO stock_moves VALUES($1,$2,$3,$4)", oid, i["sku"], kind, i["qty"])
        await c.execute("UPDATE stock SET available=available-$1, reserved=reserved+$1 WHERE sku=$2", sign * i["qty"], i["sku"])

async def pay(oid, amount, token):
    for attempt in range(6):
        try:
            r = await g["http"].post(PAY + "/pay", headers={"Idempotency-Key": oid},
                                     json={"order_id": oid, "amount_cents": amount, "token": token})
            if r.status_code in (200, 402): return r.status_code == 200
        except httpx.HTTPError: pass
        await asyncio.sleep(0.05 * 2 ** attempt)
    return False

async def pipeline(oid, items, amount):
    db = g["db"]
    if not await asyncio.get_running_loop().run_in_executor(g["procs"], reserve, items):
        async with db.acquire() as c: return await status(c, oid, "rejected", "accepted", "out of stock")
    async with db.acquire() as c, c.transaction():
        await moves(c, oid, items, "reserve", 1); await status(c, oid, "reserved", "accepted")
    if not await pay(oid, amount, "tok"):
        async with db.acquire() as c, c.transaction():
            await moves(c, oid, items, "release", -1); await status(c, oid, "payment_failed", "reserved", "payment")
        for i in items: await g["r"].incrby(f"weft:stock:{i['sku']}", i["qty"])
        return
    async with db.acquire() as c: await status(c, oid, "paid", "reserved")
    await g["r"].xadd("peer:ship", {"order_id": oid, "at_ms": ms()})
    g["q"].put((amount, [(i["sku"], i["qty"]) for i in items]))

async def logistics():  # the consumer group worker, as a task of the same loop
    while True:
        got = await g["r"].xreadgroup("logistics", "peer", {"peer:ship": ">"}, count=128, block=1000)
        for _, entries in got or []:
            async with g["db"].acquire() as c, c.transaction():
                for _, f in entries:
                    oid = f[b"order_id"].decode()
                    await c.execute("INSERT INTO shipments VALUES($1,$2) ON CONFLICT DO NOTHING", oid, ms())
                    await c.execute("UPDATE orders SET status='shipped', completed_ms=$2, updated_ms=$2"
                                    " WHERE id=$1 AND status='paid'", oid, ms())
            await g["r"].xack("peer:ship", "logistics", *[i for i, _ in entries])

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    print(f"orders_peer: listening on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

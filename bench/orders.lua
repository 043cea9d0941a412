-- wrk script for bench/bench-orders.sh: POST /orders with a unique Idempotency-Key per request.
-- Environment: ORDERS_RUN (a prefix unique to the run), ORDERS_SKUS (number of SKUs, default
-- 100; 1 = one hot SKU). Counts answers by status and prints "orders: 201=N 200=N 409=N 503=N
-- other=N" when done.
local counter, threads = 0, {}
local run = os.getenv("ORDERS_RUN") or tostring(os.time())
local skus = tonumber(os.getenv("ORDERS_SKUS") or "100")

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  created, ok, conflict, busy, other = 0, 0, 0, 0, 0
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  counter = counter + 1
  local key = string.format("%s-%d-%d", run, tid or 0, counter)
  local sku = string.format("sku-%d", math.random(skus))
  local body = string.format(
    '{"user":"u%d","items":[{"sku":"%s","qty":1}],"amount_cents":1999,"payment_token":"tok_%s"}',
    counter % 1000, sku, key)
  return wrk.format("POST", "/orders",
    {["Idempotency-Key"] = key, ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 200 then ok = ok + 1
  elseif status == 409 then conflict = conflict + 1
  elseif status == 503 then busy = busy + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local t = {0, 0, 0, 0, 0}
  for _, th in ipairs(threads) do
    t[1] = t[1] + th:get("created"); t[2] = t[2] + th:get("ok")
    t[3] = t[3] + th:get("conflict"); t[4] = t[4] + th:get("busy"); t[5] = t[5] + th:get("other")
  end
  io.write(string.format("orders: 201=%d 200=%d 409=%d 503=%d other=%d\n", t[1], t[2], t[3], t[4], t[5]))
  io.write(string.format("latency_us: p50=%d p99=%d\n", latency:percentile(50), latency:percentile(99)))
end

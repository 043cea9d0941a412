"""The traffic of `weft orders load`, for users who know Locust (Debian's python3-locust).

    locust -f bench/locustfile.py --headless -u 200 -r 200 -t 30s --host http://127.0.0.1:8080

Each user sends POST /orders at a constant rate (constant_throughput: ORDERS_PER_USER per
second), with the same body mix as `weft orders load`: uniform users, a hot SKU taking HOT_SKU of
the items, BAD of the requests deliberately bad (expected 400), and every unacknowledged request
(transport error, 409, 5xx) retried with the SAME Idempotency-Key, as a real client would.

Caveat, printed by bench/bench-orders-load.sh beside our figures: Locust's users are a closed
loop. A user waits for its answer before it sends the next request, so when the server slows
down the offered rate drops with it and the slow period is sampled by fewer requests: tail
latency is under-reported (coordinated omission). `weft orders load` schedules each request at
its instant regardless and measures from that instant.

Environment: SKUS (100), SKU_PREFIX (sku-), HOT_SKU (0), BAD (0), ORDERS_PER_USER (10),
RETRIES (10).
"""
import json
import os
import random
import time
import uuid

from locust import FastHttpUser, constant_throughput, task

SKUS = int(os.environ.get("SKUS", "100"))
PREFIX = os.environ.get("SKU_PREFIX", "sku-")
HOT = float(os.environ.get("HOT_SKU", "0"))
BAD = float(os.environ.get("BAD", "0"))
RATE = float(os.environ.get("ORDERS_PER_USER", "10"))
RETRIES = int(os.environ.get("RETRIES", "10"))
RUN = uuid.uuid4().hex[:12]

BAD_BODIES = [
    '{"user":"u1","items":[{"sku":"sku-0","qty":0}],"amount_cents":100,"payment_token":"t"}',
    '{"user":"u1","items":[],"amount_cents":100,"payment_token":"t"}',
    '{"user":',
]


def sku():
    if SKUS <= 1 or random.random() < HOT:
        return PREFIX + "0"
    return PREFIX + str(random.randint(1, SKUS - 1))


class OrderUser(FastHttpUser):
    wait_time = constant_throughput(RATE)
    seq = 0

    @task
    def order(self):
        OrderUser.seq += 1
        key = "lc-%s-%d-%d" % (RUN, id(self) & 0xFFFF, OrderUser.seq)
        if random.random() < BAD:
            with self.client.post("/orders", data=random.choice(BAD_BODIES),
                                  headers={"Idempotency-Key": key,
                                           "Content-Type": "application/json"},
                                  name="POST /orders (bad)", catch_response=True) as r:
                if r.status_code in (400, 413):
                    r.success()
                else:
                    r.failure("expected 400, got %s" % r.status_code)
            return
        body = json.dumps({"user": "u%d" % random.randint(0, 999),
                           "items": [{"sku": sku(), "qty": 1}],
                           "amount_cents": random.randint(100, 9999),
                           "payment_token": "tok_" + key})
        for attempt in range(RETRIES + 1):
            with self.client.post("/orders", data=body,
                                  headers={"Idempotency-Key": key,
                                           "Content-Type": "application/json"},
                                  name="POST /orders", catch_response=True) as r:
                if r.status_code in (200, 201):
                    r.success()
                    return
                if r.status_code in (0, 409) or r.status_code >= 500:
                    r.failure("retry %d: status %s" % (attempt, r.status_code))
                    time.sleep(min(1.0, 0.02 * 2 ** attempt) * random.random())
                    continue
                r.failure("status %s" % r.status_code)
                return

"""Peers of bench-dist: the same no-op tasks through Celery (Redis broker) and RQ on the same
Redis, Debian's python3-celery and python3-rq.

    dist_peer.py rq|celery N WORKERS REDIS_URL

Prints "peer <name> N tasks, W workers: T s, R tasks/s". Each task increments a Redis counter
(one extra round trip) so that the end is seen without a result backend; the clock runs from the
first submission until the counter reaches N. RQ: jobs enqueued in one pipeline, then W burst
workers (`rq worker --burst`, their start-up included); Celery: W prefork processes started and
ready before the clock starts, tasks sent one by one (apply_async)."""
import os
import subprocess
import sys
import time

import redis

URL = os.environ.get("DIST_PEER_URL", "redis://127.0.0.1:6379")
KEY = "dist_peer:count"


_conn = None


def noop():
    global _conn
    if _conn is None:
        _conn = redis.Redis.from_url(URL)
    _conn.incr(KEY)


def _celery_app():
    from celery import Celery

    app = Celery("dist_peer", broker=URL)
    app.conf.task_ignore_result = True
    app.conf.worker_prefetch_multiplier = 4
    app.conf.broker_connection_retry_on_startup = True
    app.task(name="dist_peer.noop")(noop)
    return app


if "celery" in sys.argv[0] or os.environ.get("DIST_PEER_CELERY"):
    app = _celery_app()


def wait_count(r, n):
    while int(r.get(KEY) or 0) < n:
        time.sleep(0.005)


def main():
    mode, n, workers, url = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    env = dict(os.environ, DIST_PEER_URL=url, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    os.environ.update(env)
    global URL
    URL = url
    r = redis.Redis.from_url(url)
    r.flushdb()
    if mode == "rq":
        from rq import Queue

        q = Queue("bench", connection=r)
        t0 = time.monotonic()
        jobs = [Queue.prepare_data("dist_peer.noop", result_ttl=0) for _ in range(n)]
        for i in range(0, n, 1000):
            q.enqueue_many(jobs[i:i + 1000])
        ps = [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "-q", "--url",
                                url, "bench"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for _ in range(workers)]
        wait_count(r, n)
        t = time.monotonic() - t0
        for p in ps:
            p.wait()
    elif mode == "celery":
        env["DIST_PEER_CELERY"] = "1"
        os.environ["DIST_PEER_CELERY"] = "1"
        a = _celery_app()
        p = subprocess.Popen([sys.executable, "-m", "celery", "-A", "dist_peer", "worker", "-c",
                              str(workers), "--pool=prefork", "-l", "ERROR", "--without-gossip",
                              "--without-mingle", "--without-heartbeat"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not a.control.ping(timeout=0.5):
                if time.monotonic() > deadline:
                    raise SystemExit("celery worker did not start")
            t0 = time.monotonic()
            for _ in range(n):
                a.send_task("dist_peer.noop")
            wait_count(r, n)
            t = time.monotonic() - t0
        finally:
            p.terminate()
            p.wait()
    else:
        raise SystemExit("usage: dist_peer.py rq|celery N WORKERS REDIS_URL")
    print(f"peer {mode:<10} {n} tasks, {workers} workers: {t:.3f} s, {n / t:.0f} tasks/s",
          flush=True)


if __name__ == "__main__":
    main()

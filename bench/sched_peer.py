#!/usr/bin/python3
"""Peer for bench/bench-sched.c: the seed's TaskScheduler design with Python's executors.

    sched_peer.py N

Runs N items of the benchmark's mixed workload (4 ms of CPU work, then a 100 ms wait) with
ProcessPoolExecutor(4) alone, ThreadPoolExecutor(10) alone, and the seed's hybrid (CPU to the
process pool, I/O to the thread pool), and prints one line each:

    python_<mode> items=N seconds=S items_per_s=R
"""
import concurrent.futures as cf
import sys
import time


def burn():
    end = time.thread_time() + 0.004
    h = 1
    while time.thread_time() < end:
        for _ in range(500):
            h = (h * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return h


def wait():
    time.sleep(0.1)


def both():
    burn()
    wait()


def run(label, n, fn):
    t0 = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t0
    print(f"python_{label} items={n} seconds={dt:.3f} items_per_s={n / dt:.0f}", flush=True)


def only(executor_cls, workers):
    def go(n):
        with executor_cls(max_workers=workers) as ex:
            for f in [ex.submit(both) for _ in range(n)]:
                f.result()
    return go


def hybrid(n):
    # The seed's TaskScheduler: CPU tasks to a ProcessPoolExecutor(4), IO to a ThreadPoolExecutor(10).
    with cf.ProcessPoolExecutor(max_workers=4) as cpu, cf.ThreadPoolExecutor(max_workers=10) as io:
        pending = [cpu.submit(burn) for _ in range(n)]
        waits = []
        for f in cf.as_completed(pending):
            f.result()
            waits.append(io.submit(wait))
        for w in waits:
            w.result()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    run("processes4", max(8, n // 8), only(cf.ProcessPoolExecutor, 4))
    run("threads10", max(8, n // 2), only(cf.ThreadPoolExecutor, 10))
    run("seed_hybrid", n, hybrid)


if __name__ == "__main__":
    main()

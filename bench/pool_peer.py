#!/usr/bin/python3
"""Peer for bench/bench-pool.c: Python's ThreadPoolExecutor running no-op tasks.

    pool_peer.py N [WORKERS]

Submits N no-op tasks one by one in chunks of 65536 (waiting for each chunk, as the C
benchmark does with caller-owned records) and prints one line:

    python_tpe tasks=N workers=W seconds=S tasks_per_s=R
"""
import concurrent.futures as cf
import os
import sys
import time


def nop():
    return None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else len(os.sched_getaffinity(0))
    chunk = 65536
    with cf.ThreadPoolExecutor(max_workers=workers) as ex:
        ex.submit(nop).result()  # start the first worker outside the timed part
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(chunk, n - done)
            fs = [ex.submit(nop) for _ in range(k)]
            cf.wait(fs)
            done += k
        dt = time.perf_counter() - t0
    print(f"python_tpe tasks={n} workers={workers} seconds={dt:.3f} tasks_per_s={n / dt:.0f}")


if __name__ == "__main__":
    main()

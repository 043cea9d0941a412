#!/usr/bin/env python3
"""Peer for bench-procpool: Python's ProcessPoolExecutor doing the same work.

Usage: procpool_peer.py N [WORKERS [WINDOW]]
Prints one line per measurement, "<name> <round trips per second>", for the C benchmark to
parse: 'noop' (submit N no-op tasks, a future each, keeping WINDOW in flight: when WINDOW are
outstanding, wait for the oldest) and 'arg4k' (the same with a 4 KiB bytes argument that the
task returns).
"""
import collections
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def noop():
    return None


def echo(b):
    return b


def run(ex, n, window, fn, *args):
    t0 = time.perf_counter()
    pending = collections.deque()
    for _ in range(n):
        if len(pending) >= window:
            pending.popleft().result()
        pending.append(ex.submit(fn, *args))
    while pending:
        pending.popleft().result()
    return n / (time.perf_counter() - t0)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else (os.cpu_count() or 1)
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    arg = bytes(range(256)) * 16  # 4 KiB
    with ProcessPoolExecutor(max_workers=workers) as ex:
        list(ex.map(noop_warm, range(workers * 4)))  # start the workers first
        print("noop %.0f" % run(ex, n, window, noop), flush=True)
        print("arg4k %.0f" % run(ex, n, window, echo, arg), flush=True)


def noop_warm(_):
    return None


if __name__ == "__main__":
    main()

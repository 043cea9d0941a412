#!/usr/bin/env python3
"""The seed's threaded crawler, as a peer for bench/bench-crawl.sh: requests with a
ThreadPoolExecutor of 5 workers (one requests.Session per thread, so connections are reused),
BeautifulSoup for the title and the meta description.

usage: crawl_peer_threads.py URLFILE [WORKERS]
prints: pages N ok N seconds S pages_per_s R
"""
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from bs4 import BeautifulSoup

local = threading.local()


def fetch(url):
    s = getattr(local, "session", None)
    if s is None:
        s = local.session = requests.Session()
    t0 = time.perf_counter()
    try:
        r = s.get(url, timeout=30)
    except requests.RequestException:
        return None
    soup = BeautifulSoup(r.content, "html.parser")
    title = soup.title.string.strip() if soup.title and soup.title.string else None
    meta = soup.find("meta", attrs={"name": lambda v: v and v.lower() == "description"})
    desc = meta.get("content") if meta else None
    return r.status_code, title, desc, (time.perf_counter() - t0) * 1000


def main():
    urls = [l.strip() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = list(ex.map(fetch, urls))
    secs = time.perf_counter() - t0
    ok = sum(1 for r in results if r and r[0] == 200 and r[1])
    print(f"pages {len(urls)} ok {ok} seconds {secs:.3f} pages_per_s {len(urls) / secs:.1f}")


if __name__ == "__main__":
    main()

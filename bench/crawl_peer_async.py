#!/usr/bin/env python3
"""The seed's asyncio crawler, as a peer for bench/bench-crawl.sh: aiohttp with at most 100
requests in flight (one ClientSession, so connections are reused), BeautifulSoup for the title
and the meta description.

usage: crawl_peer_async.py URLFILE [CONCURRENCY]
prints: pages N ok N seconds S pages_per_s R
"""
import asyncio
import sys
import time

import aiohttp
from bs4 import BeautifulSoup


async def fetch(session, sem, url):
    async with sem:
        t0 = time.perf_counter()
        try:
            async with session.get(url) as r:
                body = await r.read()
                status = r.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None
    soup = BeautifulSoup(body, "html.parser")
    title = soup.title.string.strip() if soup.title and soup.title.string else None
    meta = soup.find("meta", attrs={"name": lambda v: v and v.lower() == "description"})
    desc = meta.get("content") if meta else None
    return status, title, desc, (time.perf_counter() - t0) * 1000


async def crawl(urls, concurrency):
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        return await asyncio.gather(*(fetch(session, sem, u) for u in urls))


def main():
    urls = [l.strip() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    t0 = time.perf_counter()
    results = asyncio.run(crawl(urls, concurrency))
    secs = time.perf_counter() - t0
    ok = sum(1 for r in results if r and r[0] == 200 and r[1])
    print(f"pages {len(urls)} ok {ok} seconds {secs:.3f} pages_per_s {len(urls) / secs:.1f}")


if __name__ == "__main__":
    main()

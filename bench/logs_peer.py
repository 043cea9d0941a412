#!/usr/bin/env python3
"""The seed's log analyzer (challenge 2), written the way the seed describes it: a regex per line,
collections.Counter, ProcessPoolExecutor over byte ranges of the file, a merge in the parent.
Used by bench/bench-logs.sh as the peer for `weft logs`.

    logs_peer.py FILE [--workers N]      prints a JSON summary (lines, status, top 10 IPs, avg)
"""
import json
import os
import re
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

LINE = re.compile(
    rb'^(\S+) \S+ \S+ \[\d{2}/\w{3}/\d{4}:(\d{2}):\d{2}:\d{2} [^\]]*\] "[^"]*" (\d{3}) (\S+)'
    rb'(?: ([\d.]+))?\r?$')


def split_file_into_chunks(path, n):
    size = os.path.getsize(path)
    step = max(1, -(-size // n))
    return [(path, start, min(start + step, size)) for start in range(0, size, step)]


def analyze_log_chunk(chunk):
    """Analyzes the lines that start in [start, end)."""
    path, start, end = chunk
    stats = {'hourly': Counter(), 'status': Counter(), 'ips': Counter(), 'rt_sum': 0.0,
             'rt_n': 0, 'lines': 0, 'bad': 0}
    with open(path, 'rb') as f:
        if start:
            f.seek(start - 1)
            f.readline()  # finish the line that started before us
        pos = f.tell()
        while pos < end:
            line = f.readline()
            if not line:
                break
            pos += len(line)
            stats['lines'] += 1
            m = LINE.match(line.rstrip(b'\n'))
            if not m:
                stats['bad'] += 1
                continue
            stats['ips'][m.group(1)] += 1
            stats['hourly'][int(m.group(2))] += 1
            stats['status'][m.group(3).decode()] += 1
            if m.group(5):
                stats['rt_sum'] += float(m.group(5))
                stats['rt_n'] += 1
    return stats


def merge_stats(all_stats):
    total = {'hourly': Counter(), 'status': Counter(), 'ips': Counter(), 'rt_sum': 0.0,
             'rt_n': 0, 'lines': 0, 'bad': 0}
    for s in all_stats:
        for k in ('hourly', 'status', 'ips'):
            total[k].update(s[k])
        for k in ('rt_sum', 'rt_n', 'lines', 'bad'):
            total[k] += s[k]
    return total


def analyze_log_file(path, num_workers):
    chunks = split_file_into_chunks(path, num_workers * 4)
    with ProcessPoolExecutor(max_workers=num_workers) as executor:
        results = executor.map(analyze_log_chunk, chunks)
        return merge_stats(list(results))


def main():
    path = sys.argv[1]
    workers = int(sys.argv[sys.argv.index('--workers') + 1]) if '--workers' in sys.argv else 2
    t = analyze_log_file(path, workers)
    top = sorted(t['ips'].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    print(json.dumps({
        'lines': t['lines'], 'malformed': t['bad'],
        'hourly': [t['hourly'][h] for h in range(24)],
        'status': {k: t['status'][k] for k in sorted(t['status'])},
        'top_ips': [[ip.decode(), n] for ip, n in top],
        'distinct_ips': len(t['ips']),
        'avg': round(t['rt_sum'] / t['rt_n'], 6) if t['rt_n'] else 0,
    }))


if __name__ == '__main__':
    main()

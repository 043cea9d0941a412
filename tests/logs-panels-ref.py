#!/usr/bin/env python3
"""Independent reference for the GoAccess panels of `weft logs` (tests/test-logs.c runs it).

usage: logs-panels-ref.py LOG JSON [host]

Parses LOG (combined-rt lines, or with "host" the same lines preceded by "$host ") with a
regular expression, counts every panel the obvious way (dicts and sets over whole texts), and
compares with weft's JSON (written with every panel on and a top-N larger than any panel).
Prints "ok" or the first difference, and exits 0 or 1.
"""
import ipaddress
import json
import re
import sys
import urllib.parse

MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
Q = r'"((?:[^"\\]|\\.)*)"'
LINE = re.compile(r'^(\S+) \S+ \S+ \[(\d\d)/(\w{3})/(\d{4}):(\d\d):(\d\d):\d\d [+-]\d{4}\] ' + Q +
                  r' (\d{3}) (\d+|-) ' + Q + ' ' + Q + r' (\S+)$')


def client(text):
    a = ipaddress.ip_address(text)
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return a


def decode(path):
    # %XX decoded except %00 (kept as written), as bytes, shown as UTF-8 (invalid -> U+FFFD)
    out = bytearray()
    b = path.encode("latin-1")
    i = 0
    while i < len(b):
        if b[i] == 0x25 and i + 2 < len(b) and re.match(rb"[0-9A-Fa-f]{2}", b[i + 1:i + 3]) \
                and b[i + 1:i + 3] != b"00":
            out.append(int(b[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8", "replace")


def secs(us):
    s = "%d.%06d" % (us // 1000000, us % 1000000)
    s = s.rstrip("0")
    return s.rstrip(".")


def rt_us(t):
    if t == "-":
        return None
    whole, _, frac = t.partition(".")
    return int(whole) * 1000000 + int((frac + "000000")[:6] or 0)


def site(ref):
    i = ref.find("://")
    b = ref[i + 3:] if i >= 0 else ref
    for c in "/?":
        j = b.find(c)
        if j >= 0:
            b = b[:j]
    return b


class Row:
    __slots__ = ("hits", "bytes", "rt_sum", "rt_n", "rt_max", "vis")

    def __init__(self):
        self.hits = self.bytes = self.rt_sum = self.rt_n = self.rt_max = 0
        self.vis = set()  # distinct visitors (client, date, user agent) of the row's lines

    def add(self, nbytes, rt, visitor):
        self.vis.add(visitor)
        self.hits += 1
        self.bytes += nbytes
        if rt is not None:
            self.rt_sum += rt
            self.rt_n += 1
            self.rt_max = max(self.rt_max, rt)

    def json(self):
        d = {"hits": self.hits, "visitors": len(self.vis), "bytes": self.bytes}
        if self.rt_n:
            d.update(rt_avg=float(secs(self.rt_sum // self.rt_n)), rt_sum=float(secs(self.rt_sum)),
                     rt_max=float(secs(self.rt_max)))
        return d


def ranked(table, key_fields, order=None):
    rows = []
    for k, r in table.items():
        d = dict(zip(key_fields, k if isinstance(k, tuple) else (k,)))
        d.update(r.json())
        rows.append(d)
    # hits descending, then the key (byte order of UTF-8 text)
    rows.sort(key=lambda d: (-d["hits"],) + tuple(d[f].encode() for f in order or key_fields))
    return rows


def main():
    log, js = sys.argv[1], sys.argv[2]
    host = len(sys.argv) > 3
    got = json.load(open(js, encoding="utf-8"))
    days, visitors, minutely = {}, set(), [0] * 1440
    urls, ips, refs, sites, vhosts = {}, {}, {}, {}, {}
    ua_lines = 0
    spelling = {}
    with open(log, encoding="latin-1", newline="\n") as f:
        for line in f:
            line = line.rstrip("\n")
            vh = None
            if host:
                vh, _, line = line.partition(" ")
            m = LINE.match(line)
            if not m:
                print("reference cannot parse: " + line)
                return 1
            ip, d, mon, y, hh, mm, req, status, nbytes, ref, ua, rt = m.groups()
            date = "%s-%02d-%s" % (y, MONTHS[mon], d)
            nbytes = 0 if nbytes == "-" else int(nbytes)
            rt = rt_us(rt)
            c = client(ip)
            if c.version == 6:  # printed as written: the least of its spellings
                spelling[c] = min(spelling.get(c, ip), ip)
            day = days.setdefault(date, [0, set(), 0])
            day[0] += 1
            day[1].add((c, ua))
            day[2] += nbytes
            v = (c, date, ua)
            visitors.add(v)
            minutely[int(hh) * 60 + int(mm)] += 1
            words = req.split(" ")
            if len(words) >= 2:
                method, target = words[0], words[1]
                proto = words[-1] if len(words) >= 3 else ""
                path = target.split("?")[0]
                if path:
                    urls.setdefault((method, decode(path), proto), Row()).add(nbytes, rt, v)
            ips.setdefault(c, Row()).add(nbytes, rt, v)
            if ref not in ("", "-"):
                refs.setdefault(ref, Row()).add(nbytes, rt, v)
                sites.setdefault(site(ref), Row()).add(nbytes, rt, v)
            if vh:
                vhosts.setdefault(vh, Row()).add(nbytes, rt, v)
            ua_lines += 1  # every line has the field; "" and "-" are "Unknown"
    want = {
        "visitors": len(visitors),
        "daily": [{"date": k, "requests": v[0], "visitors": len(v[1]), "bytes": v[2]}
                  for k, v in sorted(days.items())],
        "minutely": minutely,
        "urls": ranked(urls, ("method", "path", "protocol"), ("path", "method", "protocol")),
        "referrers": ranked(refs, ("name",)),
        "referring_sites": ranked(sites, ("name",)),
        "distinct_urls": len(urls),
        "distinct_referrers": len(refs),
        "distinct_referring_sites": len(sites),
    }
    ip_rows = []  # hits descending, then IPv4 before IPv6, then by value
    for k in sorted(ips, key=lambda a: (-ips[a].hits, a.version, int(a))):
        d = {"ip": spelling.get(k, str(k))}
        d.update(ips[k].json())
        ip_rows.append(d)
    want["ips"] = ip_rows
    want["distinct_ips"] = len(ips)
    if host:
        want["vhosts"] = ranked(vhosts, ("name",))
        want["distinct_vhosts"] = len(vhosts)
    for k, v in want.items():
        if got.get(k) != v:
            g = got.get(k)
            if isinstance(v, list) and isinstance(g, list):
                for i, (a, b) in enumerate(zip(g, v)):
                    if a != b:
                        print("%s[%d]: weft %r, reference %r" % (k, i, a, b))
                        return 1
                print("%s: weft has %d rows, reference %d" % (k, len(g), len(v)))
            else:
                print("%s: weft %r, reference %r" % (k, g, v))
            return 1
    for k in ("os", "browsers"):
        if sum(r["hits"] for r in got[k]) != ua_lines:
            print("%s: hits add up to %d, %d lines have a user agent" %
                  (k, sum(r["hits"] for r in got[k]), ua_lines))
            return 1
        # a visitor has one user agent, so one operating system and one browser
        if sum(r["visitors"] for r in got[k]) != len(visitors):
            print("%s: visitors add up to %d, %d visitors" %
                  (k, sum(r["visitors"] for r in got[k]), len(visitors)))
            return 1
    for f in ("hits", "visitors"):
        crawl = sum(r[f] for r in got["crawlers"])
        if crawl != sum(r[f] for r in got["browsers"] if r["name"] == "Crawlers"):
            print("crawlers: %d %s, browsers' Crawlers row differs" % (crawl, f))
            return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

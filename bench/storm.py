#!/usr/bin/env python3
"""A boot storm: N distinct MACs make their first /pxe contact, C at a time.

usage: storm.py BASE_URL [N] [CONCURRENCY] [MAC_PREFIX]
Prints one line: ok errors p50_ms p99_ms max_ms wall_s
"""
import http.client
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

base = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
conc = int(sys.argv[3]) if len(sys.argv) > 3 else 64
prefix = sys.argv[4] if len(sys.argv) > 4 else "02:b7"
u = urllib.parse.urlsplit(base)


def one(i):
    mac = f"{prefix}:00:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
    t = time.perf_counter()
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.request("GET", f"/pxe/{mac}")
        r = c.getresponse()
        r.read()
        ok = r.status == 200
        c.close()
    except Exception:
        ok = False
    return ok, (time.perf_counter() - t) * 1000


start = time.perf_counter()
with ThreadPoolExecutor(conc) as ex:
    results = list(ex.map(one, range(n)))
wall = time.perf_counter() - start
lat = sorted(ms for _, ms in results)
ok = sum(1 for good, _ in results if good)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{ok} {n - ok} {p(0.50):.1f} {p(0.99):.1f} {lat[-1]:.1f} {wall:.2f}")

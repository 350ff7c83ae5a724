#!/usr/bin/env python3
"""Two running Provost servers (say, the code before and after a change, each serving its own
copy of the same database) answer the same request in turns over kept-alive connections; prints
each one's median, p90 and fastest time until the whole answer was received, and the ratio of
the medians. Taking turns spreads the machine's changes of speed over both.

    python3 benches/compare.py http://127.0.0.1:8091 http://127.0.0.1:8090 TOKEN \\
        '/scim/v2/Users?startIndex=50001&count=100' [ROUNDS, default 150]

The first 5 rounds warm up and are not counted. Any answer but 200 stops it.
"""
import http.client
import statistics
import sys
import time
from urllib.parse import urlsplit


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    first, second, token, path = sys.argv[1:5]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 150
    servers = [first, second]
    connections = {}
    for url in servers:
        parts = urlsplit(url)
        connections[url] = http.client.HTTPConnection(parts.hostname, parts.port or 80)
    times = {url: [] for url in servers}
    for i in range(rounds):
        for url in servers if i % 2 == 0 else reversed(servers):
            connection = connections[url]
            started = time.perf_counter()
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            answer = connection.getresponse()
            body = answer.read()
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status != 200:
                sys.exit(f"{url}{path} answered {answer.status}: {body[:300]!r}")
            if i >= 5:
                times[url].append(elapsed)
    for url in servers:
        ms = sorted(times[url])
        print(
            f"{url}: median {statistics.median(ms):.2f} ms, p90 {ms[int(len(ms) * 0.9)]:.2f} ms, "
            f"fastest {ms[0]:.2f} ms over {len(ms)} requests"
        )
    print(f"median of the first / the second: "
          f"{statistics.median(times[first]) / statistics.median(times[second]):.2f}")


if __name__ == "__main__":
    main()

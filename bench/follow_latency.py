"""Reads `audit-trail follow --stdout` lines; prints count, p50, p99 and max of
(arrival time - occurred_at) in milliseconds when the stream ends."""
import json
import sys
import time
from datetime import datetime

delays = []
for line in sys.stdin:
    now = time.time()
    event = json.loads(line)
    occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp()
    delays.append((now - occurred) * 1000.0)

delays.sort()
if not delays:
    print(0, 0, 0, 0)
else:
    def pct(p):
        return delays[min(len(delays) - 1, int(p * len(delays)))]
    print(len(delays), round(pct(0.50), 1), round(pct(0.99), 1), round(delays[-1], 1))

"""Latency at a fixed rate, the same for every server (rows ggon-perf-rate).

Under a flood every server is saturated, and its latency is the queue the
window of BENCH_OUTSTANDING queries builds (Little's law), not the server's
own delay. At a rate every server keeps up with (half of the slowest
server's ggon-perf flood rate on queries.txt, or BENCH_RATE; 0 skips
these rows) the latency is the server's delay plus the machine's
scheduling."""

import os

from .common import log
from .load import QUERIES, flood


def rate_for(flood_rows):
    given = os.environ.get("BENCH_RATE")
    if given:
        return int(given)
    q = [r["qps"] for r in flood_rows
         if r.get("tool") == "ggon-perf" and r.get("queries") == "queries.txt" and r.get("qps")]
    return int(min(q) / 2) if q else 0


def run(ctx, servers, flood_rows, pl):
    rate = rate_for(flood_rows)
    if rate <= 0:
        return []
    log(f"latency at a fixed rate: {rate} qps for every server")
    rows = []
    for rnd in range(1, ctx.s.rounds + 1):
        for srv in servers:
            rows.append(flood(ctx, srv, "ggon-perf-rate", rnd, QUERIES, pl, rate=rate))
    return [r for r in rows if r is not None]

"""--scale: generated zones of BENCH_SCALE_RECORDS records (default 10k,
100k and 1M: bench/ggon.org.static.zone plus hN A records). For every
server: the load time (start to the first NOERROR answer for the last
generated name), RSS and ggon-perf flood rate on random names of the zone
(10% NXDOMAIN). For ggond also BENCH_SCALE_REMAPS (20) remaps of cic and
BENCH_REMAP_RATE (1000) remaps a second from BENCH_REMAP_CLIENTS (8)
clients under a half-rate flood (remaps.py): what a remap costs as the
zone grows."""

import random
import re
import subprocess
import sys
import time

from . import remaps
from .common import (TIMEOUT, env_whole, env_words, loadavg, log, pinned, read_last_json, rss_kib, tail, usage_error,
                     wait_bounded)
from .servers import GGOND_CONFIG, STATIC_ZONE, Placement, start_with_zone, wait_answer, write_probe

RECORDS_DEFAULT = "10000 100000 1000000"


def settings():
    """(records list, remaps, remap rate, remap clients), checked before the run starts."""
    records = env_words("BENCH_SCALE_RECORDS", RECORDS_DEFAULT)
    n = env_whole("BENCH_SCALE_REMAPS", 20)
    rate = env_whole("BENCH_REMAP_RATE", 1000)
    clients = env_whole("BENCH_REMAP_CLIENTS", 8)
    if clients < 1:
        usage_error("BENCH_REMAP_CLIENTS must be at least 1")
    return records, n, rate, clients


def make_zone(base, zone, queries, n):
    """base plus h0..h(n-1) A records; 10,000 queries for random names of
    it, 10% of them names that do not exist (seeded: the same every run)."""
    with open(zone, "w") as z:
        z.write(open(base).read())
        z.write(f"\n; {n} generated hosts for scripts/bench --scale\n")
        for i in range(n):
            z.write(f"h{i} IN A 127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")
    rnd = random.Random(4)
    with open(queries, "w") as q:
        q.write("; random names of the generated zone, 10% NXDOMAIN\n")
        for _ in range(10000):
            if rnd.random() < 0.9:
                q.write(f"h{rnd.randrange(n)}.ggon.org A\n")
            else:
                q.write(f"nx{rnd.randrange(n)}.ggon.org A\n")


def scale_row(kind, records, load_s, rss, out):
    r = {"server": kind, "records": records, "load_s": load_s, "rss_kib": rss}
    j = read_last_json(out)
    try:
        r.update({"qps": j["qps"], "sent": j["sent"], "completed": j["completed"], "lost": j["lost"],
                  "lost_pct": 100.0 * j["lost"] / j["sent"] if j["sent"] else None,
                  "latency_ms": j["latency_ms"]})
    except (TypeError, KeyError):
        pass
    return r


def run(ctx, kinds):
    """Returns (scale rows, remap cost rows, remap rate rows)."""
    records_list, n_remaps, remap_rate, remap_clients = settings()
    s = ctx.s
    pl = Placement(s)
    rows, costs, rates = [], [], []
    zone, queries, toml = ctx.tmp / "scale.zone", ctx.tmp / "scale-queries.txt", ctx.tmp / "scale.toml"
    for n in records_list:
        log(f"generating a {n}-record zone")
        make_zone(STATIC_ZONE, zone, queries, n)
        probe = write_probe(ctx, "scale-probe.txt", f"h{n - 1}.ggon.org A")
        toml.write_text(re.sub(r"(?m)^file = .*", f'file = "{zone}"', GGOND_CONFIG.read_text()))
        for kind in kinds:
            if kind == "reflector":
                continue
            t0 = time.time()
            srv = start_with_zone(ctx, kind, f"{kind}-scale{n}", zone, toml, pl)
            if srv is None:
                continue
            load_s = wait_answer(ctx, srv, t0, 300, probe)
            if load_s is None:
                if srv.running():
                    log(f"{kind} did not answer for the scale zone within 300 s; skipped. Last log lines:")
                else:
                    log(f"{kind} exited without answering for the scale zone; skipped. Last log lines:")
                print(tail(srv.logfile), end="", file=sys.stderr)
                ctx.procs.stop(srv.proc)
                continue
            rss = rss_kib(srv.pid)
            log(f"{kind}: loaded {n} records in {load_s:.3f}s, RSS {rss // 1024} MiB (load average {loadavg()}); flooding")
            out = ctx.tmp / f"scale-{kind}.out"
            cmd = [ctx.perf, "-s", "127.0.0.1", "-p", srv.port, "-d", queries, "-l", s.secs, "-q", s.outstanding,
                   "-t", TIMEOUT, "--json"]
            gen = ctx.procs.start(pinned(cmd, s.gen_cpu, s.nice), stdout=out, stderr=subprocess.DEVNULL)
            wait_bounded(gen, s.secs + TIMEOUT + 30)
            row = scale_row(kind, n, load_s, rss, out)
            rows.append(row)
            if kind == "ggond" and n_remaps > 0:
                log(f"ggond: {n_remaps} remaps of cic on the {n}-record zone")
                costs.append(remaps.cost(srv, n, n_remaps))
            if kind == "ggond" and remap_rate > 0:
                r = remaps.rate(ctx, srv, n, remap_rate, remap_clients, queries, row.get("qps"))
                if r is not None:
                    rates.append(r)
            ctx.procs.stop(srv.proc)
            row.update(load_on_both(ctx, kind, n, zone, toml, probe))
    return rows, costs, rates


def load_on_both(ctx, kind, n, zone, toml, probe):
    """The same start again, not pinned: the server may use both cores, as
    on a machine of its own (ggond reads, sorts and compiles a large zone on
    two threads; NSD loads on one). The pinned start above is the one the
    flood's CPU accounting needs; this is the start an operator sees."""
    s = ctx.s
    both = Placement(s, srv_cpus=f"{s.server_cpu},{s.gen_cpu}")
    t0 = time.time()
    srv = start_with_zone(ctx, kind, f"{kind}-scale{n}-both", zone, toml, both)
    if srv is None:
        return {}
    load_s = wait_answer(ctx, srv, t0, 300, probe)
    rss = rss_kib(srv.pid) if load_s is not None else None
    ctx.procs.stop(srv.proc)
    if load_s is not None:
        log(f"{kind}: loaded {n} records in {load_s:.3f}s on both cores, RSS {rss // 1024} MiB")
    return {"load_both_s": load_s, "rss_both_kib": rss}

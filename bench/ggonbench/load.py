"""The load generators: one bounded flood of a server by dnsperf or
ggon-perf, with the CPU the server and the generator spent on it, as one
row of the report; and rounds of such floods over several servers."""

import re
import sys
import time

from .common import BENCH, HZ, TIMEOUT, cpu_ticks, die, last_json, log, pinned, wait_bounded

QUERIES = BENCH / "queries.txt"
SERVICES = BENCH / "queries-services.txt"


def num(pattern, text, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1)) if m else None


def parse_dnsperf(text):
    """dnsperf's summary as ggon-perf's JSON fields (dnsperf 2.10 reports
    the average latency only, no percentiles)."""
    sent = num(r"Queries sent:\s+(\d+)", text, int)
    if sent is None:
        return None
    avg_s = num(r"Average Latency \(s\):\s+([\d.]+)", text)
    codes = {}
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for name, n in re.findall(r"([A-Z0-9]+) (\d+) \(", m.group(1)):
            codes[name] = int(n)
    return {
        "sent": sent,
        "completed": num(r"Queries completed:\s+(\d+)", text, int),
        "lost": num(r"Queries lost:\s+(\d+)", text, int),
        "run_time_s": num(r"Run time \(s\):\s+([\d.]+)", text),
        "qps": num(r"Queries per second:\s+([\d.]+)", text),
        "latency_ms": {"avg": avg_s * 1e3 if avg_s is not None else None,
                       "min": None, "p50": None, "p99": None, "p999": None, "max": None},
        "rcodes": codes,
    }


def flood(ctx, srv, tool, rnd, qfile, pl, rate=None):
    """One flood of BENCH_SECONDS against srv: tool is dnsperf, ggon-perf or
    ggon-perf-rate (ggon-perf paced at rate qps). Returns its row (None if
    the tool printed no statistics)."""
    s = ctx.s
    out = ctx.tmp / f"flood-{srv.inst}-{tool}-{rnd}-{qfile.name}.out"
    log(f"round {rnd}: {tool} -> {srv.inst} (127.0.0.1:{srv.port}), {s.secs} s, {qfile.name}")
    before = cpu_ticks(srv.pid)
    if tool == "dnsperf":
        cmd = ["dnsperf", "-s", "127.0.0.1", "-p", srv.port, "-d", qfile, "-l", s.secs, "-c", pl.gen_clients,
               "-T", pl.gen_threads, "-q", s.outstanding, "-t", TIMEOUT]
        gen = ctx.procs.start(pinned(cmd, pl.gen_cpus, s.nice), stdout=out)
    else:
        cmd = [ctx.perf, "-s", "127.0.0.1", "-p", srv.port, "-d", qfile, "-l", s.secs, "-c", pl.gen_clients,
               "-q", s.outstanding, "-t", TIMEOUT, "--json"]
        if tool == "ggon-perf-rate":
            cmd += ["-Q", rate]
        gen = ctx.procs.start(pinned(cmd, pl.gen_cpus, s.nice), stdout=out, stderr=f"{out}.err")
    # The CPU of the server and of the generator over the flood itself, not
    # over the wait for late answers that follows it.
    time.sleep(s.window)
    gen_ticks = cpu_ticks(gen.pid)
    after = cpu_ticks(srv.pid)
    wait_bounded(gen, s.secs + TIMEOUT + 30)
    return make_row(ctx, srv.inst, tool, rnd, qfile, out, after - before, gen_ticks)


def make_row(ctx, server, tool, rnd, qfile, out, ticks, gen_ticks):
    s = ctx.s
    text = out.read_text(errors="replace")
    r = parse_dnsperf(text) if tool == "dnsperf" else last_json(text)
    if r is None:
        print(f"bench: {tool} against {server} produced no statistics:\n{text[-2000:]}", file=sys.stderr)
        return None
    # CPU over the sampling window, scaled to the whole flood.
    k = s.secs / s.window
    cpu_s = ticks / HZ * k
    gen_s = gen_ticks / HZ * k
    r.update({
        "server": server, "tool": tool, "round": rnd, "queries": qfile.name,
        "server_cpu_s": cpu_s,
        "q_per_cpu_s": (r["completed"] / cpu_s) if cpu_s > 0 else None,
        "lost_pct": (100.0 * r["lost"] / r["sent"]) if r["sent"] else None,
        "generator_cpu_s": gen_s,
        "generator_busy_pct": 100.0 * gen_s / s.secs,
    })
    return r


def flood_rounds(ctx, servers, tools, pl, services=True):
    """BENCH_ROUNDS rounds over servers, each flooded by every tool on
    queries.txt and (services) by ggon-perf on the service names."""
    rows = []
    for rnd in range(1, ctx.s.rounds + 1):
        for srv in servers:
            if not srv.running():
                die(f"{srv.inst} (pid {srv.pid}) has died")
            for tool in tools:
                rows.append(flood(ctx, srv, tool, rnd, QUERIES, pl))
            # The health-managed names (static records elsewhere); the
            # reflector answers anything, so it is left out.
            if services and srv.kind != "reflector":
                rows.append(flood(ctx, srv, "ggon-perf", rnd, SERVICES, pl))
    return [r for r in rows if r is not None]

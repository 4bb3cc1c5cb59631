"""The default mode: ggond against gdnsd, NSD, Knot and the C echo
reflector under a UDP query flood.

Every server runs on its own loopback port, pinned to BENCH_SERVER_CPU with
one worker; each is flooded in turn from BENCH_GEN_CPU by dnsperf and by
ggon-perf on bench/queries.txt (and by ggon-perf on the health-managed
names of bench/queries-services.txt), BENCH_ROUNDS times, alternating
servers. The server's CPU time during each flood (utime+stime over its
process tree, /proc/PID/stat) gives queries answered per CPU-second, the
figure that other work on the machine disturbs least. Then come the
fixed-rate rows (fixedrate.py), remaps under load (remaps.py), and, if
asked, the --workers2 and --scale runs (zone sizes: scale.py; services:
services.py); report.py prints the tables and saves the JSON."""

from . import fixedrate, remaps, report, scale, services, workers2
from .common import TIMEOUT, die, first_line, machine, result_path
from .load import SERVICES, flood_rounds
from .servers import Placement, start_server


def versions():
    return {
        "nsd": first_line(["nsd", "-v"]),
        "knot": first_line(["knotd", "--version"]),
        "dnsperf": first_line(["dnsperf", "-h"], "Version"),
        "gdnsd": first_line(["gdnsd", "-h"], "gdnsd version"),
    }


def main(ctx, kinds, with_workers2, with_scale):
    pl = Placement(ctx.s)
    running = [srv for srv in (start_server(ctx, k, pl) for k in kinds) if srv is not None]
    if not running:
        die("no server could be started")
    tools = (["dnsperf"] if ctx.have_dnsperf else []) + ["ggon-perf"]
    rows = flood_rounds(ctx, running, tools, pl)
    rows += fixedrate.run(ctx, running, rows, pl)
    ggond = next((srv for srv in running if srv.kind == "ggond"), None)
    under_load = remaps.under_load(ctx, ggond, rows, SERVICES) if ggond and ggond.running() else None
    for srv in running:
        ctx.procs.stop(srv.proc)
    if with_workers2:
        rows += workers2.run(ctx, kinds, tools)
    scale_rows, remap_cost, remap_rate = scale.run(ctx, kinds) if with_scale else ([], [], [])
    service_rows = services.run(ctx) if with_scale and "ggond" in kinds else []

    s = ctx.s
    m = machine(ctx.loadavg_start)
    meta = {"remaps_under_load": under_load}
    meta.update({k: m[k] for k in ("date", "host", "kernel", "cpu", "nproc", "loadavg_start", "loadavg_end")})
    meta.update({"seconds": s.secs, "rounds": s.rounds, "outstanding": s.outstanding, "timeout_s": TIMEOUT,
                 "server_cpu": s.server_cpu, "generator_cpu": s.gen_cpu, "nice": s.nice, "git": m["git"],
                 "versions": versions()})
    report.report(rows, meta, report.ScaleResults(scale_rows, remap_cost, remap_rate, service_rows), result_path())

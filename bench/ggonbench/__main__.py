"""scripts/bench: ggond's benchmarks, everything on 127.0.0.1.

Usage: scripts/bench [--scale] [--workers2] [--servers "..."] [--no-build]
       scripts/bench --cluster [--no-build]
       scripts/bench --geo [--no-build]       (also: scripts/bench-geo)
       scripts/bench --dnssec [--no-build]
       scripts/bench --nemesis [SECONDS]
       scripts/bench --cluster-scale N [options: --cluster-scale --help]
       scripts/bench --outputs N [N ...] [--page N] [--target-histograms] [--no-build]

Without a mode: ggond against gdnsd, NSD, Knot and a C echo reflector
(bench/reflector.c: recvmmsg, set QR, sendmmsg, no DNS work: the kernel's
floor) under a UDP query flood. Every server runs on its own loopback port
pinned to CPU BENCH_SERVER_CPU with one worker; each is flooded in turn
from CPU BENCH_GEN_CPU by dnsperf and ggon-perf on bench/queries.txt,
BENCH_ROUNDS times, alternating servers. The servers' CPU time during each
flood (utime+stime over the process tree, /proc/PID/stat) gives queries
answered per CPU-second. Then the same at a fixed rate (latency without
saturation), and 100 remaps of ggond under load. Prints the flood table
and one comparison table per tool (q/cpu-s per round, avg and p99 latency,
ratios to gdnsd and to the reflector), saves bench/results/DATE-HOST.json.
Missing gdnsd, nsd, knot, dnsperf and a C compiler are installed with
apt-get (as root); the release binaries are built with cargo.

  --scale     also load generated zones of 10k, 100k and 1M records
              (BENCH_SCALE_RECORDS) into each server and report load time
              (start to first answer), RSS and qps on them, and for ggond
              the cost of BENCH_SCALE_REMAPS (20) remaps on each (the
              control call's time and the time until the answer is seen),
              then BENCH_REMAP_RATE (1000) remaps a second from
              BENCH_REMAP_CLIENTS (8) clients under a half-rate flood;
              and (with ggond among --servers) ggond with N services of 2
              TCP-checked targets for N in BENCH_SCALE_SERVICES (1000
              10000 30000): start-up time, RSS, CPU at idle over
              BENCH_SCALE_IDLE_SECONDS (20), and BENCH_SCALE_SERVICE_REMAPS
              (20) remaps' call and visible p50/p90 (ggonbench/services.py)
  --workers2  also run gdnsd, NSD, Knot and ggond with 2 workers each, not
              pinned, the load generator sharing both cores (rows SERVER-w2)
  --servers   which servers to run (default: reflector gdnsd nsd knot ggond)
  --no-build  use the existing release binaries
  --cluster   instead of the comparison, a soak of ggond's cluster mode:
              3 etcd members (Debian etcd-server, installed when missing)
              and 3 ggond nodes, each flooded by its own ggon-perf while cic
              is remapped through random nodes and the leader's ggond is
              killed (kill -9) and restarted a few times. Reports lost
              queries per node, remaps acknowledged/refused, decision-to-
              all-nodes latency, disagreement between live nodes, the leader
              change after each kill and whether the SOA serials agree at
              the end; saves bench/results/DATE-HOST-cluster.json
  --geo       the cost of geographic answers: an ECS flood against a
              per-region service vs a single-active one, and the load time
              and RSS of a BENCH_PREFIXES (500000)-prefix region map; saves
              bench/results/DATE-HOST-geo.json
  --dnssec    the cost of online signing: DO=1 vs DO=0 floods, NSD on the
              same signed zone, remaps on a signed 10k-record zone, RSS of
              a signed 100k-record zone; saves DATE-HOST-dnssec.json
  --nemesis   the partition nemesis test (tests/cluster/nemesis_net.rs:
              network namespaces, needs root) with SECONDS (300) of faults;
              seed and schedule are printed
  --cluster-scale N
              3 etcd members and 3 ggond nodes with N services of 2
              TCP-checked targets, started together: time to a leader and
              every node answering, steady CPU per process, lease losses,
              etcd's size, remaps through a follower, a site failure of 10 %
              of the primaries; optionally restart, etcd outage, a remap
              storm and a single ggond for comparison (ggonbench/cluster_scale.py)
  --outputs N [N ...] [--page N] [--target-histograms]
              one ggond with N services of 2 TCP-checked targets: /metrics
              bytes (plain, gzip) and scrape time, /v1/status whole and
              ?down=true, the status page, and with --page its load in
              headless Chromium (ggonbench/outputs.py)

Environment: BENCH_SECONDS (flood length, default 10), BENCH_ROUNDS (2),
  BENCH_OUTSTANDING (queries in flight, 500), BENCH_SERVER_CPU (0),
  BENCH_GEN_CPU (1), BENCH_RATE (the fixed rate of the latency rows,
  default half of the slowest server's flood rate; 0: none), BENCH_NICE
  (niceness of servers and load generators, default 0; e.g. -10 as root
  shields the figures from other work on a shared machine),
  BENCH_KEEP_TMP=1 keeps the temp dir (configs, logs), CARGO_TARGET_DIR
  (where the binaries are built; default target/).
With --cluster: BENCH_CLUSTER_SECONDS (flood length, 60),
  BENCH_CLUSTER_REMAPS (100), BENCH_CLUSTER_KILLS (3), BENCH_CLUSTER_DOWN
  (seconds a killed node stays down, 4), BENCH_CLUSTER_QPS (per node,
  10000; 0: no cap), BENCH_OUTSTANDING and BENCH_NICE as above (no CPU
  pinning: 3 ggond, 3 etcd and 3 ggon-perf share the machine).

Every flood is bounded in time, and every process started here is stopped
(by PID, with its children) on exit.
"""

import os
import re
import signal
import sys

from .common import (ROOT, Context, Procs, Settings, TempDir, cargo_build, die, have, install_missing, log,
                     need_binary, usage_error)
from .servers import NAMES

MODES = ("cluster", "geo", "dnssec", "nemesis")


class Options:
    def __init__(self, argv):
        self.mode = None
        self.scale = False
        self.workers2 = False
        self.servers = list(NAMES)
        self.servers_set = False
        self.build = True
        self.nemesis_secs = 300
        i = 0
        while i < len(argv):
            a = argv[i]
            if a.startswith("--") and a[2:] in MODES:
                if self.mode:
                    usage_error(f"--{self.mode} and {a} are separate runs; give one")
                self.mode = a[2:]
                if a == "--nemesis" and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                    i += 1
                    if not re.fullmatch(r"[0-9]+", argv[i]):
                        usage_error(f"--nemesis takes a whole number of seconds, got '{argv[i]}'")
                    self.nemesis_secs = int(argv[i])
            elif a == "--scale":
                self.scale = True
            elif a == "--workers2":
                self.workers2 = True
            elif a == "--no-build":
                self.build = False
            elif a == "--servers":
                if i + 1 >= len(argv):
                    usage_error("--servers needs a list")
                i += 1
                self.servers = argv[i].split()
                self.servers_set = True
            elif a in ("-h", "--help"):
                print(__doc__, end="")
                raise SystemExit(0)
            else:
                usage_error(f"unknown option '{a}' (see --help)")
            i += 1
        if self.mode and (self.scale or self.servers_set or self.workers2):
            usage_error(f"--{self.mode} runs only its own benchmark; it does not take --scale, --workers2 or --servers")
        if self.mode == "nemesis" and not self.build:
            usage_error("--nemesis builds with cargo test; it does not take --no-build")
        for s in self.servers:
            if s not in NAMES:
                usage_error(f"unknown server '{s}' ({', '.join(NAMES)})")


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv):
    if argv[:1] == ["--outputs"]:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        from . import outputs
        return outputs.main(argv[1:])
    if argv[:1] == ["--cluster-scale"]:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        with TempDir() as tmp:
            install_missing({"etcd": "etcd-server", "cc": "gcc"}, tmp / "apt.log", dnspython=True)
        from . import cluster_scale
        cluster_scale.main(argv[1:])
        return 0
    opts = Options(argv)
    if opts.mode == "nemesis":
        from . import nemesis
        nemesis.main(opts.nemesis_secs)
    settings = Settings()
    if opts.mode is None and os.environ.get("BENCH_RATE") and not re.fullmatch(r"[0-9]+", os.environ["BENCH_RATE"]):
        usage_error(f"BENCH_RATE must be a whole number, got '{os.environ['BENCH_RATE']}'")
    if opts.scale:
        from . import scale, services
        scale.settings()
        services.Settings()
    if opts.mode == "cluster":
        from . import cluster
        cluster_settings = cluster.Settings()
    if not have("taskset"):
        die("taskset (util-linux) is needed")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    os.chdir(ROOT)
    procs = Procs()
    with TempDir() as tmp:
        try:
            apt_log = tmp / "apt.log"
            if opts.mode == "cluster":
                install_missing({"etcd": "etcd-server"}, apt_log, dnspython=True)
                if not os.access(cluster.ETCD, os.X_OK):
                    die(f"{cluster.ETCD} is missing (install the Debian package etcd-server; that needs root and apt-get)")
            elif opts.mode == "geo":
                install_missing({"dig": "bind9-dnsutils"}, apt_log)
            elif opts.mode == "dnssec":
                install_missing({"dig": "bind9-dnsutils", "nsd": "nsd"}, apt_log)
            else:
                install_missing({"nsd": "nsd", "knotd": "knot", "dnsperf": "dnsperf", "gdnsd": "gdnsd", "cc": "gcc"},
                                apt_log, dnspython=opts.scale)
            if opts.build:
                cargo_build({"geo": ["--bin", "ggond", "--bin", "ggon-perf"], "dnssec": ["--bins"]}.get(opts.mode, []))
            need_binary("ggon-perf")
            ctx = Context(settings, tmp, procs)
            if opts.mode == "cluster":
                cluster.main(ctx, cluster_settings)
            elif opts.mode == "geo":
                from . import geo
                geo.main(ctx)
            elif opts.mode == "dnssec":
                from . import dnssec
                need_binary("ggond")
                need_binary("ggon-ctl")
                dnssec.main(ctx)
            else:
                from . import flood
                if not ctx.have_dnsperf:
                    log("dnsperf is not available: only ggon-perf floods")
                flood.main(ctx, opts.servers, opts.workers2, opts.scale)
        finally:
            procs.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The DNS servers under test: the C echo reflector, gdnsd, NSD, Knot and
ggond. Each start function writes the server's config under the run's
scratch directory, starts it in the foreground on a free loopback port at
the run's niceness and on the placement's CPUs, and returns a Server;
wait_answer then tells when (and whether) it answers."""

import os
import re
import subprocess
import sys
import time

from .common import BENCH, free_port, have, log, pinned, tail, target_dir


class Placement:
    """Where servers and generators run. The comparison pins each server to
    one CPU with one worker and the generator (one socket, one dnsperf
    thread) to another; workers2() is every server with 2 workers, not
    pinned, the generators (4 sockets, 2 dnsperf threads) sharing both
    cores with them."""

    def __init__(self, s, workers=1, srv_cpus=None, gen_cpus=None, gen_clients=1, gen_threads=1):
        self.workers = workers
        self.srv_cpus = srv_cpus if srv_cpus is not None else str(s.server_cpu)
        self.gen_cpus = gen_cpus if gen_cpus is not None else str(s.gen_cpu)
        self.gen_clients = gen_clients  # generator sockets (SO_REUSEPORT spreads them by source port)
        self.gen_threads = gen_threads  # dnsperf threads

    @classmethod
    def workers2(cls, s):
        both = f"{s.server_cpu},{s.gen_cpu}"
        return cls(s, workers=2, srv_cpus=both, gen_cpus=both, gen_clients=4, gen_threads=2)


class Server:
    def __init__(self, kind, inst, proc, port, logfile, control=None, state=None):
        self.kind = kind  # reflector, gdnsd, nsd, knot, ggond
        self.inst = inst  # row name: kind, kind-w2, kind-scale10000
        self.proc = proc
        self.port = port
        self.logfile = logfile
        self.control = control  # ggond: control API port
        self.state = state  # ggond: state directory (control.token)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None


NAMES = ("reflector", "gdnsd", "nsd", "knot", "ggond")
STATIC_ZONE = BENCH / "ggon.org.static.zone"
GGOND_CONFIG = BENCH / "ggon-bench.toml"


def start_nsd(ctx, inst, zone, pl):
    d = ctx.tmp / inst
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (d / "nsd.conf").write_text(f"""server:
    ip-address: 127.0.0.1@{port}
    server-count: {pl.workers}
    # One socket per worker (SO_REUSEPORT), as ggond and Knot do.
    reuseport: {"yes" if pl.workers > 1 else "no"}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    database: ""
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    logfile: "{d}/nsd.log"
    do-ip6: no
    hide-version: yes
    verbosity: 0
    # Response rate limiting is on by default in Debian's NSD; a flood from
    # one address would be answered with TC=1 slips and drops.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: ggon.org
    zonefile: "{zone}"
""")
    p = ctx.procs.start(pinned(["nsd", "-d", "-c", d / "nsd.conf"], pl.srv_cpus, ctx.s.nice),
                        stdout=d / "stdout.log")
    return Server("nsd", inst, p, port, d / "nsd.log")


def start_knot(ctx, inst, zone, pl):
    d = ctx.tmp / inst
    (d / "db").mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "    user: root:root\n" if os.geteuid() == 0 else ""
    (d / "knot.conf").write_text(f"""server:
    rundir: "{d}"
{user}    listen: 127.0.0.1@{port}
    background-workers: 1
    udp-workers: {pl.workers}
    tcp-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{d}/db"
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: ggon.org
    file: "{zone}"
""")
    p = ctx.procs.start(pinned(["knotd", "-c", d / "knot.conf"], pl.srv_cpus, ctx.s.nice),
                        stdout=d / "stdout.log")
    return Server("knot", inst, p, port, d / "stdout.log")


def start_gdnsd(ctx, inst, zone, pl):
    d = ctx.tmp / inst
    (d / "zones").mkdir(parents=True, exist_ok=True)
    port = free_port()
    (d / "zones" / "ggon.org").write_bytes(open(zone, "rb").read())
    (d / "config").write_text(f"""options => {{
    listen => [ 127.0.0.1:{port} ]
    udp_threads => {pl.workers}
    tcp_threads => 1
    run_dir => "{d}/run"
    state_dir => "{d}/state"
}}
""")
    p = ctx.procs.start(pinned(["gdnsd", "-c", d, "start"], pl.srv_cpus, ctx.s.nice), stdout=d / "stdout.log")
    return Server("gdnsd", inst, p, port, d / "stdout.log")


def c_tool(name):
    """bench/NAME.c built into the target directory as bench-NAME (a temp
    dir may be mounted noexec); None if it does not build."""
    exe = target_dir() / f"bench-{name}"
    src = BENCH / f"{name}.c"
    if not os.access(exe, os.X_OK) or src.stat().st_mtime > exe.stat().st_mtime:
        exe.parent.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["cc", "-O2", "-o", str(exe), str(src)]).returncode != 0:
            return None
    return exe


def reflector_binary():
    return c_tool("reflector")


def start_reflector(ctx, inst, pl):
    """The echo reflector: recvmmsg, set QR, sendmmsg, no DNS work (the
    kernel's floor for a server with ordinary sockets)."""
    exe = reflector_binary()
    if exe is None:
        return None
    d = ctx.tmp / inst
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    p = ctx.procs.start(pinned([exe, port], pl.srv_cpus, ctx.s.nice), stdout=d / "stdout.log")
    return Server("reflector", inst, p, port, d / "stdout.log")


def start_ggond(ctx, inst, config, pl):
    """ggond with config's [server] workers set to the placement's."""
    d = ctx.tmp / inst
    d.mkdir(parents=True, exist_ok=True)
    text = re.sub(r"(?m)^workers = .*", f"workers = {pl.workers}", open(config).read())
    (d / "ggon.toml").write_text(text)
    return launch_ggond(ctx, inst, pl)


def launch_ggond(ctx, inst, pl):
    """ggond on the config already written to the scratch dir's inst/ggon.toml,
    with its state in inst/state."""
    d = ctx.tmp / inst
    (d / "state").mkdir(parents=True, exist_ok=True)
    port, control = free_port(), free_port()
    cmd = [ctx.ggond, "--config", d / "ggon.toml", "--listen", f"127.0.0.1:{port}", "--state-dir", d / "state",
           "--control", f"127.0.0.1:{control}", "--user", "root"]
    p = ctx.procs.start(pinned(cmd, pl.srv_cpus, ctx.s.nice), stdout=d / "stdout.log")
    return Server("ggond", inst, p, port, d / "stdout.log", control=control, state=d / "state")


def write_probe(ctx, name, line):
    path = ctx.tmp / name
    path.write_text(line + "\n")
    return path


def wait_answer(ctx, srv, started, limit, probe=None):
    """Seconds from `started` (time.time()) until srv answers the probe file's
    query with NOERROR (asked with ggon-perf, one query, 20 ms timeout, every
    ~30 ms); None if it exits or `limit` seconds pass."""
    probe = probe or write_probe(ctx, "probe.txt", "ggon.org SOA")
    deadline = time.time() + limit
    while time.time() < deadline:
        if not srv.running():
            return None
        r = subprocess.run([str(ctx.perf), "-s", "127.0.0.1", "-p", str(srv.port), "-d", str(probe), "-n", "1",
                            "-t", "0.02", "--json"], capture_output=True, text=True)
        if '"completed":1,' in r.stdout and '"NOERROR":1' in r.stdout:
            return round(time.time() - started, 3)
        time.sleep(0.01)
    return None


def start_server(ctx, kind, pl, inst=None):
    """Starts the bench instance of kind (files under the scratch dir's
    inst, default kind) and waits up to 15 s for its first answer; None
    (with a message) if it cannot run here."""
    inst = inst or kind
    t0 = time.time()
    if kind == "reflector":
        if not have("cc"):
            log("no C compiler (cc); skipping the reflector")
            return None
        srv = start_reflector(ctx, inst, pl)
        if srv is None:
            log("bench/reflector.c did not build; skipping it")
            return None
    elif kind == "ggond":
        if not os.access(ctx.ggond, os.X_OK):
            log(f"{ctx.ggond} is missing; skipping ggond")
            return None
        srv = start_ggond(ctx, inst, GGOND_CONFIG, pl)
    else:
        cmd, label, start = {"gdnsd": ("gdnsd", "gdnsd", start_gdnsd), "nsd": ("nsd", "NSD", start_nsd),
                             "knot": ("knotd", "Knot", start_knot)}[kind]
        if not have(cmd):
            log(f"{cmd} is not installed; skipping {label}")
            return None
        srv = start(ctx, inst, STATIC_ZONE, pl)
    if wait_answer(ctx, srv, t0, 15) is None:
        if srv.running():
            log(f"{kind} did not answer on 127.0.0.1:{srv.port} within 15 s; skipping {kind}. Last log lines:")
        else:
            log(f"{kind} exited without answering on 127.0.0.1:{srv.port}; skipping {kind}. Last log lines:")
        print(tail(srv.logfile), end="", file=sys.stderr)
        ctx.procs.stop(srv.proc)
        return None
    log(f"{kind} is answering on 127.0.0.1:{srv.port} (pid {srv.pid})")
    return srv


def start_with_zone(ctx, kind, inst, zone, ggond_config, pl):
    """The same servers on another zone (--scale); no wait. None if kind is not installed."""
    if kind == "gdnsd" and have("gdnsd"):
        return start_gdnsd(ctx, inst, zone, pl)
    if kind == "nsd" and have("nsd"):
        return start_nsd(ctx, inst, zone, pl)
    if kind == "knot" and have("knotd"):
        return start_knot(ctx, inst, zone, pl)
    if kind == "ggond" and os.access(ctx.ggond, os.X_OK):
        return start_ggond(ctx, inst, ggond_config, pl)
    return None


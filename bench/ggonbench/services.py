"""--scale, services part: one ggond with N services (BENCH_SCALE_SERVICES,
default 1000 10000 30000), each with 2 TCP-checked targets every 5 s whose
checks all go to one local listener (bench/acceptor.c on 127.0.0.1; the
targets' answer addresses are 10.x text, never connected to). Per N:

- start-up: from the process start until both the control API answers
  (GET /v1/history) and the last service's name answers over UDP;
- RSS once start-up has settled (two samples a second apart within 1 %,
  after the first two rounds of checks), its peak (VmHWM) and KiB per
  service; how many targets /metrics reports healthy then;
- CPU of ggond over BENCH_SCALE_IDLE_SECONDS (20) at idle: only the checks;
- BENCH_SCALE_SERVICE_REMAPS (20) remaps to backup of services spread over
  the N, through the control API: the call's time and the time from
  sending it until a UDP query (asked in a loop) answers the backup's
  address (remaps.timed_remap), p50 and p90.

The shape of bench/remap_scale.py (and of --outputs), inside the harness:
its processes, placement and result file."""

import os
import socket
import sys
import time
import urllib.request

from .common import (HZ, cpu_ticks, env_whole, env_words, free_port, loadavg, log, pinned, rss_kib, status_kib,
                     tail)
from .remaps import Asker, fsync_ms, pct, remap_request, timed_remap, token
from .servers import Placement, c_tool, launch_ggond

SERVICES_DEFAULT = "1000 10000 30000"
INTERVAL_S = 5
ZONE = "$ORIGIN scale.test.\n$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n"


class Settings:
    """BENCH_SCALE_SERVICES, BENCH_SCALE_SERVICE_REMAPS, BENCH_SCALE_IDLE_SECONDS."""

    def __init__(self):
        self.counts = env_words("BENCH_SCALE_SERVICES", SERVICES_DEFAULT)
        self.remaps = env_whole("BENCH_SCALE_SERVICE_REMAPS", 20)
        self.idle_s = env_whole("BENCH_SCALE_IDLE_SECONDS", 20)
        self.start_limit = 300


def address(i, which):
    """Service i's target address (which: 0 primary, 1 backup), as text only."""
    return f"10.{which * 128 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def config_text(n, check_port, zone):
    check = (f'check = {{ type = "tcp", address = "127.0.0.1:{check_port}", interval = "{INTERVAL_S}s",'
             ' timeout = "1s" }\n')
    parts = [f'[server]\nworkers = 1\n\n[[zone]]\norigin = "scale.test"\nfile = "{zone}"\n']
    for i in range(n):
        parts.append(f'[[service]]\nname = "s{i}"\nfqdn = "s{i}.scale.test"\nttl = 30\n\n'
                     f'[[service.target]]\nname = "primary"\naddresses = ["{address(i, 0)}"]\n{check}\n'
                     f'[[service.target]]\nname = "backup"\naddresses = ["{address(i, 1)}"]\n{check}')
    return "\n".join(parts)


def write_config(ctx, inst, n, check_port):
    d = ctx.tmp / inst
    d.mkdir(parents=True, exist_ok=True)
    (d / "scale.test.zone").write_text(ZONE)
    (d / "ggon.toml").write_text(config_text(n, check_port, d / "scale.test.zone"))


def api_answers(srv):
    """GET /v1/history?limit=1 with the token returns 200 (the token file is
    written by ggond at start)."""
    path = os.path.join(srv.state, "control.token")
    if not os.path.exists(path):
        return False
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{srv.control}/v1/history?limit=1",
                                     headers={"Authorization": f"Bearer {token(srv.state)}"})
        with urllib.request.urlopen(req, timeout=1) as r:
            return r.status == 200
    except (OSError, IndexError):
        return False


def wait_started(srv, t0, n, limit):
    """(seconds to the control API, seconds to the last service's DNS
    answer) from t0 (time.time() before the start); None for one not
    reached within limit seconds or before ggond exits."""
    asker = Asker(srv.port, f"s{n - 1}.scale.test.")
    api_s = dns_s = None
    try:
        while time.time() < t0 + limit and srv.running() and (api_s is None or dns_s is None):
            if dns_s is None and asker.addresses():
                dns_s = round(time.time() - t0, 3)
            if api_s is None and api_answers(srv):
                api_s = round(time.time() - t0, 3)
            time.sleep(0.01)
    finally:
        asker.close()
    return api_s, dns_s


def settled_rss(srv, limit=60):
    """RSS (KiB) once two samples a second apart differ by at most 1 %,
    after two check intervals; (rss, seconds waited)."""
    t0 = time.monotonic()
    time.sleep(2 * INTERVAL_S + 1)
    prev = rss_kib(srv.pid)
    while time.monotonic() - t0 < limit:
        time.sleep(1)
        cur = rss_kib(srv.pid)
        if abs(cur - prev) <= prev / 100:
            return cur, round(time.monotonic() - t0, 1)
        prev = cur
    return prev, round(time.monotonic() - t0, 1)


def healthy_targets(srv):
    """Targets /metrics reports healthy (ggon_target_healthy ... 1); None if it cannot be read."""
    req = urllib.request.Request(f"http://127.0.0.1:{srv.control}/metrics",
                                 headers={"Authorization": f"Bearer {token(srv.state)}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(1 for line in text.splitlines() if line.startswith("ggon_target_healthy{") and line.endswith(" 1"))


def idle_cpu_pct(srv, secs):
    """ggond's CPU over secs seconds, in % of one core."""
    before = cpu_ticks(srv.pid)
    time.sleep(secs)
    return round(100.0 * (cpu_ticks(srv.pid) - before) / HZ / secs, 1)


def remap_times(srv, n, count):
    """count remaps to backup of services spread over the n (each a real
    change): (call ms list, visible ms list, failures)."""
    tok = token(srv.state)
    calls, visible, failed = [], [], 0
    for k in range(min(count, n)):
        i = (2 * k + 1) * n // (2 * count)
        asker = Asker(srv.port, f"s{i}.scale.test.")
        want = address(i, 1)
        call_s, err, seen = timed_remap(remap_request(srv.control, tok, "backup", f"s{i}"),
                                        lambda: want in asker.addresses(), limit=10)
        asker.close()
        if call_s is None:
            log(f"services: remap of s{i} failed: {err}")
            failed += 1
            continue
        calls.append(call_s * 1e3)
        if seen is not None:
            visible.append(seen * 1e3)
        time.sleep(0.05)
    return calls, visible, failed


def spread(xs):
    def r(v):
        return round(v, 3) if v is not None else None
    return {"p50": r(pct(xs, 0.5)), "p90": r(pct(xs, 0.9)), "max": r(max(xs) if xs else None)}


def measure(srv, n, st):
    """The figures of one running ggond with n services, once it answers."""
    rss, settle_s = settled_rss(srv)
    row = {"rss_kib": rss, "settle_s": settle_s, "peak_kib": status_kib(srv.pid, "VmHWM"),
           "kib_per_service": round(rss / n, 1), "healthy_targets": healthy_targets(srv)}
    log(f"services: {n}: RSS {rss // 1024} MiB after {settle_s} s, {row['healthy_targets']} of {2 * n} targets"
        f" healthy; CPU at idle over {st.idle_s} s")
    row["idle_cpu_pct"] = idle_cpu_pct(srv, st.idle_s)
    log(f"services: {n}: {row['idle_cpu_pct']} % CPU at idle; {st.remaps} remaps")
    calls, visible, failed = remap_times(srv, n, st.remaps)
    row.update({"remaps": len(calls), "remaps_failed": failed, "remaps_not_seen": len(calls) - len(visible),
                "call_ms": spread(calls), "visible_ms": spread(visible), "fsync_ms": fsync_ms(srv.state)})
    return row


def one(ctx, n, check_port, st):
    """Starts ggond with n services, measures, stops it: the row, or None."""
    inst = f"ggond-services{n}"
    log(f"services: writing a config of {n} services")
    write_config(ctx, inst, n, check_port)
    t0 = time.time()
    srv = launch_ggond(ctx, inst, Placement(ctx.s))
    try:
        api_s, dns_s = wait_started(srv, t0, n, st.start_limit)
        if api_s is None or dns_s is None:
            log(f"services: ggond with {n} services did not start (API {api_s}, DNS {dns_s}); skipped. Last log lines:")
            print(tail(srv.logfile), end="", file=sys.stderr)
            return None
        log(f"services: {n}: control API after {api_s} s, s{n - 1} answers after {dns_s} s"
            f" (load average {loadavg()})")
        row = {"services": n, "targets": 2 * n, "interval_s": INTERVAL_S, "api_s": api_s, "dns_s": dns_s,
               "startup_s": max(api_s, dns_s)}
        row.update(measure(srv, n, st))
        return row
    finally:
        ctx.procs.stop(srv.proc)


def start_acceptor(ctx):
    """bench/acceptor.c on a free port, pinned to the generator's CPU: (proc, port), or None."""
    exe = c_tool("acceptor")
    if exe is None:
        log("services: bench/acceptor.c did not build; the services part is skipped")
        return None
    port = free_port()
    p = ctx.procs.start(pinned([exe, port], ctx.s.gen_cpu, ctx.s.nice))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    log("services: the acceptor does not accept; the services part is skipped")
    ctx.procs.stop(p)
    return None


def run(ctx):
    """The services rows, one per N."""
    st = Settings()
    if not st.counts:
        return []
    acc = start_acceptor(ctx)
    if acc is None:
        return []
    rows = []
    try:
        for n in st.counts:
            if n < 1:
                continue
            row = one(ctx, n, acc[1], st)
            if row is not None:
                rows.append(row)
    finally:
        ctx.procs.stop(acc[0])
    return rows

"""scripts/bench --outputs N [N ...]: the operator outputs of one ggond with N
services of 2 TCP-checked targets (the shape of --cluster-scale; the backup
of every 10th service is checked on a closed port, so 10 % are problem
services).

Reports per N: /metrics bytes (plain, and gzip as Prometheus fetches it)
and scrape time (median of 5, wall time of the whole HTTP exchange), the
whole `GET /v1/status` and the `?down=true` one (bytes, time), and the
status page (bytes, time). With --page N, the status page at N services is
also loaded in headless Chromium (over --remote-debugging-pipe): the load
event and DOMContentLoaded (the HTML parsed) after navigation start, as the
browser measures them (median of 5 loads). With --target-histograms, a run
with `[control] metrics_target_histograms = true` too (the old layout's
size).

Usage: scripts/bench --outputs N [N ...] [--page N] [--target-histograms]
       [--no-build] [--json FILE]
Saves bench/results/DATE-HOST-outputs.json unless --json names a file.
BENCH_GGOND runs another ggond binary (default target/release/ggond).
Only 127.0.0.1 is used; every process started here is stopped by its PID.
"""

import argparse
import fcntl
import gzip
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

from .common import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench operator outputs-bench-token-0123456789abcdef"


def addr(i, which):
    """Service i's target address (which: 0 primary, 1 backup): 127.x.y.z."""
    return f"127.{1 + which * 100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def fetch(port, path, gz=False, timeout=120):
    """(bytes on the wire, decoded body, seconds) of one GET with the token."""
    headers = {"Authorization": f"Bearer {TOKEN.split()[2]}"}
    if gz:
        headers["Accept-Encoding"] = "gzip"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        enc = r.headers.get("Content-Encoding")
    secs = time.perf_counter() - t
    body = gzip.decompress(raw) if enc == "gzip" else raw
    return len(raw), body, secs


def timed(port, path, gz=False, n=5):
    """Median seconds of n GETs, and the bytes of the last (wire, decoded)."""
    times, last = [], None
    for _ in range(n):
        wire, body, secs = fetch(port, path, gz)
        times.append(secs)
        last = (wire, len(body))
    return round(1000 * statistics.median(times), 1), last


class Run:
    def __init__(self, args, n, histograms):
        self.a, self.n, self.histograms = args, n, histograms
        self.dir = tempfile.mkdtemp(prefix="ggon-outputs.")
        self.procs = {}
        self.ggond = os.environ.get("BENCH_GGOND") or os.path.join(ROOT, "target/release/ggond")

    def start(self, name, cmd):
        out = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                            cwd=self.dir)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not os.environ.get("BENCH_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_config(self, acceptor):
        up, closed = free_port(), free_port()
        self.start("acceptor", [acceptor, str(up)])
        with open(os.path.join(self.dir, "scale.test.zone"), "w") as f:
            f.write("$ORIGIN scale.test.\n$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n")
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(os.path.join(self.dir, "token"), 0o600)
        check = 'check = {{ type = "tcp", address = "127.0.0.1:{}", interval = "5s", timeout = "1s", rise = 2, fall = 2 }}\n'
        services = []
        for i in range(self.n):
            backup = closed if i % 10 == 0 else up
            services.append(
                f'[[service]]\nname = "s{i}"\nfqdn = "s{i}.scale.test"\nttl = 30\n\n'
                f'[[service.target]]\nname = "primary"\naddresses = ["{addr(i, 0)}"]\n' + check.format(up) + "\n"
                f'[[service.target]]\nname = "backup"\naddresses = ["{addr(i, 1)}"]\n' + check.format(backup))
        self.ctl = free_port()
        user = '\nuser = "root"' if os.geteuid() == 0 else ""
        hist = "\nmetrics_target_histograms = true" if self.histograms else ""
        cfg = (f'[server]\nlisten = ["127.0.0.1:{free_port()}"]\nstate_dir = "{self.dir}/state"\nworkers = 1{user}\n\n'
               f'[control]\nlisten = "127.0.0.1:{self.ctl}"\ntoken_file = "{self.dir}/token"{hist}\n\n'
               f'[[zone]]\norigin = "scale.test"\nfile = "{self.dir}/scale.test.zone"\n\n' + "\n".join(services))
        self.config = os.path.join(self.dir, "ggon.toml")
        with open(self.config, "w") as f:
            f.write(cfg)

    def wait_checked(self, limit):
        """Until every target's health is known (2 checks each): seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            try:
                _, body, _ = fetch(self.ctl, "/metrics")
                text = body.decode()
                checked = text.count("\nggon_target_check_latency_seconds{")
                unknown = sum(1 for line in text.splitlines()
                              if line.startswith("ggon_target_healthy{") and line.endswith(" -1"))
                if checked == 2 * self.n and unknown == 0:
                    return round(time.monotonic() - t0, 1)
            except OSError:
                pass
            time.sleep(1)
        raise SystemExit(f"N={self.n}: not every target checked after {limit} s (logs in {self.dir})")

    def measure(self):
        r = {"services": self.n, "targets": 2 * self.n, "target_histograms": self.histograms}
        self.start("ggond", [self.ggond, "--config", self.config])
        r["all_checked_s"] = self.wait_checked(300)
        ms, (wire, size) = timed(self.ctl, "/metrics")
        r.update(metrics_bytes=size, metrics_ms=ms)
        ms, (wire, size) = timed(self.ctl, "/metrics", gz=True)
        r.update(metrics_gzip_bytes=wire, metrics_gzip_ms=ms)
        if not self.histograms:
            ms, (wire, size) = timed(self.ctl, "/v1/status")
            r.update(status_bytes=size, status_ms=ms)
            ms, (wire, size) = timed(self.ctl, "/v1/status?down=true")
            r.update(status_down_bytes=size, status_down_ms=ms)
            ms, (wire, size) = timed(self.ctl, "/")
            r.update(page_bytes=size, page_ms=ms)
            if self.a.page == self.n:
                r.update(chromium(self.ctl))
        return r


def chromium(port):
    """Load the status page 5 times in headless Chromium: the median load
    event and DOMContentLoaded (ms after navigation start). (Headless
    Chromium reports no first-contentful-paint entry for the page.)"""
    profile = tempfile.mkdtemp(prefix="ggon-outputs-chromium.")
    r3, w3 = os.pipe()  # to Chromium (its fd 3)
    r4, w4 = os.pipe()  # from Chromium (its fd 4)
    pid = os.fork()
    if pid == 0:
        # Out of the way first (a pipe end may itself be fd 3 or 4), then
        # onto 3 and 4 (dup2 makes them inheritable).
        high_r, high_w = fcntl.fcntl(r3, fcntl.F_DUPFD, 10), fcntl.fcntl(w4, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execvp("chromium", ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-extensions", "--window-size=1280,900", "--remote-debugging-pipe",
                               f"--user-data-dir={profile}", "about:blank"])
    os.close(r3)
    os.close(w4)
    cdp = Cdp(w3, r4)
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        cdp.call("Network.enable", {}, session)
        cdp.call("Network.setExtraHTTPHeaders",
                 {"headers": {"Authorization": f"Bearer {TOKEN.split()[2]}"}}, session)
        cdp.call("Page.enable", {}, session)
        loads, parsed, rows = [], [], 0
        for _ in range(5):
            cdp.call("Page.navigate", {"url": f"http://127.0.0.1:{port}/"}, session)
            cdp.wait_event("Page.loadEventFired", session, 30)
            expr = ("JSON.stringify({load: performance.timing.loadEventEnd - performance.timing.navigationStart,"
                    " dcl: performance.timing.domContentLoadedEventEnd - performance.timing.navigationStart,"
                    " rows: document.querySelectorAll('tr[data-service]').length})")
            for _ in range(50):  # loadEventEnd is set just after the event's handlers ran
                v = json.loads(cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                        session)["result"]["value"])
                if v["load"] > 0:
                    break
                time.sleep(0.05)
            loads.append(v["load"])
            parsed.append(v["dcl"])
            rows = v["rows"]
        return {"page_load_event_ms": statistics.median(loads),
                "page_dom_content_loaded_ms": statistics.median(parsed),
                "page_rows": rows}
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(w3)
        os.close(r4)
        shutil.rmtree(profile, ignore_errors=True)


class Cdp:
    """The DevTools protocol over Chromium's pipe: JSON messages ended by NUL."""

    def __init__(self, w, r):
        self.w, self.r, self.buf, self.next_id, self.events = w, r, b"", 0, []

    def send(self, msg):
        os.write(self.w, json.dumps(msg).encode() + b"\0")

    def recv(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise SystemExit("Chromium did not answer in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise SystemExit("Chromium closed its DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params, session=None, limit=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.send(msg)
        deadline = time.monotonic() + limit
        while True:
            m = self.recv(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise SystemExit(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, name, session, limit):
        deadline = time.monotonic() + limit
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == name and m.get("sessionId") == session:
                    del self.events[: i + 1]
                    return m
            self.events.append(self.recv(deadline))


def main(argv):
    ap = argparse.ArgumentParser(prog="scripts/bench --outputs", description=__doc__.split("\n")[0])
    ap.add_argument("services", type=int, nargs="+")
    ap.add_argument("--page", type=int, default=0, help="load the status page in Chromium at this N")
    ap.add_argument("--target-histograms", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if not args.json:
        os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.json = os.path.join(ROOT, f"bench/results/{stamp}-{socket.gethostname()}-outputs.json")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "ggond"], cwd=ROOT, check=True)
    tools = tempfile.mkdtemp(prefix="ggon-outputs-tools.")
    acceptor = os.path.join(tools, "bench-acceptor")
    subprocess.run(["cc", "-O2", "-o", acceptor, os.path.join(ROOT, "bench/acceptor.c")], check=True)
    results = []
    try:
        for n in args.services:
            for hist in ([False, True] if args.target_histograms else [False]):
                run = Run(args, n, hist)
                try:
                    run.write_config(acceptor)
                    r = run.measure()
                finally:
                    run.stop_all()
                results.append(r)
                print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(tools, ignore_errors=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0

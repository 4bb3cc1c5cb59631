"""What remaps cost ggond, through its control API:

- under_load (default mode): 100 remaps of cic between primary and backup
  while ggon-perf floods the service names at half of ggond's measured
  rate; every query must be answered NOERROR (no loss, no SERVFAIL). That
  each answer is exactly one target's address set is asserted by the test
  suite (tests/perf/remap_under_load.rs), which reads every answer.
- cost (--scale): per remap, the API call's time (decide, recompile, swap;
  the call returns once the answer is live) and the time until a UDP query
  sees the new address.
- rate (--scale): BENCH_REMAP_RATE remaps a second from keep-alive clients
  under a half-rate flood: the rate achieved, the calls' times, and the
  flood's queries lost or answered with anything but NOERROR/NXDOMAIN.

cost and rate also record what one atomic state write costs on the disk
right then, since a remap makes one (plus a history fsync) and its times
follow the disk's."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from .common import TIMEOUT, log, pinned, read_last_json, wait_bounded

# cic's targets in bench/ggon-bench.toml.
ADDRESS = {"primary": "127.0.0.11", "backup": "127.0.0.13"}


def token(state_dir):
    with open(os.path.join(state_dir, "control.token")) as f:
        return [line.split()[-1] for line in f if line.strip() and not line.startswith("#")][0]


def remap_request(control, tok, to, service="cic"):
    return urllib.request.Request(f"http://127.0.0.1:{control}/v1/services/{service}/remap",
                                  data=json.dumps({"to": to, "force": True}).encode(),
                                  headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})


def under_load(ctx, srv, flood_rows, services_file):
    q = [r["qps"] for r in flood_rows if r.get("server") == "ggond" and r.get("tool") == "ggon-perf" and r.get("qps")]
    top = int(max(q)) if q else 0
    if top <= 0:
        return None
    s = ctx.s
    rate = top // 2
    log(f"remaps under load: ggon-perf at {rate} qps (half of {top}) while cic is remapped 100 times")
    out = ctx.tmp / "remaps.out"
    cmd = ["taskset", "-c", s.gen_cpu, ctx.perf, "-s", "127.0.0.1", "-p", srv.port, "-d", services_file,
           "-l", s.secs, "-Q", rate, "-q", s.outstanding, "-t", TIMEOUT, "--json"]
    gen = ctx.procs.start(cmd, stdout=out, stderr=subprocess.DEVNULL)
    tok = token(srv.state)
    ok = 0
    time.sleep(0.5)
    for i in range(1, 101):
        try:
            urllib.request.urlopen(remap_request(srv.control, tok, "backup" if i % 2 else "primary"), timeout=30).read()
            ok += 1
        except OSError as e:
            print(f"bench: remap {i}: {e}", file=sys.stderr)
        time.sleep(round((s.secs - 1) / 100, 3))
    wait_bounded(gen, s.secs + TIMEOUT + 30)
    r = read_last_json(out)
    if r is None:
        log("remaps under load: no result")
        return None
    rc = r.get("rcodes", {})
    bad = {k: v for k, v in rc.items() if k != "NOERROR" and v}
    res = {"rate_qps": rate, "remaps_ok": ok, "sent": r.get("sent"), "completed": r.get("completed"),
           "lost": r.get("lost"), "rcodes": rc, "pass": r.get("lost") == 0 and not bad and ok == 100}
    log("remaps under load: %d remaps, %s queries sent, %s answered, %s lost, rcodes %s: %s" % (
        res["remaps_ok"], res["sent"], res["completed"], res["lost"], rc, "PASS" if res["pass"] else "FAIL"))
    return res


def fsync_ms(directory):
    """What one atomic state write (temp file, fsync, rename, fsync of the
    directory) costs on this disk now, averaged over 20."""
    n, t = 20, time.perf_counter()
    for _ in range(n):
        tmp = os.path.join(directory, "fsync-probe.tmp")
        with open(tmp, "wb") as f:
            f.write(b"x" * 2048)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(directory, "fsync-probe"))
        fd = os.open(directory, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return round((time.perf_counter() - t) / n * 1e3, 2)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None


class Asker:
    """Asks srv for one name's A record over UDP (one socket, 50 ms per try)."""

    def __init__(self, port, name):
        import dns.message
        query = dns.message.make_query(name, "A")
        query.flags = 0
        self.wire = query.to_wire()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.05)
        self.sock.connect(("127.0.0.1", port))

    def addresses(self):
        """The answer's A addresses; () on a timeout or a bad answer."""
        import dns.exception
        import dns.message
        import dns.rdatatype
        try:
            self.sock.send(self.wire)
            m = dns.message.from_wire(self.sock.recv(1500))
        except (OSError, dns.exception.DNSException):
            return ()
        return [rr.address for rrset in m.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset]

    def close(self):
        self.sock.close()


def timed_remap(req, seen, limit=30):
    """Sends the remap req from a thread while calling seen() in a loop
    (at most limit seconds): (call seconds or None if it failed, error,
    seconds from the send until seen() held, or None)."""
    done = {}

    def call():
        t = time.perf_counter()
        try:
            urllib.request.urlopen(req, timeout=limit).read()
            done["ok"] = True
        except OSError as e:
            done["err"] = str(e)
        done["s"] = time.perf_counter() - t
    t0 = time.perf_counter()
    th = threading.Thread(target=call)
    th.start()
    visible = None
    while time.perf_counter() < t0 + limit:
        if seen():
            visible = time.perf_counter() - t0
            break
    th.join()
    return (done["s"] if done.get("ok") else None), done.get("err"), visible


def cost(srv, records, n):
    """n remaps of cic, alternating backup and primary; per remap the call's
    time and the time from the call until a UDP query (asked in a loop
    while the call runs in another thread) answers the new address."""
    tok = token(srv.state)
    asker = Asker(srv.port, "cic.ggon.org.")
    calls, visible = [], []
    for i in range(n):
        to = "backup" if i % 2 == 0 else "primary"
        call_s, err, seen = timed_remap(remap_request(srv.control, tok, to), lambda: ADDRESS[to] in asker.addresses())
        if call_s is None:
            print(f"bench: remap {i} failed: {err}", file=sys.stderr)
            continue
        calls.append(call_s * 1e3)
        if seen is not None:
            visible.append(seen * 1e3)
        time.sleep(0.05)
    asker.close()
    return {"records": records, "remaps": len(calls), "fsync_ms": fsync_ms(srv.state),
            "call_ms": {"p50": pct(calls, 0.5), "max": max(calls) if calls else None},
            "visible_ms": {"p50": pct(visible, 0.5), "max": max(visible) if visible else None}}


def paced(srv, records, rate, clients, secs):
    """Remaps of cic, primary <-> backup, at rate a second for secs seconds
    from clients keep-alive HTTP clients (threads), paced: each client
    sends its share on a fixed schedule and catches up without sleeping
    when it is behind."""
    headers = {"Authorization": f"Bearer {token(srv.state)}", "Content-Type": "application/json"}
    times, errors, lock = [], [], threading.Lock()
    start = time.perf_counter() + 0.2

    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", srv.control, timeout=30)
        mine, n = [], 0
        while True:
            due = start + (n * clients + k) / rate
            if due >= start + secs:
                break
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            body = json.dumps({"to": "backup" if (n + k) % 2 == 0 else "primary", "force": True})
            t = time.perf_counter()
            try:
                c.request("POST", "/v1/services/cic/remap", body=body, headers=headers)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    raise OSError(f"HTTP {r.status}")
                mine.append(time.perf_counter() - t)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(str(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", srv.control, timeout=30)
            n += 1
        with lock:
            times.extend(mine)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    times.sort()

    def p(q):
        return round(times[min(len(times) - 1, int(q * len(times)))] * 1e3, 2) if times else None
    return {"records": records, "target_per_s": rate, "clients": clients, "seconds": round(elapsed, 2),
            "fsync_ms": fsync_ms(srv.state),
            "remaps": len(times), "errors": len(errors), "first_error": errors[0] if errors else None,
            "achieved_per_s": round(len(times) / elapsed, 1),
            "call_ms": {"p50": p(0.5), "p99": p(0.99), "max": p(1.0)}}


def rate(ctx, srv, records, rate_per_s, clients, queries, flood_qps):
    """paced() for BENCH_SECONDS under ggon-perf at half of flood_qps (the
    scale flood's rate) on the same zone."""
    s = ctx.s
    qps = int(flood_qps or 0) // 2
    if qps <= 0:
        log("remap rate: no flood rate measured; skipped")
        return None
    log(f"ggond: {rate_per_s} remaps/s of cic for {s.secs}s from {clients} clients, under ggon-perf at {qps} qps")
    out = ctx.tmp / "remaprate-flood.out"
    cmd = [ctx.perf, "-s", "127.0.0.1", "-p", srv.port, "-d", queries, "-l", s.secs + 1, "-Q", qps,
           "-q", s.outstanding, "-t", TIMEOUT, "--json"]
    gen = ctx.procs.start(pinned(cmd, s.gen_cpu, s.nice), stdout=out, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    r = paced(srv, records, rate_per_s, clients, s.secs)
    wait_bounded(gen, s.secs + TIMEOUT + 30)
    f = read_last_json(out) or {}
    rc = f.get("rcodes", {})
    r.update({"flood_qps": qps, "sent": f.get("sent"), "lost": f.get("lost"), "rcodes": rc,
              "bad_rcodes": sum(v for k, v in rc.items() if k != "NOERROR" and k != "NXDOMAIN")})
    log("remap rate: %s remaps in %ss = %s/s (target %s), %s errors, call p50/p99 %s/%s ms; flood %s qps: %s sent, %s lost" % (
        r.get("remaps"), r.get("seconds"), r.get("achieved_per_s"), r.get("target_per_s"), r.get("errors"),
        r.get("call_ms", {}).get("p50"), r.get("call_ms", {}).get("p99"), r["flood_qps"], r["sent"], r["lost"]))
    return r

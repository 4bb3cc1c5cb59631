#!/usr/bin/env python3
"""scripts/bench --dnssec: what signing costs ggond.

1. Queries per server CPU-second of the same ggon-perf flood (bench/queries.txt)
   against ggond serving bench/ggon.org.zone signed online (ECDSA P-256 KSK +
   ZSK, NSEC), with DO=1 and without; the ratio DO/plain is the figure asked
   (>= 0.8). NSD serving the same signed zone (ggond's AXFR of it) is the
   reference, with DO=1.
2. A remap on a signed zone of 10,000 generated records: ggon-ctl's wall time
   and the time until the new (signed) answer is served, over several remaps.
3. RSS and start-up time (start to first answer) of ggond with a signed zone
   of 100,000 records.

Each server is pinned to CPU $BENCH_SERVER_CPU (0) with one worker, the
generator to $BENCH_GEN_CPU (1); floods last $BENCH_SECONDS (10) s,
$BENCH_ROUNDS (2) rounds alternating. Everything stays on 127.0.0.1 and every
process started here is stopped at the end. Results: bench/results/DATE-HOST-dnssec.json.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
GGOND, CTL, PERF = (os.path.join(REL, b) for b in ("ggond", "ggon-ctl", "ggon-perf"))
SECS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SCPU = os.environ.get("BENCH_SERVER_CPU", "0")
GCPU = os.environ.get("BENCH_GEN_CPU", "1")
HZ = os.sysconf("SC_CLK_TCK")
PROCS = []


def log(msg):
    print(f"dnssec-bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree(root):
    """root and all its descendants (NSD forks its server processes)."""
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                children.setdefault(int(proc_stat(p)[1]), []).append(int(p))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pid):
    total = 0
    for p in tree(pid):
        try:
            total += sum(int(x) for x in proc_stat(p)[11:15])
        except OSError:
            pass
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dig(port, *args):
    return subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1", *args],
        capture_output=True, text=True, timeout=10).stdout


def wait_answer(port, limit=600):
    end = time.time() + limit
    while time.time() < end:
        if "status: NOERROR" in dig(port, "ggon.org", "SOA"):
            return True
        time.sleep(0.05)
    return False


def keygen(dirname):
    keys = []
    for ksk in (True, False):
        args = [CTL, "dnssec", "keygen", "ggon.org", "--dir", dirname] + (["--ksk"] if ksk else [])
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        keys.append(out.splitlines()[0][:-len(".key")])
    return keys


def start_ggond(tmp, name, zone_file, keys, extra=""):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    port, control = free_port(), free_port()
    klist = ", ".join(f'"{k}"' for k in keys)
    cfg = os.path.join(d, "ggon.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
workers = 1
user = "root"
[[zone]]
origin = "ggon.org"
file = "{zone_file}"
allow_transfer = ["127.0.0.1"]
dnssec = {{ keys = [{klist}] }}
[[service]]
name = "cic"
fqdn = "cic.ggon.org"
ttl = 30
[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = {{ type = "tcp", address = "127.0.0.1:1", interval = "1s" }}
[[service.target]]
name = "backup"
addresses = ["127.0.0.13"]
check = {{ type = "tcp", address = "127.0.0.1:1", interval = "1s" }}
{extra}""")
    started = time.time()
    p = subprocess.Popen(
        ["taskset", "-c", SCPU, GGOND, "--config", cfg, "--listen", f"127.0.0.1:{port}",
         "--control", f"127.0.0.1:{control}", "--state-dir", os.path.join(d, "state")],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "ggond.log"), "w"), cwd=ROOT)
    PROCS.append(p)
    if not wait_answer(port):
        sys.exit(f"ggond ({name}) did not answer; see {d}/ggond.log")
    return p, port, control, cfg, time.time() - started, d


def start_nsd(tmp, zone_text):
    d = os.path.join(tmp, "nsd")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    with open(os.path.join(d, "ggon.org.zone"), "w") as f:
        f.write(zone_text)
    with open(os.path.join(d, "nsd.conf"), "w") as f:
        f.write(f"""server:
    ip-address: 127.0.0.1@{port}
    server-count: 1
    # No response rate limiting: the flood comes from one address.
    rrl-ratelimit: 0
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
remote-control:
    control-enable: no
zone:
    name: ggon.org
    zonefile: ggon.org.zone
""")
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    p = subprocess.Popen(["taskset", "-c", SCPU, nsd, "-d", "-c", os.path.join(d, "nsd.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    if not wait_answer(port, 60):
        log("NSD did not answer; no reference figure")
        return None, None
    return p, port


def flood(pid, port, do):
    args = ["taskset", "-c", GCPU, PERF, "-s", "127.0.0.1", "-p", str(port), "-d",
            os.path.join(ROOT, "bench", "queries.txt"), "-l", str(SECS), "-c", "1",
            "-q", "500", "-t", "2", "--json"] + (["-D"] if do else [])
    before = cpu_ticks(pid)
    g = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(SECS - 0.5)
    after = cpu_ticks(pid)
    out, _ = g.communicate(timeout=SECS + 60)
    r = json.loads(out)
    qps = r.get("qps") or 0
    cpu = (after - before) / HZ
    return {"qps": round(qps), "q_per_cpu_s": round(qps * (SECS - 0.5) / cpu) if cpu else None,
            "lost": r.get("lost"), "avg_latency_ms": (r.get("latency_ms") or {}).get("avg"),
            "truncated": r.get("truncated")}


def generated_zone(path, n):
    with open(os.path.join(ROOT, "bench", "ggon.org.zone")) as src, open(path, "w") as f:
        f.write(src.read())
        for i in range(n):
            f.write(f"gen{i} 300 IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")


def remap_cost(tmp, keys):
    zone = os.path.join(tmp, "gen10k.zone")
    generated_zone(zone, 10_000)
    p, port, control, cfg, _, d = start_ggond(tmp, "remap10k", zone, keys)
    token = os.path.join(d, "state", "control.token")
    ctl = [CTL, "--control", f"127.0.0.1:{control}", "--token-file", token]
    times, visible = [], []
    for i in range(10):
        to, addr = ("backup", "127.0.0.13") if i % 2 == 0 else ("primary", "127.0.0.11")
        t0 = time.time()
        subprocess.run(ctl + ["remap", "cic", "--to", to, "--force"], capture_output=True, check=True)
        times.append((time.time() - t0) * 1000)
        while True:
            out = dig(port, "+dnssec", "+short", "cic.ggon.org", "A")
            # The new address, with its signature (dig +short prints the
            # RRSIG as "A 13 3 ...").
            if addr in out and "A 13 " in out:
                break
            if time.time() - t0 > 5:
                break
        visible.append((time.time() - t0) * 1000)
    p.terminate()
    p.wait(timeout=10)
    times.sort()
    visible.sort()
    return {"records": 10_000, "remap_command_ms_median": round(times[len(times) // 2], 1),
            "visible_signed_ms_median": round(visible[len(visible) // 2], 1),
            "visible_signed_ms_max": round(visible[-1], 1)}


def big_zone(tmp, keys):
    zone = os.path.join(tmp, "gen100k.zone")
    generated_zone(zone, 100_000)
    p, port, _, _, took, _ = start_ggond(tmp, "rss100k", zone, keys)
    rss = rss_kib(p.pid)
    p.terminate()
    p.wait(timeout=10)
    return {"records": 100_000, "start_to_first_answer_s": round(took, 2), "rss_mib": round(rss / 1024, 1)}


def main():
    tmp = tempfile.mkdtemp(prefix="ggon-bench-dnssec-")
    try:
        keys = keygen(tmp)
        zone = os.path.join(ROOT, "bench", "ggon.org.zone")
        g, gport, _, _, _, _ = start_ggond(tmp, "flood", zone, keys)
        axfr = dig(gport, "+nocmd", "+nostats", "+nocomments", "ggon.org", "AXFR")
        # A transfer ends with the SOA again; a zone file has it once.
        lines = [l for l in axfr.splitlines() if l.strip()]
        axfr = "\n".join(lines[:-1]) + "\n"
        nsd, nport = start_nsd(tmp, axfr)
        rows = []
        for rnd in range(1, ROUNDS + 1):
            for name, pid, port, do in (("ggond", g.pid, gport, False), ("ggond", g.pid, gport, True),
                                        ("nsd", nsd.pid if nsd else None, nport, True)):
                if pid is None:
                    continue
                log(f"round {rnd}: {name} DO={int(do)}")
                r = flood(pid, port, do)
                r.update({"server": name, "do": do, "round": rnd})
                rows.append(r)
        for p in PROCS:
            p.terminate()
        def best(server, do):
            v = [r["q_per_cpu_s"] for r in rows if r["server"] == server and r["do"] == do and r["q_per_cpu_s"]]
            return max(v) if v else None
        plain, signed, nsd_do = best("ggond", False), best("ggond", True), best("nsd", True)
        log("remaps on a signed 10,000-record zone")
        remap = remap_cost(tmp, keys)
        log("a signed 100,000-record zone")
        big = big_zone(tmp, keys)
        print(f"{'server':8} {'DO':3} {'round':5} {'q/cpu-s':>9} {'qps':>8} {'lost':>6}")
        for r in rows:
            print(f"{r['server']:8} {int(r['do']):3} {r['round']:5} {r['q_per_cpu_s'] or 0:9} {r['qps']:8} {r['lost'] or 0:6}")
        if plain and signed:
            print(f"ggond DO=1 / DO=0 (best rounds): {signed / plain:.2f}  (goal >= 0.8)")
        if signed and nsd_do:
            print(f"ggond / NSD with DO=1 on the same signed zone: {signed / nsd_do:.2f}")
        print(f"remap on a signed 10k zone: ggon-ctl {remap['remap_command_ms_median']} ms (median), "
              f"signed answer visible after {remap['visible_signed_ms_median']} ms median, "
              f"{remap['visible_signed_ms_max']} ms max (goal <= 50 ms)")
        print(f"signed 100k zone: first answer after {big['start_to_first_answer_s']} s, RSS {big['rss_mib']} MiB")
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        out = os.path.join(ROOT, "bench", "results",
                           time.strftime("%Y%m%d-%H%M%S-") + socket.gethostname() + "-dnssec.json")
        with open(out, "w") as f:
            json.dump({"rows": rows, "remap": remap, "big_zone": big,
                       "ratio_do": signed / plain if plain and signed else None,
                       "ratio_nsd": signed / nsd_do if signed and nsd_do else None}, f, indent=1)
        print(f"saved {out}")
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
        if not os.environ.get("BENCH_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""--dnssec: what online signing costs ggond.

1. Queries per server CPU-second of the same ggon-perf flood
   (bench/queries.txt) against ggond serving bench/ggon.org.zone signed
   online (ECDSA P-256 KSK + ZSK, NSEC), with DO=1 and without; the ratio
   DO/plain is the cost of signed answers (goal >= 0.8). NSD serving the
   same signed zone (ggond's AXFR of it) is the reference, with DO=1.
2. A remap on a signed zone of 10,000 generated records: ggon-ctl's wall
   time and the time until the new signed answer is served, over 10 remaps
   (a remap re-signs the changed names).
3. RSS and start-up time (start to first answer) of ggond with a signed
   zone of 100,000 records.

Each server is pinned to BENCH_SERVER_CPU with one worker, the generator
to BENCH_GEN_CPU; floods last BENCH_SECONDS, BENCH_ROUNDS rounds
alternating. Saves bench/results/DATE-HOST-dnssec.json."""

import json
import shutil
import subprocess
import time

from .common import BENCH, HZ, cpu_ticks, die, free_port, log, release_bin, result_path, save_json, status_kib

QUERIES = BENCH / "queries.txt"


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


def keygen(d):
    """A KSK and a ZSK for ggon.org in d; their file names without .key."""
    keys = []
    for ksk in (True, False):
        args = [str(release_bin("ggon-ctl")), "dnssec", "keygen", "ggon.org", "--dir", str(d)]
        out = subprocess.run(args + (["--ksk"] if ksk else []), capture_output=True, text=True, check=True).stdout
        keys.append(out.splitlines()[0][:-len(".key")])
    return keys


def start_ggond(ctx, name, zone_file, keys):
    d = ctx.tmp / name
    d.mkdir(parents=True, exist_ok=True)
    port, control = free_port(), free_port()
    klist = ", ".join(f'"{k}"' for k in keys)
    cfg = d / "ggon.toml"
    cfg.write_text(f"""[server]
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
""")
    started = time.time()
    cmd = ["taskset", "-c", ctx.s.server_cpu, release_bin("ggond"), "--config", cfg, "--listen", f"127.0.0.1:{port}",
           "--control", f"127.0.0.1:{control}", "--state-dir", d / "state"]
    p = ctx.procs.start(cmd, stderr=d / "ggond.log")
    if not wait_answer(port):
        die(f"ggond ({name}) did not answer; see {d}/ggond.log")
    return p, port, control, time.time() - started, d


def start_nsd(ctx, zone_text):
    d = ctx.tmp / "nsd"
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (d / "ggon.org.zone").write_text(zone_text)
    (d / "nsd.conf").write_text(f"""server:
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
    p = ctx.procs.start(["taskset", "-c", ctx.s.server_cpu, nsd, "-d", "-c", d / "nsd.conf"],
                        stderr=subprocess.DEVNULL)
    if not wait_answer(port, 60):
        log("NSD did not answer; no reference figure")
        return None, None
    return p, port


def flood(ctx, pid, port, do):
    """One flood; q/cpu-s from the server's CPU over the first secs - 0.5 s."""
    secs = ctx.s.secs
    args = ["taskset", "-c", str(ctx.s.gen_cpu), str(release_bin("ggon-perf")), "-s", "127.0.0.1", "-p", str(port),
            "-d", str(QUERIES), "-l", str(secs), "-c", "1", "-q", "500", "-t", "2", "--json"] + (["-D"] if do else [])
    before = cpu_ticks(pid)
    g = ctx.procs.start(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(secs - 0.5)
    after = cpu_ticks(pid)
    out, _ = g.communicate(timeout=secs + 60)
    r = json.loads(out)
    qps = r.get("qps") or 0
    cpu = (after - before) / HZ
    return {"qps": round(qps), "q_per_cpu_s": round(qps * (secs - 0.5) / cpu) if cpu else None,
            "lost": r.get("lost"), "avg_latency_ms": (r.get("latency_ms") or {}).get("avg"),
            "truncated": r.get("truncated")}


def generated_zone(path, n):
    with open(BENCH / "ggon.org.zone") as src, open(path, "w") as f:
        f.write(src.read())
        for i in range(n):
            f.write(f"gen{i} 300 IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")


def remap_cost(ctx, keys):
    zone = ctx.tmp / "gen10k.zone"
    generated_zone(zone, 10_000)
    p, port, control, _, d = start_ggond(ctx, "remap10k", zone, keys)
    ctl = [str(release_bin("ggon-ctl")), "--control", f"127.0.0.1:{control}",
           "--token-file", str(d / "state" / "control.token")]
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
    ctx.procs.stop(p)
    times.sort()
    visible.sort()
    return {"records": 10_000, "remap_command_ms_median": round(times[len(times) // 2], 1),
            "visible_signed_ms_median": round(visible[len(visible) // 2], 1),
            "visible_signed_ms_max": round(visible[-1], 1)}


def big_zone(ctx, keys):
    zone = ctx.tmp / "gen100k.zone"
    generated_zone(zone, 100_000)
    p, _, _, took, _ = start_ggond(ctx, "rss100k", zone, keys)
    rss = status_kib(p.pid, "VmRSS") or 0
    ctx.procs.stop(p)
    return {"records": 100_000, "start_to_first_answer_s": round(took, 2), "rss_mib": round(rss / 1024, 1)}


def main(ctx):
    keys = keygen(ctx.tmp)
    g, gport, _, _, _ = start_ggond(ctx, "flood", BENCH / "ggon.org.zone", keys)
    axfr = dig(gport, "+nocmd", "+nostats", "+nocomments", "ggon.org", "AXFR")
    # A transfer ends with the SOA again; a zone file has it once.
    lines = [line for line in axfr.splitlines() if line.strip()]
    nsd, nport = start_nsd(ctx, "\n".join(lines[:-1]) + "\n")
    rows = []
    for rnd in range(1, ctx.s.rounds + 1):
        for name, pid, port, do in (("ggond", g.pid, gport, False), ("ggond", g.pid, gport, True),
                                    ("nsd", nsd.pid if nsd else None, nport, True)):
            if pid is None:
                continue
            log(f"round {rnd}: {name} DO={int(do)}")
            r = flood(ctx, pid, port, do)
            r.update({"server": name, "do": do, "round": rnd})
            rows.append(r)
    ctx.procs.stop(g)
    if nsd:
        ctx.procs.stop(nsd)

    def best(server, do):
        v = [r["q_per_cpu_s"] for r in rows if r["server"] == server and r["do"] == do and r["q_per_cpu_s"]]
        return max(v) if v else None
    plain, signed, nsd_do = best("ggond", False), best("ggond", True), best("nsd", True)
    log("remaps on a signed 10,000-record zone")
    remap = remap_cost(ctx, keys)
    log("a signed 100,000-record zone")
    big = big_zone(ctx, keys)
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
    out = result_path("-dnssec")
    save_json(out, {"rows": rows, "remap": remap, "big_zone": big,
                    "ratio_do": signed / plain if plain and signed else None,
                    "ratio_nsd": signed / nsd_do if signed and nsd_do else None}, indent=1)
    print(f"saved {out}")

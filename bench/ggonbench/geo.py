"""--geo: what geographic answers cost ggond.

1. ECS flood: ggond (pinned to BENCH_SERVER_CPU) is flooded from
   BENCH_GEN_CPU by ggon-perf with an EDNS Client Subnet option rotating
   over 1,000 /24 subnets (10.0.0.0/24 onwards), once against a per-region
   service (two regions splitting those subnets) and once against a
   single-active service in the same zone, BENCH_ROUNDS times each,
   alternating. The server's CPU time gives answered queries per
   CPU-second; the per-region/single ratio is the cost of the region
   lookup (target: >= 0.9).
2. Region map load: two [[region]]s with BENCH_PREFIXES (500,000) /24
   prefixes between them (alternating, so no two merge), once in
   `nets_file`s and once inline as TOML `nets` lists: `ggond --check-config`
   wall time and peak RSS (config read, region map built), and a ggond
   start to its first answer with its RSS then (target: <= 2 s and
   <= 100 MiB).

Saves bench/results/DATE-HOST-geo.json."""

import os
import subprocess
import time

from .common import (HZ, ROOT, cpu_ticks, die, env_whole, free_port, last_json, log, release_bin, result_path,
                     save_json, status_kib)

ZONE = """$ORIGIN ggon.org.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 86400 300
@ IN NS ns1
ns1 IN A 127.0.0.1
"""

TARGET = """[[service.target]]
name = "{name}"
addresses = ["{addr}"]
check = {{ type = "tcp", address = "127.0.0.1:1", interval = "1s" }}
"""


def config(d, regions):
    zone = d / "ggon.org.zone"
    zone.write_text(ZONE)
    text = f'[server]\nworkers = 1\n\n[[zone]]\norigin = "ggon.org"\nfile = "{zone}"\necs = true\n\n'
    text += regions
    text += '\n[[service]]\nname = "geo"\nfqdn = "geo.ggon.org"\nactive = "per-region"\n'
    text += 'order = { eu = ["ams", "nyc"], us = ["nyc", "ams"] }\n\n'
    text += TARGET.format(name="ams", addr="127.0.0.11") + TARGET.format(name="nyc", addr="127.0.0.12")
    text += '\n[[service]]\nname = "cic"\nfqdn = "cic.ggon.org"\n\n'
    text += TARGET.format(name="primary", addr="127.0.0.13") + TARGET.format(name="backup", addr="127.0.0.14")
    path = d / "ggon.toml"
    path.write_text(text)
    return path


def start_ggond(ctx, d, cfg, pin=True):
    port, ctl = free_port(), free_port()
    cmd = [release_bin("ggond"), "--config", cfg, "--listen", f"127.0.0.1:{port}",
           "--control", f"127.0.0.1:{ctl}", "--state-dir", d / "state", "--user", "root"]
    if pin:
        cmd = ["taskset", "-c", ctx.s.server_cpu] + cmd
    t0 = time.monotonic()
    p = ctx.procs.start(cmd, stdout=d / f"ggond-{port}.log")
    return p, port, t0


def dig_a(port, name, subnet=None):
    args = ["dig", "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1", "+short", name, "A"]
    if subnet:
        args.append(f"+subnet={subnet}")
    r = subprocess.run(args, capture_output=True, text=True, timeout=10)
    # +short prints errors (";; connection timed out ...") on stdout too.
    return [line.strip() for line in r.stdout.splitlines() if line.strip() and not line.startswith(";")]


def wait_answer(p, port, name, limit=120.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if p.poll() is not None:
            die(f"ggond exited ({p.returncode}) during start-up")
        if dig_a(port, name):
            return True
        time.sleep(0.02)
    die(f"no answer for {name} within {limit} s")


def flood(ctx, d, port, pid, name, tag, rnd):
    s = ctx.s
    qfile = d / f"q-{name}.txt"
    qfile.write_text(f"{name}.ggon.org A\n")
    cmd = ["taskset", "-c", str(s.gen_cpu), str(release_bin("ggon-perf")), "-s", "127.0.0.1", "-p", str(port),
           "-d", str(qfile), "-l", str(float(s.secs)), "-q", str(s.outstanding), "-c", "4", "--ecs", "10.0.0.0/24",
           "--ecs-rotate", "1000", "--json"]
    before = cpu_ticks(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=s.secs + 60)
    ticks = cpu_ticks(pid) - before
    r = last_json(out.stdout)
    if r is None:
        die(f"ggon-perf produced no statistics: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    cpu_s = ticks / HZ
    row = {"service": tag, "round": rnd, "qps": r.get("qps"), "completed": r.get("completed"),
           "lost": r.get("lost"), "server_cpu_s": cpu_s,
           "q_per_cpu_s": r["completed"] / cpu_s if cpu_s > 0 else None,
           "rcodes": r.get("rcodes")}
    log(f"{tag:<10} round {rnd}: {row['qps']:.0f} q/s, {row['q_per_cpu_s']:.0f} q/cpu-s, lost {row['lost']}")
    return row


def ecs_flood(ctx, d):
    # eu: the first 500 subnets (10.0.0.0 - 10.1.243.255), us: the rest.
    regions = ('[[region]]\nname = "eu"\nnets = ["10.0.0.0/16", "10.1.0.0/17", "10.1.128.0/18", '
               '"10.1.192.0/19", "10.1.224.0/20", "10.1.240.0/22"]\n\n'
               '[[region]]\nname = "us"\nnets = ["10.0.0.0/8"]\n')
    cfg = config(d, regions)
    p, port, _ = start_ggond(ctx, d, cfg)
    wait_answer(p, port, "geo.ggon.org.")
    # The regions must answer differently, by ECS, or the flood measures nothing.
    eu = dig_a(port, "geo.ggon.org.", subnet="10.0.5.0/24")
    us = dig_a(port, "geo.ggon.org.", subnet="10.3.5.0/24")
    if eu != ["127.0.0.11"] or us != ["127.0.0.12"]:
        die(f"per-region answers are wrong: eu {eu}, us {us}")
    rows = []
    for rnd in range(1, ctx.s.rounds + 1):
        rows.append(flood(ctx, d, port, p.pid, "geo", "per-region", rnd))
        rows.append(flood(ctx, d, port, p.pid, "cic", "single", rnd))
    ctx.procs.stop(p)

    def mean(tag, k):
        return sum(r[k] for r in rows if r["service"] == tag) / ctx.s.rounds
    summary = {t: {"qps": mean(t, "qps"), "q_per_cpu_s": mean(t, "q_per_cpu_s")} for t in ("per-region", "single")}
    summary["ratio_q_per_cpu_s"] = summary["per-region"]["q_per_cpu_s"] / summary["single"]["q_per_cpu_s"]
    return rows, summary


def region_map_load(ctx, d, prefixes, inline):
    """prefixes /24s from 10.0.0.0/24 on, alternately eu and us (no two
    neighbours merge: the map keeps one range per prefix), in a nets_file
    per region or (inline) as TOML `nets` lists."""
    eu, us = [], []
    for i in range(prefixes):
        a = (10 << 24) + (i << 8)
        (eu if i % 2 == 0 else us).append(f"{a >> 24 & 255}.{a >> 16 & 255}.{a >> 8 & 255}.0/24")
    regions = ""
    for name, nets in (("eu", eu), ("us", us)):
        if inline:
            regions += f'[[region]]\nname = "{name}"\nnets = [\n' + ",\n".join(f'"{n}"' for n in nets) + "\n]\n\n"
        else:
            path = d / f"{name}.nets"
            path.write_text("\n".join(nets) + "\n")
            regions += f'[[region]]\nname = "{name}"\nnets_file = "{path}"\n\n'
    cfg = config(d, regions)
    # --check-config: read and validate, region map built.
    t0 = time.monotonic()
    c = ctx.procs.start([release_bin("ggond"), "--check-config", "--config", cfg], stderr=subprocess.PIPE)
    # wait4: this child's own peak RSS (ru_maxrss, KiB).
    _, status, usage = os.wait4(c.pid, 0)
    c.returncode = os.waitstatus_to_exitcode(status)
    check_s = time.monotonic() - t0
    if c.returncode != 0:
        die(f"check-config failed: {c.stderr.read().decode()[-2000:]}")
    c.stderr.close()
    # A start to the first (regional) answer, and the RSS then.
    p, port, t0 = start_ggond(ctx, d, cfg, pin=False)
    wait_answer(p, port, "geo.ggon.org.")
    start_s = time.monotonic() - t0
    rss, hwm = status_kib(p.pid, "VmRSS"), status_kib(p.pid, "VmHWM")
    eu_ok = dig_a(port, "geo.ggon.org.", subnet="10.5.4.0/24") == ["127.0.0.11"]
    us_ok = dig_a(port, "geo.ggon.org.", subnet="10.5.5.0/24") == ["127.0.0.12"]
    ctx.procs.stop(p)
    out = {"prefixes": prefixes, "form": "inline nets" if inline else "nets_file",
           "check_config_s": check_s, "check_config_peak_rss_mib": usage.ru_maxrss / 1024,
           "start_to_first_answer_s": start_s, "rss_mib_after_start": rss / 1024,
           "peak_rss_mib_at_start": hwm / 1024, "answers_ok": eu_ok and us_ok}
    if not out["answers_ok"]:
        die(f"wrong regional answers with the {out['form']} map")
    log(f"region map of {prefixes} prefixes ({out['form']}): check-config {check_s:.2f} s, "
        f"peak RSS {out['check_config_peak_rss_mib']:.1f} MiB; start to first answer {start_s:.2f} s, "
        f"RSS {out['rss_mib_after_start']:.1f} MiB (peak {out['peak_rss_mib_at_start']:.1f} MiB)")
    return out


def main(ctx):
    prefixes = env_whole("BENCH_PREFIXES", 500000)
    rows, summary = ecs_flood(ctx, ctx.tmp)
    loads = [region_map_load(ctx, ctx.tmp, prefixes, False), region_map_load(ctx, ctx.tmp, prefixes, True)]
    s = summary
    print(f"ECS flood, 1,000 subnets, {ctx.s.rounds} x {ctx.s.secs:.0f} s each:")
    for t in ("per-region", "single"):
        print(f"  {t:<11} {s[t]['qps']:>10.0f} q/s  {s[t]['q_per_cpu_s']:>10.0f} q/cpu-s")
    print(f"  per-region / single (q/cpu-s): {s['ratio_q_per_cpu_s']:.3f}")
    for load in loads:
        print(f"Region map of {load['prefixes']} prefixes, {load['form']}: check-config "
              f"{load['check_config_s']:.2f} s (peak RSS {load['check_config_peak_rss_mib']:.1f} MiB); "
              f"start to first answer {load['start_to_first_answer_s']:.2f} s, RSS "
              f"{load['rss_mib_after_start']:.1f} MiB (peak {load['peak_rss_mib_at_start']:.1f} MiB)")
    path = result_path("-geo")
    save_json(path, {"ecs_flood": {"rows": rows, "summary": summary}, "region_map": loads}, indent=1)
    print(f"saved {os.path.relpath(path, ROOT)}")

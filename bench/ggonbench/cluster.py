"""--cluster: a soak of ggond's cluster mode instead of the comparison.

A 3-member etcd cluster (/usr/bin/etcd, Debian etcd-server; heartbeat
100 ms, election timeout 1 s) and 3 ggond nodes with the same zone and
token, each flooded by its own ggon-perf while cic is remapped between
primary and backup through random nodes and the leader's ggond is killed
(kill -9) and restarted a few times (soak.py drives that). It measures
what an operator relies on: lost queries per node, remaps acknowledged or
refused, the time from a decision until every node answers it, how long
live nodes answered different targets, how fast a new leader is named,
and whether the SOA serials agree at the end. No CPU pinning: 3 ggond,
3 etcd and 3 ggon-perf share the machine.

Settings: BENCH_CLUSTER_SECONDS (flood length, 60), BENCH_CLUSTER_REMAPS
(100), BENCH_CLUSTER_KILLS (3), BENCH_CLUSTER_DOWN (seconds a killed node
stays down, 4), BENCH_CLUSTER_QPS (per node, 10000; 0: no cap),
BENCH_OUTSTANDING and BENCH_NICE. Saves bench/results/DATE-HOST-cluster.json."""

import os
import subprocess
import sys
import time
import urllib.request

from . import soak
from .common import (BENCH, ROOT, TIMEOUT, die, env_whole, first_line, free_port, log, machine, need_binary,
                     result_path, save_json, tail, usage_error)

ETCD = "/usr/bin/etcd"
LEASE = "3s"
TARGETS = [{"name": "primary", "addresses": ["127.0.0.11"]}, {"name": "backup", "addresses": ["127.0.0.12"]}]


class Settings:
    def __init__(self):
        self.secs = env_whole("BENCH_CLUSTER_SECONDS", 60)
        self.remaps = env_whole("BENCH_CLUSTER_REMAPS", 100)
        self.kills = env_whole("BENCH_CLUSTER_KILLS", 3)
        self.down = env_whole("BENCH_CLUSTER_DOWN", 4)
        self.qps = env_whole("BENCH_CLUSTER_QPS", 10000)
        if not 10 <= self.secs <= 3600:
            usage_error("BENCH_CLUSTER_SECONDS must be 10..3600")
        if self.remaps > 10000 or self.kills > 100 or self.down > 60:
            usage_error("BENCH_CLUSTER_REMAPS (<= 10000), BENCH_CLUSTER_KILLS (<= 100) or BENCH_CLUSTER_DOWN (<= 60)"
                        " out of range")


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return '"health":"true"' in r.read().decode(errors="replace")
    except OSError:
        return False


def start_etcd(ctx, cdir):
    """Three members, one static cluster, short Raft timings; their client ports."""
    client = [free_port() for _ in range(3)]
    peer = [free_port() for _ in range(3)]
    initial = ",".join(f"etcd{i + 1}=http://127.0.0.1:{peer[i]}" for i in range(3))
    token = f"ggon-bench-{os.getpid()}-{int(time.time())}"
    # Nothing from the environment (ETCD_*) may change the cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    members = []
    for i in range(3):
        cmd = ["nice", "-n", ctx.s.nice, ETCD, "--name", f"etcd{i + 1}", "--data-dir", cdir / f"etcd{i + 1}.data",
               "--listen-client-urls", f"http://127.0.0.1:{client[i]}",
               "--advertise-client-urls", f"http://127.0.0.1:{client[i]}",
               "--listen-peer-urls", f"http://127.0.0.1:{peer[i]}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[i]}",
               "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", token,
               "--heartbeat-interval", "100", "--election-timeout", "1000", "--enable-grpc-gateway=true",
               "--logger", "zap", "--log-outputs", "stderr"]
        members.append(ctx.procs.start(cmd, stdout=cdir / f"etcd{i + 1}.log", env=env))
    deadline = time.monotonic() + 30
    for i in range(3):
        while not healthy(client[i]):
            if members[i].poll() is not None or time.monotonic() >= deadline:
                log(f"etcd member {i + 1} is not healthy (127.0.0.1:{client[i]}). Last log lines:")
                print(tail(cdir / f"etcd{i + 1}.log"), end="", file=sys.stderr)
                die("the etcd cluster did not start")
            time.sleep(0.1)
    log(f"etcd: 3 members healthy on 127.0.0.1:{client[0]},{client[1]},{client[2]}")
    return members, [f"http://127.0.0.1:{p}" for p in client]


def node_config(i, ndir, dns, ctl, token_file, endpoints):
    etcd = ", ".join(f'"{e}"' for e in endpoints)
    return f"""# ggond node{i} of scripts/bench --cluster
[server]
listen = ["127.0.0.1:{dns}"]
state_dir = "{ndir}/state"

[control]
listen = "127.0.0.1:{ctl}"
token_file = "{token_file}"

[cluster]
etcd = [{etcd}]
node = "node{i}"
lease_ttl = "{LEASE}"

[[zone]]
origin = "ggon.org"
file = "{ROOT}/zones/ggon.org.zone"

[[service]]
name = "cic"
fqdn = "cic.ggon.org"
ttl = 30

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = {{ type = "exec", command = ["true"], interval = "1s" }}

[[service.target]]
name = "backup"
addresses = ["127.0.0.12"]
check = {{ type = "exec", command = ["true"], interval = "1s" }}
"""


def main(ctx, cs):
    ggond, ctl = need_binary("ggond"), need_binary("ggon-ctl")
    perf = need_binary("ggon-perf")
    cdir = ctx.tmp / "cluster"
    cdir.mkdir()
    members, endpoints = start_etcd(ctx, cdir)

    # One token for every node: a follower passes the operator's call on to
    # the leader with the operator's own token.
    token_file = cdir / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(24).hex() + "\n")

    nodes = []
    for i in (1, 2, 3):
        ndir = cdir / f"node{i}"
        (ndir / "state").mkdir(parents=True)
        dns, control = free_port(), free_port()
        cfg = ndir / "ggon.toml"
        cfg.write_text(node_config(i, ndir, dns, control, token_file, endpoints))
        check = subprocess.run([str(ggond), "--config", str(cfg), "--check-config"], stdout=subprocess.DEVNULL)
        if check.returncode != 0:
            die(f"ggond rejects the cluster config {cfg}")
        nodes.append({"name": f"node{i}", "config": str(cfg), "dir": str(ndir), "dns_port": dns,
                      "control_port": control})

    # The query mix: the service name between the lines of bench/queries.txt
    # (whose hostN names are NXDOMAIN in zones/ggon.org.zone).
    queries = cdir / "queries.txt"
    with open(BENCH / "queries.txt") as src, open(queries, "w") as out:
        out.write("; scripts/bench --cluster: cic.ggon.org A, then one line of bench/queries.txt, in turn\n")
        for line in src:
            if line.strip() and not line.startswith((";", "#")):
                out.write("cic.ggon.org A\n" + line.rstrip("\n") + "\n")

    spec = {"ggond": str(ggond), "ctl": str(ctl), "perf": str(perf), "nice": ctx.s.nice, "nodes": nodes,
            "targets": TARGETS, "etcd": endpoints, "lease_ttl": LEASE,
            "seconds": cs.secs, "remaps": cs.remaps, "kills": cs.kills, "down_s": cs.down,
            "qps": cs.qps, "outstanding": ctx.s.outstanding, "timeout_s": TIMEOUT, "segment_s": 5,
            "queries": str(queries)}
    save_json(cdir / "spec.json", spec, indent=1)
    log(f"cluster soak: {cs.secs} s, {cs.remaps} remaps, {cs.kills} leader kills, {cs.qps} qps per node (0: no cap)")
    result = soak.drive(spec, ctx.procs)
    save_json(cdir / "result.json", result, indent=1)
    for m in members:
        ctx.procs.stop(m)

    m = machine(ctx.loadavg_start)
    meta = {"mode": "cluster"}
    meta.update({k: m[k] for k in ("date", "host", "kernel", "cpu", "nproc", "loadavg_start", "loadavg_end")})
    meta.update({"nice": ctx.s.nice, "git": m["git"], "versions": {"etcd": first_line([ETCD, "--version"])}})
    report(result, meta, result_path("-cluster"))
    if not result.get("started"):
        die("the cluster soak did not run")


def ms(v):
    return "-" if v is None else f"{v * 1000:.0f} ms"


def report(r, meta, result_file):
    sp = r["spec"]
    print()
    print(f"Cluster soak: 3 ggond nodes, 3 etcd members (lease {sp['lease_ttl']}), all on 127.0.0.1;"
          f" {sp['seconds']} s of ggon-perf per node at {sp['qps'] or 'unlimited'} qps"
          f" ({sp['outstanding']} in flight, {sp['timeout_s']} s timeout, {sp['segment_s']} s segments),"
          f" {sp['remaps']} remaps, {sp['kills']} leader kills (restart after {sp['down_s']} s)")
    if not r.get("started"):
        print("the cluster did not start; see the messages above")
    else:
        hdr = f"{'node':<7} {'sent':>9} {'lost':>7} {'lost %':>8} {'lost up':>8} {'lost kill':>9} {'down s':>7}  rcodes"
        print(hdr)
        print("-" * len(hdr))
        for n in r["nodes"]:
            a = n["all"]
            pctl = "-" if a["lost_pct"] is None else f"{a['lost_pct']:.3f}"
            print(f"{n['node']:<7} {a['sent']:>9} {a['lost']:>7} {pctl:>8} {n['up']['lost']:>8}"
                  f" {n['around_kill']['lost']:>9} {n['down_s']:>7.2f}  {a['rcodes']}")
        print("lost up: in segments while the node was serving throughout; lost kill: in segments"
              " overlapping its own kill..restart (queries to a dead node are lost by design)")
        rm = r["remaps"]
        print()
        print(f"Remaps: {rm['acknowledged']}/{rm['planned']} acknowledged; {rm['refused_attempts']} refused"
              f" attempts (retried) over {rm['remaps_with_refusals']} remaps; {rm['never_acknowledged']} never acknowledged;"
              f" {rm['acknowledged_unconfirmed']} acknowledged with a node named as not confirming (exit 1)")
        for msg, cnt in sorted(rm["refusal_messages"].items(), key=lambda x: -x[1])[:5]:
            print(f"  {cnt:>3} x {msg[:150]}")
        lat = rm["latency_s"]
        print(f"Decision to all live nodes (ggon-ctl return -> every node answers the new target):"
              f" p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])}, max {ms(lat['max'])} (n={lat['n']});"
              f" ggon-ctl itself p50 {ms(rm['ctl_s']['p50'])}, p99 {ms(rm['ctl_s']['p99'])}")
        if rm["not_converged"]:
            print(f"  NOT converged within {soak.CONVERGE_LIMIT:.0f} s: remaps {rm['not_converged']}")
        d = r["disagreement"]
        print(f"Disagreement after a decision (two live nodes answer different targets; {d['samples']} samples"
              f" every {d['sample_every_s'] * 1000:.0f} ms): {d['episodes']} episodes, {d['longer_than_1s']} longer"
              f" than 1 s ({d['long_total_s']:.2f} s in all), longest {d['longest_s']:.2f} s")
        shown = d["long"][:5] or [e for e in d["each"] if e["duration_s"] == d["longest_s"] and e["duration_s"] >= 0.5][:1]
        for e in shown:
            print(f"  at {e['start']:.2f} s for {e['duration_s']:.2f} s (until {e['ended_by']}): {e['answers']}")
        print()
        print(f"{'kill':<5} {'killed':<7} {'at s':>6} {'new leader':<10} {'named s':>8} {'all s':>6} {'back s':>7}")

        def f(v):
            return "-" if v is None else f"{v:.2f}"
        for k in r["kills"]:
            if "skipped" in k:
                print(f"{k['kill']:<5} skipped: {k['skipped']}")
                continue
            print(f"{k['kill']:<5} {k['killed']:<7} {k['at']:>6.2f} {str(k.get('new_leader')):<10}"
                  f" {f(k.get('named_after_s')):>8} {f(k.get('all_survivors_after_s')):>6} {f(k.get('down_s')):>7}")
        print("named s: kill -9 to the first survivor's `ggon-ctl cluster` naming a new leader; all s: both"
              " survivors; back s: kill to the restarted node serving again")
        fin = r["final"]
        print()
        print(f"End: SOA serials {fin['serials']} {'AGREE' if fin['serials_agree'] else 'DIFFER'};"
              f" answers {fin['answers']} {'agree' if fin['answers_agree'] else 'DIFFER'}"
              f" (checked {fin['after_s']:.1f} s after the run)")
        warn = {k: v["count"] for k, v in r["log_warnings"].items()}
        print(f"WARN/ERROR log lines per node: {warn}")
    meta["cluster"] = r
    save_json(result_file, meta, indent=1)
    print(f"\nsaved {result_file}")

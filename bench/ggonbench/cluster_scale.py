"""scripts/bench --cluster-scale N: 3 etcd members and 3 ggond nodes on loopback with N
services of 2 TCP-checked targets each, all started together.

Reports: start -> a leader and every node answering; steady CPU per process
over a window; lease losses and leader changes in that window; etcd's
database size and keys; bytes written per remap; remap through a follower
(median, max, and whether every node answers it when ggon-ctl returns); a
site failure (10 % of the primaries stop at once: time until every node
answers every backup). Optional: all three nodes restarted at once, and
etcd stopped for a while then started (time to a stable leader again).

Also optional: a remap storm (K remaps through the leader's control API
from C clients at once, twice: etcd's database size after each K) and the CPU of a single ggond
with the same services and no cluster, for comparison.

Usage: scripts/bench --cluster-scale N [--steady S] [--remaps R] [--restart]
       [--etcd-outage S] [--storm K [--storm-clients C] [--storm-rounds R]] [--pinned] [--single]
       [--no-build] [--json FILE]

--pinned starts every node from a local state with every service pinned
(the first leader writes it all to etcd: the largest requests a cluster
sends); the largest request any node sent is read from its /metrics.
Saves bench/results/DATE-HOST-cluster-scale-N.json unless --json names a file.
Only 127.0.0.1 is used; every process started here is stopped by its PID.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import dns.message
import dns.query
import dns.rdatatype

from .common import HZ, cpu_ticks, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ETCD = "/usr/bin/etcd"
PREFIX = "/ggon-scale/"


def cpu_seconds(pid):
    """utime + stime of a process (and its reaped children), in seconds."""
    return cpu_ticks(pid) / HZ


def gateway(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def b64(s):
    return base64.b64encode(s.encode()).decode()


def prefix_end(p):
    b = bytearray(p.encode())
    b[-1] += 1
    return base64.b64encode(bytes(b)).decode()


class Bench:
    def __init__(self, args):
        self.a = args
        self.n = args.services
        self.dir = tempfile.mkdtemp(prefix="ggon-scale.")
        self.procs = {}  # name -> Popen
        self.ggond = os.path.join(ROOT, "target/release/ggond")
        self.ctl_bin = os.path.join(ROOT, "target/release/ggon-ctl")
        self.acceptor = os.path.join(self.dir, "bench-acceptor")

    # -- processes -----------------------------------------------------------
    def start(self, name, cmd, log):
        out = open(os.path.join(self.dir, log), "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                            cwd=self.dir)

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)

    # -- set-up ---------------------------------------------------------------
    def build(self):
        if not self.a.no_build:
            subprocess.run(["cargo", "build", "--release", "--bin", "ggond", "--bin", "ggon-ctl"],
                           cwd=ROOT, check=True)
        subprocess.run(["cc", "-O2", "-o", self.acceptor, os.path.join(ROOT, "bench/acceptor.c")],
                       check=True)

    def start_etcd(self):
        self.e_client = [free_port() for _ in range(3)]
        e_peer = [free_port() for _ in range(3)]
        initial = ",".join(f"e{i}=http://127.0.0.1:{e_peer[i]}" for i in range(3))
        self.etcd_cmds = []
        for i in range(3):
            cmd = [ETCD, "--name", f"e{i}", "--data-dir", os.path.join(self.dir, f"e{i}.data"),
                   "--listen-client-urls", f"http://127.0.0.1:{self.e_client[i]}",
                   "--advertise-client-urls", f"http://127.0.0.1:{self.e_client[i]}",
                   "--listen-peer-urls", f"http://127.0.0.1:{e_peer[i]}",
                   "--initial-advertise-peer-urls", f"http://127.0.0.1:{e_peer[i]}",
                   "--initial-cluster", initial, "--initial-cluster-state", "new",
                   "--initial-cluster-token", "ggon-scale", "--logger", "zap", "--log-outputs", "stderr"]
            self.etcd_cmds.append(cmd)
            self.start(f"etcd{i}", cmd, f"etcd{i}.log")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                gateway(self.e_client[0], "/v3/kv/range", {"key": b64("x")})
                return
            except Exception:
                time.sleep(0.2)
        sys.exit("etcd did not start")

    def write_configs(self):
        self.port_up, self.port_site = free_port(), free_port()
        self.start("acceptor-up", [self.acceptor, str(self.port_up)], "acceptor.log")
        self.start("acceptor-site", [self.acceptor, str(self.port_site)], "acceptor.log")
        with open(os.path.join(self.dir, "scale.test.zone"), "w") as f:
            f.write("$ORIGIN scale.test.\n$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n")
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write("bench operator scale-bench-token-0123456789abcdef\n")
        os.chmod(os.path.join(self.dir, "token"), 0o600)
        # Every tenth service's primary is checked on the "site" listener:
        # stopping it is a site failure of 10 % of the primaries.
        self.site = [i for i in range(self.n) if i % 10 == 0]
        services = []
        for i in range(self.n):
            pport = self.port_site if i % 10 == 0 else self.port_up
            services.append(
                f'[[service]]\nname = "s{i}"\nfqdn = "s{i}.scale.test"\nttl = 30\n\n'
                f'[[service.target]]\nname = "primary"\naddresses = ["{addr(i, 0)}"]\n'
                f'check = {{ type = "tcp", address = "127.0.0.1:{pport}", interval = "5s", timeout = "1s", rise = 2, fall = 2 }}\n\n'
                f'[[service.target]]\nname = "backup"\naddresses = ["{addr(i, 1)}"]\n'
                f'check = {{ type = "tcp", address = "127.0.0.1:{self.port_up}", interval = "5s", timeout = "1s", rise = 2, fall = 2 }}\n')
        body = "\n".join(services)
        endpoints = ", ".join(f'"http://127.0.0.1:{p}"' for p in self.e_client)
        self.nodes = []
        for k in range(3):
            dns_port, ctl_port = free_port(), free_port()
            state = os.path.join(self.dir, f"node{k}")
            os.makedirs(state)
            user = '\nuser = "root"' if os.geteuid() == 0 else ""
            cfg = (f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\nstate_dir = "{state}"\nworkers = 1{user}\n\n'
                   f'[control]\nlisten = "127.0.0.1:{ctl_port}"\ntoken_file = "{self.dir}/token"\n\n'
                   f'[cluster]\netcd = [{endpoints}]\nnode = "node{k}"\nprefix = "{PREFIX}"\nlease_ttl = "5s"\n\n'
                   f'[[zone]]\norigin = "scale.test"\nfile = "{self.dir}/scale.test.zone"\n\n{body}')
            path = os.path.join(self.dir, f"node{k}.toml")
            with open(path, "w") as f:
                f.write(cfg)
            self.nodes.append({"name": f"node{k}", "config": path, "dns": dns_port, "ctl": ctl_port})

    def start_nodes(self):
        for k, node in enumerate(self.nodes):
            self.start(node["name"], [self.ggond, "--config", node["config"]], f"node{k}.log")

    # -- reading --------------------------------------------------------------
    def etcd_get(self, key, prefix=False, count=False):
        body = {"key": b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        if count:
            body["count_only"] = True
        for port in self.e_client:
            try:
                return gateway(port, "/v3/kv/range", body)
            except Exception:
                continue
        return {}

    def leader(self):
        kvs = self.etcd_get(PREFIX + "leader").get("kvs", [])
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def members(self):
        return int(self.etcd_get(PREFIX + "nodes/", prefix=True, count=True).get("count", 0))

    def answer(self, node, i):
        q = dns.message.make_query(f"s{i}.scale.test.", dns.rdatatype.A)
        try:
            r = dns.query.udp(q, "127.0.0.1", port=node["dns"], timeout=0.5)
        except Exception:
            return None
        return sorted(rr.address for rrset in r.answer for rr in rrset)

    def all_answer(self, services, which):
        for node in self.nodes:
            for i in services:
                if self.answer(node, i) != [addr(i, which)]:
                    return False
        return True

    def ctl(self, node, *args):
        t0 = time.time()
        p = subprocess.run([self.ctl_bin, "--config", node["config"], *args], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        return p.returncode, time.time() - t0, p.stdout + p.stderr

    def log_count(self, text):
        n = 0
        for k in range(3):
            with open(os.path.join(self.dir, f"node{k}.log"), errors="replace") as f:
                n += f.read().count(text)
        return n

    def node_metrics(self, node, names):
        """The values of the metrics `names` on `node` (its /metrics)."""
        out = {}
        req = urllib.request.Request(f"http://127.0.0.1:{node['ctl']}/metrics",
                                     headers={"Authorization": "Bearer scale-bench-token-0123456789abcdef"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                for line in r.read().decode().splitlines():
                    name, _, value = line.partition(" ")
                    if name in names:
                        out[name] = float(value)
        except (OSError, ValueError):
            pass
        return out

    def agreed_leader(self):
        """The leader as the nodes themselves see it: exactly one node says
        it leads, and every node reaches etcd and counts 3 members (etcd's
        keys alone can still show a leader whose lease has not run out)."""
        names = {"ggon_cluster_leader", "ggon_cluster_connected", "ggon_cluster_members"}
        views = [self.node_metrics(n, names) for n in self.nodes]
        leaders = [n["name"] for n, v in zip(self.nodes, views) if v.get("ggon_cluster_leader") == 1]
        if len(leaders) == 1 and all(v.get("ggon_cluster_connected") == 1 and v.get("ggon_cluster_members") == 3
                                     for v in views):
            return leaders[0]
        return None

    # -- measurements ---------------------------------------------------------
    def wait_stable(self, limit, hold=5.0):
        """Until one leader is agreed by every node, every node has joined
        and answers DNS for a sample of services, and that lasts `hold`
        seconds with the same leader. Returns when that leader was first
        seen (None: not within `limit`)."""
        t0 = time.time()
        sample = sorted({0, self.n // 2, self.n - 1})
        last, since = None, None
        while time.time() - t0 < limit + hold:
            leader = self.agreed_leader()
            if leader and all(self.answer(node, i) is not None for node in self.nodes for i in sample):
                if leader != last:
                    last, since = leader, time.time()
                elif time.time() - since >= hold:
                    return since - t0 if since - t0 <= limit else None
            else:
                last = None
            time.sleep(0.3)
        return None

    def steady(self, seconds):
        names = [n for n in self.procs if n.startswith(("etcd", "node"))]
        before = {n: cpu_seconds(self.procs[n].pid) for n in names}
        lost, leads = self.log_count("lease lost"), self.log_count("now leads")
        time.sleep(seconds)
        after = {n: cpu_seconds(self.procs[n].pid) for n in names}
        cpu = {n: round(100 * (after[n] - before[n]) / seconds, 1) for n in names}
        return cpu, self.log_count("lease lost") - lost, self.log_count("now leads") - leads

    def etcd_size(self, in_use=False):
        """etcd's database file size (or, with `in_use`, the part of it in
        use: the file keeps its high-water mark until `etcdctl defrag`) and
        ggon's keys."""
        for port in self.e_client:
            try:
                st = gateway(port, "/v3/maintenance/status", {})
                keys = int(self.etcd_get(PREFIX, prefix=True, count=True).get("count", 0))
                return int(st.get("dbSizeInUse" if in_use else "dbSize", 0)), keys
            except Exception:
                continue
        return 0, 0

    def remaps(self, count):
        leader = self.leader()
        follower = next(n for n in self.nodes if n["name"] != leader)
        times, all_answer, bytes_per = [], 0, []
        for j in range(count):
            i = (j * 7919) % self.n
            rc, took, out = self.ctl(follower, "remap", f"s{i}", "--to", "backup", "--force",
                                     "--reason", "cluster-scale bench")
            if rc != 0:
                print(f"  remap s{i} failed: {out.strip()}", file=sys.stderr)
                continue
            times.append(took)
            if self.all_answer([i], 1):
                all_answer += 1
            kv = self.etcd_get(f"{PREFIX}state/svc/s{i}").get("kvs", [])
            serials = self.etcd_get(f"{PREFIX}state/serials").get("kvs", [])
            size = sum(len(base64.b64decode(k["key"])) + len(base64.b64decode(k.get("value", "")))
                       for k in kv + serials)
            bytes_per.append(size)
            self.ctl(follower, "release", f"s{i}")
        return times, all_answer, bytes_per

    def site_failure(self, limit):
        self.stop("acceptor-site", signal.SIGKILL)
        t0 = time.time()
        # (node, service) pairs not yet seen answering the backup; once seen,
        # not asked again, so each poll is short and the time is precise.
        pending = {(k, i) for k in range(3) for i in self.site}
        while time.time() - t0 < limit:
            pending = {(k, i) for (k, i) in pending if self.answer(self.nodes[k], i) != [addr(i, 1)]}
            if not pending:
                return time.time() - t0
            time.sleep(0.1)
        return None

    def storm(self, count, clients, offset=0):
        """`count` remaps through the leader's control API (pins to the
        backup and back, over every service), from `clients` operators at
        once, each waiting for its answer before the next."""
        import http.client
        import threading
        leader = self.leader()
        node = next(n for n in self.nodes if n["name"] == leader)
        headers = {"Authorization": "Bearer scale-bench-token-0123456789abcdef",
                   "Content-Type": "application/json"}
        failed = [0] * clients

        def client(c):
            conn = http.client.HTTPConnection("127.0.0.1", node["ctl"], timeout=30)
            for j in range(offset + c, offset + count, clients):
                i = j % self.n
                to = "backup" if (j // self.n) % 2 == 0 else "primary"
                body = json.dumps({"to": to, "force": True, "reason": "storm"})
                try:
                    conn.request("POST", f"/v1/services/s{i}/remap", body, headers)
                    r = conn.getresponse()
                    r.read()
                    failed[c] += r.status != 200
                except OSError:
                    failed[c] += 1
                    conn = http.client.HTTPConnection("127.0.0.1", node["ctl"], timeout=30)

        t0 = time.time()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.time() - t0, sum(failed)

    def largest_request(self):
        """The largest etcd transaction any node sent (its /metrics)."""
        name = "ggon_etcd_largest_request_bytes"
        return int(max(self.node_metrics(n, {name}).get(name, 0) for n in self.nodes))

    def pin_all(self):
        """Every node starts from a local state with every service pinned to
        its backup: the first leader brings it into etcd (the largest
        writes a cluster makes)."""
        now = int(time.time())
        pin = {"target": "backup", "reason": "pinned by the scale benchmark, a longer reason as operators write them",
               "author": "bench-operator", "since": now}
        state = {"services": {f"s{i}": {"active": "backup", "pin": pin} for i in range(self.n)}, "serials": {}}
        for k in range(3):
            with open(os.path.join(self.dir, f"node{k}", "state.json"), "w") as f:
                json.dump(state, f)

    def single_cpu(self, seconds):
        """The same services on one ggond without a cluster."""
        with open(self.nodes[0]["config"]) as f:
            cfg = f.read()
        head, rest = cfg.split("[cluster]", 1)
        cfg = head + rest[rest.index("[[zone]]"):]
        cfg = cfg.replace(os.path.join(self.dir, "node0"), os.path.join(self.dir, "single"))
        os.makedirs(os.path.join(self.dir, "single"))
        path = os.path.join(self.dir, "single.toml")
        with open(path, "w") as f:
            f.write(cfg.replace(f'127.0.0.1:{self.nodes[0]["dns"]}', f"127.0.0.1:{free_port()}")
                    .replace(f'127.0.0.1:{self.nodes[0]["ctl"]}', f"127.0.0.1:{free_port()}"))
        self.start("single", [self.ggond, "--config", path], "single.log")
        time.sleep(15)
        before = cpu_seconds(self.procs["single"].pid)
        time.sleep(seconds)
        cpu = round(100 * (cpu_seconds(self.procs["single"].pid) - before) / seconds, 1)
        self.stop("single")
        return cpu

    def restart_all(self, limit):
        for node in self.nodes:
            self.stop(node["name"])
        self.start_nodes()
        return self.wait_stable(limit)

    def etcd_outage(self, seconds, limit):
        for i in range(3):
            self.stop(f"etcd{i}")
        time.sleep(seconds)
        for i in range(3):
            cmd = [c for c in self.etcd_cmds[i]]
            cmd[cmd.index("new")] = "existing"
            self.start(f"etcd{i}", cmd, f"etcd{i}.log")
        return self.wait_stable(limit)

def addr(i, which):
    """Service i's target address (which: 0 primary, 1 backup): 127.x.y.z."""
    return f"127.{1 + which * 100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def main(argv):
    ap = argparse.ArgumentParser(prog="scripts/bench --cluster-scale", description=__doc__.split("\n")[0])
    ap.add_argument("services", type=int)
    ap.add_argument("--steady", type=float, default=30)
    ap.add_argument("--remaps", type=int, default=20)
    ap.add_argument("--restart", action="store_true")
    ap.add_argument("--etcd-outage", type=float, default=0)
    ap.add_argument("--storm", type=int, default=0)
    ap.add_argument("--storm-clients", type=int, default=8)
    ap.add_argument("--storm-rounds", type=int, default=2)
    ap.add_argument("--pinned", action="store_true")
    ap.add_argument("--single", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if not args.json:
        os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.json = os.path.join(ROOT, f"bench/results/{stamp}-{socket.gethostname()}-cluster-scale-{args.services}.json")
    b = Bench(args)
    result = {"services": args.services, "targets": 2 * args.services}
    try:
        b.build()
        b.start_etcd()
        b.write_configs()
        if args.pinned:
            b.pin_all()
        b.start_nodes()
        result["start_s"] = b.wait_stable(120)
        print(f"N={args.services}: leader and every node answering after {result['start_s']} s", flush=True)
        cpu, lost, leads = b.steady(args.steady)
        result.update(steady_cpu_pct=cpu, lease_losses=lost, leader_changes=leads)
        print(f"  steady {args.steady:.0f} s: CPU % {cpu}; lease losses {lost}; new leaders {leads}", flush=True)
        size, keys = b.etcd_size()
        result.update(etcd_db_bytes=size, etcd_keys=keys)
        times, agreed, bytes_per = b.remaps(args.remaps)
        if times:
            result.update(remap_p50_ms=round(1000 * statistics.median(times), 1),
                          remap_max_ms=round(1000 * max(times), 1),
                          remap_all_nodes_answer=f"{agreed}/{len(times)}",
                          bytes_per_remap=round(statistics.mean(bytes_per)))
        print(f"  remap via a follower: p50 {result.get('remap_p50_ms')} ms, max {result.get('remap_max_ms')} ms, "
              f"every node answers at return {result.get('remap_all_nodes_answer')}, "
              f"{result.get('bytes_per_remap')} bytes written per remap; etcd {size} bytes, {keys} keys", flush=True)
        result["largest_request_bytes"] = b.largest_request()
        print(f"  largest etcd request any node sent: {result['largest_request_bytes']} bytes", flush=True)
        result["site_failure_s"] = b.site_failure(60)
        print(f"  {len(b.site)} primaries stopped at once: every node answers every backup after "
              f"{result['site_failure_s']} s (fall 2 x interval 5 s + 3 s = 13 s allowed)", flush=True)
        if args.storm:
            # Each round moves every service (backup, then back, ...); etcd's
            # size is read 65 s after each: two rounds of the leader's
            # housekeeping (compaction every 30 s).
            took, used, size, failed = [], [], [], 0
            for r in range(args.storm_rounds):
                t, f = b.storm(args.storm, args.storm_clients, offset=r * args.storm)
                took.append(round(t, 1))
                failed += f
                time.sleep(65)
                size.append(b.etcd_size()[0])
                used.append(b.etcd_size(in_use=True)[0])
                print(f"  storm {r + 1}: {args.storm} remaps through the leader ({args.storm_clients} clients) "
                      f"in {t:.1f} s ({f} refused): etcd file {size[-1]} bytes, in use {used[-1]} bytes", flush=True)
            result.update(storm=args.storm, storm_s=took, storm_failed=failed,
                          etcd_db_after_storms=size, etcd_db_in_use_after_storms=used,
                          etcd_keys_after_storms=b.etcd_size()[1])
        if args.single:
            result["single_cpu_pct"] = b.single_cpu(args.steady)
            print(f"  one ggond alone with the same services: CPU {result['single_cpu_pct']} %", flush=True)
        if args.restart:
            result["restart_all_s"] = b.restart_all(120)
            print(f"  all three nodes restarted at once: stable again after {result['restart_all_s']} s", flush=True)
        if args.etcd_outage:
            result["etcd_outage_s"] = args.etcd_outage
            result["after_outage_s"] = b.etcd_outage(args.etcd_outage, 60)
            print(f"  etcd stopped for {args.etcd_outage:.0f} s: a stable leader again after "
                  f"{result['after_outage_s']} s", flush=True)
    finally:
        b.stop_all()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        if os.environ.get("BENCH_KEEP_TMP") == "1":
            print(f"kept {b.dir}", file=sys.stderr)
        else:
            shutil.rmtree(b.dir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])

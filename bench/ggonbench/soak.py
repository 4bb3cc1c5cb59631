"""The cluster soak's driver (cluster.py starts the etcd members and writes
the node configs and the spec): start the three ggond nodes (and restart
them after kills), flood every node with ggon-perf in segments, remap cic
between primary and backup through random nodes, kill the leader's ggond
a few times, sample every node's answer for cic every ~50 ms, and check
the SOA serials at the end. drive() returns the result (a dict) that
cluster.py reports and saves.

Every wait is bounded; only 127.0.0.1 is used; every process started here
is stopped when the run ends."""

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import dns.exception
import dns.message
import dns.rdatatype

from .common import log

SERVICE = "cic.ggon.org."
ZONE = "ggon.org."
SAMPLE_EVERY = 0.05
LONG_DISAGREEMENT = 1.0
CONVERGE_LIMIT = 10.0
CTL_LIMIT = 15.0


# ---------------------------------------------------------------------------
# Asking the nodes (UDP, one question; dnspython builds and reads the messages).

def a_addresses(msg):
    """(rcode, sorted A addresses of the answer section)."""
    addrs = [rr.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset]
    return msg.rcode(), sorted(addrs)


def soa_serial(msg):
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return rrset[0].serial
    return None


class Asker:
    """One UDP socket per DNS port; asks several servers the same question at once."""

    def __init__(self):
        self.socks = {}

    def sock(self, port):
        s = self.socks.get(port)
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            self.socks[port] = s
        return s

    def ask(self, ports, name, rdtype, timeout):
        """{port: answer (dns.message.Message)} for the ports that answered within timeout."""
        want, out = {}, {}
        query = dns.message.make_query(name, rdtype)
        query.flags = 0
        for p in ports:
            query.id = random.randrange(65536)
            s = self.sock(p)
            try:
                while True:  # drop late answers to earlier questions
                    s.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                pass
            try:
                s.send(query.to_wire())
                want[s] = (p, query.id)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(want), [], [], left)
            for s in ready:
                try:
                    buf = s.recv(4096)
                except OSError:
                    # ICMP port unreachable: nothing listens there (now).
                    want.pop(s, None)
                    continue
                p, qid = want[s]
                try:
                    msg = dns.message.from_wire(buf)
                except dns.exception.DNSException:
                    continue
                if msg.id == qid:
                    out[p] = msg
                    del want[s]
        return out

    def close(self):
        for s in self.socks.values():
            s.close()


# ---------------------------------------------------------------------------
# The nodes.

class Node:
    def __init__(self, spec, run):
        self.name = spec["name"]
        self.config = spec["config"]
        self.dir = spec["dir"]
        self.port = spec["dns_port"]
        self.control = spec["control_port"]
        self.run = run
        self.proc = None
        self.up = False
        self.starts = 0
        self.down = []  # [start, end] of each downtime, run-relative seconds

    def start(self):
        self.starts += 1
        self.ready_file = os.path.join(self.dir, f"ready.{self.starts}.json")
        self.log_file = os.path.join(self.dir, f"ggond.{self.starts}.log")
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        cmd = self.run.nice + [self.run.ggond, "--config", self.config, "--ready-file", self.ready_file]
        if os.geteuid() == 0:
            # ggond refuses to stay root unless told to (as scripts/bench's
            # own ggond is): the soak binds only unprivileged ports anyway.
            cmd += ["--user", "root"]
        self.proc = self.run.procs.start(cmd, stdout=self.log_file)

    def wait_ready(self, limit):
        """Seconds from now until the ready file names our pid and DNS answers; None on failure."""
        t0 = time.monotonic()
        asker = Asker()
        try:
            while time.monotonic() - t0 < limit:
                if self.proc.poll() is not None:
                    return None
                try:
                    with open(self.ready_file) as f:
                        ready = json.load(f)
                    if ready.get("pid") == self.proc.pid:
                        if asker.ask([self.port], ZONE, "SOA", 0.2):
                            return time.monotonic() - t0
                except (OSError, ValueError):
                    pass
                time.sleep(0.02)
            return None
        finally:
            asker.close()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n=8):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.readlines()[-n:]
        except OSError:
            return []


class Run:
    def __init__(self, spec, procs):
        self.spec = spec
        self.procs = procs
        self.ggond = spec["ggond"]
        self.ctl_bin = spec["ctl"]
        self.perf = spec["perf"]
        self.nice = ["nice", "-n", str(spec["nice"])] if spec.get("nice") else []
        self.nodes = [Node(n, self) for n in spec["nodes"]]
        self.addr = {a: t["name"] for t in spec["targets"] for a in t["addresses"]}
        self.target_addrs = {t["name"]: sorted(t["addresses"]) for t in spec["targets"]}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.perfs = set()  # ggon-perf processes running now
        self.t0 = time.monotonic()
        self.events = []  # (t, what) for the timeline

    def now(self):
        return time.monotonic() - self.t0

    def event(self, what):
        t = self.now()
        with self.lock:
            self.events.append([round(t, 3), what])
        log(f"t={t:6.2f}s {what}")

    def up_nodes(self):
        with self.lock:
            return [n for n in self.nodes if n.up]

    def ctl(self, node, *args, limit=CTL_LIMIT):
        t = time.monotonic()
        try:
            p = subprocess.run([self.ctl_bin, "--config", node.config, *args], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=limit)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = -1, "", f"ggon-ctl did not return within {limit:.0f} s"
        return rc, out, err.strip(), time.monotonic() - t

    def leader_seen_by(self, node):
        rc, out, _, _ = self.ctl(node, "cluster", "--json", limit=5)
        if rc != 0:
            return None, None
        try:
            c = json.loads(out)
        except ValueError:
            return None, None
        c = c.get("cluster", c)
        return c.get("leader"), c

    def target_of(self, buf):
        rcode, addrs = a_addresses(buf)
        if rcode != 0:
            return f"rcode{rcode}"
        names = {self.addr.get(a, a) for a in addrs}
        for name, want in self.target_addrs.items():
            if addrs == want:
                return name
        return "+".join(sorted(names)) or "empty"

    def cleanup(self):
        self.stop.set()
        with self.lock:
            perfs = list(self.perfs)
        for p in perfs:
            if p.poll() is None:
                p.kill()
        for n in self.nodes:
            n.stop()


# ---------------------------------------------------------------------------
# Load: one ggon-perf per node, in segments (so losses can be placed in time).

def flood(run, node, t_end, out):
    spec = run.spec
    seg_s = spec["segment_s"]
    while not run.stop.is_set():
        start = run.now()
        length = min(seg_s, t_end - start)
        if length < 0.5:
            break
        cmd = run.nice + [run.perf, "-s", "127.0.0.1", "-p", str(node.port), "-d", spec["queries"],
                          "-l", f"{length:.2f}", "-q", str(spec["outstanding"]), "-t", str(spec["timeout_s"]), "--json"]
        if spec["qps"] > 0:
            cmd += ["-Q", str(spec["qps"])]
        p = run.procs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        with run.lock:
            run.perfs.add(p)
        try:
            stdout, _ = p.communicate(timeout=length + spec["timeout_s"] + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, _ = p.communicate()
        with run.lock:
            run.perfs.discard(p)
        end = run.now()
        try:
            r = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            r = None
        out.append({"node": node.name, "start": round(start, 3), "end": round(end, 3), "result": r})


# ---------------------------------------------------------------------------
# Sampling: every ~50 ms, what each live node answers for the service.

def sampler(run, samples):
    asker = Asker()
    try:
        while not run.stop.is_set():
            t = run.now()
            up = run.up_nodes()
            got = asker.ask([n.port for n in up], SERVICE, "A", 0.2)
            row = {}
            for n in up:
                if n.port in got:
                    row[n.name] = run.target_of(got[n.port])
            # Only nodes still up after the round count (a kill during it).
            alive = {n.name for n in run.up_nodes()}
            samples.append((round(t, 3), {k: v for k, v in row.items() if k in alive}))
            time.sleep(max(0.0, SAMPLE_EVERY - (run.now() - t)))
    finally:
        asker.close()


def disagreements(samples, decisions):
    """Episodes during which two live nodes answered different targets.

    An episode is cut at each acknowledged decision (ggon-ctl's return): its
    duration is how long nodes disagreed after the latest decision, so two
    decisions in quick succession do not add up to one long episode.
    """
    decisions = sorted(decisions)
    episodes, cur, di = [], None, 0

    def close(at, why):
        cur["end"] = round(at, 3)
        cur["duration_s"] = round(at - cur["start"], 3)
        cur["ended_by"] = why
        episodes.append(cur)

    for t, row in samples:
        new_decision = None
        while di < len(decisions) and decisions[di][0] <= t:
            new_decision = decisions[di]
            di += 1
        differ = len(set(row.values())) > 1
        if cur is not None and new_decision is not None:
            close(new_decision[0], "next decision")
            cur = None
            if differ:
                cur = {"start": round(new_decision[0], 3), "answers": dict(row), "rows": []}
        if differ and cur is None:
            cur = {"start": t, "answers": dict(row), "rows": []}
        elif not differ and cur is not None:
            close(t, "agreement")
            cur = None
        if cur is not None and len(cur["rows"]) < 60:
            cur["rows"].append([t, dict(row)])
    if cur is not None:
        close(samples[-1][0], "end of sampling")
    return episodes


# ---------------------------------------------------------------------------
# Leader kills.

def current_leader(run, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not run.stop.is_set():
        up = run.up_nodes()
        if up:
            leader, _ = run.leader_seen_by(random.choice(up))
            node = next((n for n in up if n.name == leader), None)
            if node is not None:
                return node
        time.sleep(0.2)
    return None


def killer(run, at, down_s, kills):
    for k, t_at in enumerate(at):
        while run.now() < t_at and not run.stop.is_set():
            time.sleep(min(0.1, t_at - run.now()))
        if run.stop.is_set():
            return
        rec = {"kill": k + 1, "scheduled": round(t_at, 3)}
        kills.append(rec)
        victim = current_leader(run)
        if victim is None:
            rec["skipped"] = "no leader known within 10 s"
            run.event(f"kill {k + 1}: skipped, no leader known")
            continue
        with run.lock:
            victim.up = False
        victim.kill9()
        t_kill = run.now()
        rec.update({"killed": victim.name, "at": round(t_kill, 3)})
        run.event(f"kill {k + 1}: kill -9 {victim.name} (the leader, pid {victim.proc.pid})")
        survivors = [n for n in run.up_nodes() if n is not victim]
        named = {}
        restarted = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not run.stop.is_set():
            if not restarted and run.now() >= t_kill + down_s:
                victim.start()
                restarted = True
                rec["restarted_at"] = round(run.now(), 3)
                run.event(f"kill {k + 1}: restarting {victim.name}")
                threading.Thread(target=rejoin, args=(run, victim, t_kill, rec), daemon=True).start()
            for s in survivors:
                if s.name in named:
                    continue
                leader, _ = run.leader_seen_by(s)
                if leader and leader != victim.name:
                    named[s.name] = (round(run.now() - t_kill, 3), leader)
                    if len(named) == 1:
                        run.event(f"kill {k + 1}: {s.name} names {leader} the leader,"
                                  f" {named[s.name][0]:.2f} s after the kill")
            if len(named) == len(survivors) and restarted:
                break
            time.sleep(0.05)
        if named:
            first = min(named.values())
            rec.update({"new_leader": first[1], "named_after_s": first[0],
                        "all_survivors_after_s": max(v[0] for v in named.values()) if len(named) == len(survivors) else None,
                        "seen_by": {k2: {"after_s": v[0], "leader": v[1]} for k2, v in named.items()}})
        else:
            rec["new_leader"] = None
            run.event(f"kill {k + 1}: no new leader named within 30 s")
        if not restarted:
            victim.start()
            rec["restarted_at"] = round(run.now(), 3)
            rejoin(run, victim, t_kill, rec)
        # Let the restarted node rejoin before the next kill (bounded).
        deadline = time.monotonic() + 30
        while "ready_after_s" not in rec and "rejoin_failed" not in rec and time.monotonic() < deadline:
            time.sleep(0.05)


def rejoin(run, node, t_kill, rec):
    took = node.wait_ready(30)
    if took is None:
        rec["rejoin_failed"] = True
        run.event(f"{node.name} did not come back within 30 s: " + "".join(node.log_tail(4)).strip())
        return
    t = run.now()
    with run.lock:
        node.up = True
        node.down.append([rec["at"], round(t, 3)])
    rec["ready_after_s"] = round(t - rec["restarted_at"], 3)
    rec["down_s"] = round(t - t_kill, 3)
    run.event(f"{node.name} serving again ({rec['ready_after_s']:.2f} s after its restart)")


# ---------------------------------------------------------------------------
# Remaps.

def converge(run, target, t_ack, asker):
    """Seconds from t_ack until every live node answers target (None: not within the limit)."""
    want = run.target_addrs[target]
    first = {}
    deadline = t_ack + CONVERGE_LIMIT
    while run.now() < deadline:
        pending = [n for n in run.up_nodes() if n.name not in first]
        if not pending:
            break
        got = asker.ask([n.port for n in pending], SERVICE, "A", 0.05)
        t = run.now()
        for n in pending:
            buf = got.get(n.port)
            if buf is not None and a_addresses(buf)[1] == want:
                first[n.name] = t
        time.sleep(0.005)
    lagging = [n.name for n in run.up_nodes() if n.name not in first]
    if lagging:
        return None, lagging, sorted(first)
    return (max(first.values()) - t_ack if first else 0.0), [], sorted(first)


def remapper(run, at, remaps):
    asker = Asker()
    try:
        for i, t_at in enumerate(at):
            while run.now() < t_at and not run.stop.is_set():
                time.sleep(min(0.05, t_at - run.now()))
            if run.stop.is_set():
                return
            target = "backup" if i % 2 == 0 else "primary"
            rec = {"remap": i + 1, "to": target, "start": round(run.now(), 3), "refused": []}
            remaps.append(rec)
            deadline = time.monotonic() + 30
            for attempt in range(60):
                up = run.up_nodes()
                if not up:
                    time.sleep(0.2)
                    continue
                node = random.choice(up)
                rc, _, err, took = run.ctl(node, "remap", "cic", "--to", target, "--force",
                                           "--reason", f"bench cluster soak {i + 1}")
                # Exit 1 with "did not confirm": made, but the leader named
                # nodes that had not applied it yet (a killed or paused node
                # within its lease); converge() below tells whether they did.
                unconfirmed = rc == 1 and "did not confirm the change" in err
                if rc == 0 or unconfirmed:
                    rec.update({"node": node.name, "ack": round(run.now(), 3), "ctl_s": round(took, 3),
                                "attempts": attempt + 1})
                    if unconfirmed:
                        rec["unconfirmed"] = err.splitlines()[-1]
                    break
                line = err.splitlines()[-1] if err else f"exit {rc}"
                rec["refused"].append({"t": round(run.now(), 3), "node": node.name, "rc": rc, "error": line})
                if len(rec["refused"]) <= 2:
                    log(f"remap {i + 1} via {node.name} refused: {line}")
                if time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if "ack" not in rec:
                rec["failed"] = True
                run.event(f"remap {i + 1} to {target}: not acknowledged within 30 s")
                continue
            lat, lagging, nodes = converge(run, target, rec["ack"], asker)
            rec.update({"latency_s": None if lat is None else round(lat, 4), "nodes": nodes})
            if lagging:
                rec["lagging"] = lagging
                run.event(f"remap {i + 1} to {target}: {', '.join(lagging)} still not answering it {CONVERGE_LIMIT:.0f} s after the ack")
    finally:
        asker.close()


# ---------------------------------------------------------------------------
# The end: every node back, serials and answers.

def final_check(run, limit=10.0):
    asker = Asker()
    t0 = time.monotonic()
    res = {}
    try:
        while True:
            up = run.up_nodes()
            soa = asker.ask([n.port for n in run.nodes], ZONE, "SOA", 0.5)
            a = asker.ask([n.port for n in run.nodes], SERVICE, "A", 0.5)
            serials = {n.name: (soa_serial(soa[n.port]) if n.port in soa else None) for n in run.nodes}
            answers = {n.name: (run.target_of(a[n.port]) if n.port in a else None) for n in run.nodes}
            agree = len(up) == len(run.nodes) and None not in serials.values() and len(set(serials.values())) == 1
            same = len(set(answers.values())) == 1 and None not in answers.values()
            res = {"serials": serials, "answers": answers, "serials_agree": agree, "answers_agree": same,
                   "after_s": round(time.monotonic() - t0, 3)}
            if (agree and same) or time.monotonic() - t0 > limit:
                break
            time.sleep(0.2)
        status = {}
        for n in run.nodes:
            rc, out, err, _ = run.ctl(n, "status", "--json", limit=5)
            try:
                s = json.loads(out)
                status[n.name] = {"active": s["services"][0].get("active"),
                                  "leader": (s.get("cluster") or {}).get("leader"),
                                  "role": (s.get("cluster") or {}).get("role")}
            except (ValueError, KeyError, IndexError, TypeError):
                status[n.name] = {"error": err or f"exit {rc}"}
        res["status"] = status
        return res
    finally:
        asker.close()


def log_findings(run):
    """WARN/ERROR lines of every ggond log, per node (for the report)."""
    out = {}
    for n in run.nodes:
        lines = []
        for k in range(1, n.starts + 1):
            try:
                with open(os.path.join(n.dir, f"ggond.{k}.log"), errors="replace") as f:
                    for line in f:
                        if " WARN " in line or " ERROR " in line or "panicked" in line:
                            lines.append(f"[start {k}] {line.rstrip()}")
            except OSError:
                pass
        out[n.name] = {"count": len(lines), "first": lines[:40]}
    return out


def drive(spec, procs):
    """The soak described by spec (cluster.py); its result. Every process
    it started is stopped before it returns."""
    run = Run(spec, procs)
    try:
        return soak(run, spec)
    finally:
        run.cleanup()


def soak(run, spec):
    secs, n_remaps, n_kills = spec["seconds"], spec["remaps"], spec["kills"]
    result = {"spec": {k: spec[k] for k in ("seconds", "remaps", "kills", "down_s", "qps", "outstanding",
                                             "timeout_s", "segment_s", "lease_ttl", "etcd")},
              "started": False}
    for n in run.nodes:
        n.start()
    for n in run.nodes:
        took = n.wait_ready(30)
        if took is None:
            log(f"{n.name} did not start serving within 30 s. Last log lines:")
            for line in n.log_tail():
                print("    " + line.rstrip(), file=sys.stderr)
            return result
        n.up = True
        log(f"{n.name} is answering on 127.0.0.1:{n.port} (control {n.control}, pid {n.proc.pid})")
    # The cluster forms: every node names the same leader (bounded).
    deadline = time.monotonic() + 30
    leaders = {}
    while time.monotonic() < deadline:
        leaders = {n.name: run.leader_seen_by(n)[0] for n in run.nodes}
        if None not in leaders.values() and len(set(leaders.values())) == 1:
            break
        time.sleep(0.2)
    else:
        log(f"the cluster did not agree on a leader within 30 s: {leaders}")
        return result
    log(f"cluster formed: leader {next(iter(leaders.values()))}")
    # Start from primary on every node.
    rc, _, err, _ = run.ctl(run.nodes[0], "remap", "cic", "--to", "primary", "--force", "--reason", "bench start")
    if rc != 0:
        log(f"initial remap to primary failed: {err}")
        return result
    asker = Asker()
    lat, lagging, _ = converge(run, "primary", run.now(), asker)
    soa = asker.ask([n.port for n in run.nodes], ZONE, "SOA", 1.0)
    asker.close()
    if lagging:
        log(f"nodes {lagging} do not answer primary after the initial remap")
        return result
    result["serials_start"] = {n.name: soa_serial(soa[n.port]) if n.port in soa else None for n in run.nodes}
    result["started"] = True

    run.t0 = time.monotonic()
    run.event(f"flood starts: {secs} s, {spec['qps'] or 'unlimited'} qps per node")
    t_end = float(secs)
    segments, samples, remaps, kills = [], [], [], []
    threads = [threading.Thread(target=flood, args=(run, n, t_end, segments), daemon=True) for n in run.nodes]
    threads.append(threading.Thread(target=sampler, args=(run, samples), daemon=True))
    # Remaps evenly over [1, secs-2]; kills at 1/6, 3/6, 5/6 of the run.
    span = max(1.0, secs - 3.0)
    remap_at = [1.0 + span * i / max(1, n_remaps) for i in range(n_remaps)]
    kill_at = [secs * (2 * k + 1) / (2 * n_kills) for k in range(n_kills)]
    killer_t = threading.Thread(target=killer, args=(run, kill_at, spec["down_s"], kills), daemon=True)
    remap_t = threading.Thread(target=remapper, args=(run, remap_at, remaps), daemon=True)
    for t in threads + [killer_t, remap_t]:
        t.start()
    hard_end = time.monotonic() + secs + 150
    for t in [remap_t, killer_t] + threads[:len(run.nodes)]:
        t.join(max(0.1, hard_end - time.monotonic()))
    late = [r["remap"] for r in remaps if r.get("ack", 0) > secs]
    run.event("flood, remaps and kills done")
    # Sample on a little after the last change (disagreements still open).
    time.sleep(1.0)
    run.stop.set()
    threads[-1].join(5)
    if remap_t.is_alive() or killer_t.is_alive():
        log("remaps or kills did not finish within the run's limit")

    # Every node back up for the final check (a restart still under way).
    deadline = time.monotonic() + 30
    while len(run.up_nodes()) < len(run.nodes) and time.monotonic() < deadline:
        time.sleep(0.1)
    result["final"] = final_check(run)

    # Bookkeeping.
    node_rows = []
    for n in run.nodes:
        segs = [s for s in segments if s["node"] == n.name and s["result"]]
        def overlaps(s):
            # A segment's queries can be lost until its end (it waits for late answers).
            return any(d0 < s["end"] and s["start"] < d1 for d0, d1 in n.down)
        row = {"node": n.name, "segments": len(segs), "down": n.down,
               "down_s": round(sum(d1 - d0 for d0, d1 in n.down), 3)}
        for key, sel in (("all", segs), ("up", [s for s in segs if not overlaps(s)]),
                         ("around_kill", [s for s in segs if overlaps(s)])):
            sent = sum(s["result"]["sent"] for s in sel)
            lost = sum(s["result"]["lost"] for s in sel)
            completed = sum(s["result"]["completed"] for s in sel)
            rc = {}
            for s in sel:
                for k, v in s["result"].get("rcodes", {}).items():
                    rc[k] = rc.get(k, 0) + v
            row[key] = {"segments": len(sel), "sent": sent, "completed": completed, "lost": lost,
                        "lost_pct": round(100.0 * lost / sent, 4) if sent else None, "rcodes": rc}
        node_rows.append(row)
    acked = [r for r in remaps if "ack" in r]
    lats = sorted(r["latency_s"] for r in acked if r.get("latency_s") is not None)
    episodes = disagreements(samples, [(r["ack"], r["to"]) for r in acked])
    long_eps = [e for e in episodes if e["duration_s"] > LONG_DISAGREEMENT]
    for e in episodes:
        if e["duration_s"] >= 0.5:
            # What happened around it: kills, restarts and remaps.
            e["context"] = [ev for ev in run.events if e["start"] - 3 <= ev[0] <= e["end"]]
            e["remaps"] = [{k: r.get(k) for k in ("remap", "to", "node", "start", "ack", "latency_s")}
                           for r in remaps if e["start"] - 3 <= r.get("ack", -99) <= e["end"]]
        else:
            del e["rows"]
    refusals = {}
    for r in remaps:
        for x in r["refused"]:
            refusals[x["error"]] = refusals.get(x["error"], 0) + 1
    result.update({
        "nodes": node_rows,
        "remaps": {
            "planned": n_remaps, "acknowledged": len(acked),
            "refused_attempts": sum(len(r["refused"]) for r in remaps),
            "remaps_with_refusals": sum(1 for r in remaps if r["refused"]),
            "never_acknowledged": sum(1 for r in remaps if r.get("failed")),
            "acknowledged_unconfirmed": sum(1 for r in acked if r.get("unconfirmed")),
            "acknowledged_after_flood": late,
            "not_converged": [r["remap"] for r in acked if r.get("latency_s") is None],
            "refusal_messages": refusals,
            "latency_s": {"n": len(lats), "p50": pct(lats, 50), "p99": pct(lats, 99),
                          "max": lats[-1] if lats else None, "mean": (sum(lats) / len(lats)) if lats else None},
            "ctl_s": {"p50": pct(sorted(r["ctl_s"] for r in acked), 50),
                      "p99": pct(sorted(r["ctl_s"] for r in acked), 99)},
            "each": remaps,
        },
        "disagreement": {
            "samples": len(samples), "sample_every_s": SAMPLE_EVERY,
            "episodes": len(episodes), "longer_than_1s": len(long_eps),
            "longest_s": max((e["duration_s"] for e in episodes), default=0.0),
            "long_total_s": round(sum(e["duration_s"] for e in long_eps), 3),
            "long": long_eps,
            "each": episodes,
        },
        "kills": kills,
        "events": run.events,
        "log_warnings": log_findings(run),
    })
    return result


def pct(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, -(-p * len(xs) // 100) - 1))
    return xs[int(k)]

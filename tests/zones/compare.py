#!/usr/bin/env python3
"""Zone compatibility harness: ggond against BIND and NSD on a
corpus of zone files written by others (tests/data/zones/).

For every manifest entry (path, origin[, include base dir]):

  a. `named-checkzone ORIGIN FILE`: only files BIND accepts count;
  b. ggond loads it (`ggond --check-config` on a one-zone config), serves it
     on loopback, and its AXFR is compared record by record (owner, TTL,
     class, type, rdata in canonical wire form) with BIND's canonical form of
     the file (`named-compilezone -k warn -F raw`, read back here);
  c. NSD serves the same file on loopback, and for each (owner, type) of the
     zone plus a few misses and alias chains (queries.py), ggond's answer is
     compared with NSD's: rcode, AA flag and answer section (as a set of
     records, order ignored); where they differ, BIND's named (started for
     the batch the first time it is needed) is asked too, and a file whose
     every difference is one where BIND answers as ggond and not as NSD
     counts as answering like the reference servers ("answers_reference":
     where NSD and BIND disagree ggond sides with BIND);
  d. prints the counts, one line per failing file with its first reason, the
     top reasons by count, and writes a JSON report (--out).

Many zones are served at once by one ggond and one NSD (a batch); zones whose
origins nest or repeat go to different batches, and a zone that ggond cannot
load is left out of every batch (it is counted as not loaded).

Every subprocess has a timeout, every server listens on 127.0.0.1 only, and
every loop is bounded. Needs python3 with dnspython (Debian:
python3-dnspython), named-checkzone/named-compilezone (bind9-utils) and nsd;
named (bind9) if present. The servers are in servers.py, the record forms
in wire.py.

Usage:
  tests/zones/compare.py [--all | --subset] [--out report.json] [--only SUBSTR]
"""

import argparse
import collections
import concurrent.futures
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time

try:
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
except ImportError:  # pragma: no cover - reported to the caller
    sys.stderr.write(
        "compare.py: needs dnspython (Debian: apt-get install python3-dnspython; "
        "run with /usr/bin/python3)\n"
    )
    sys.exit(3)

from servers import (  # noqa: E402 (after the dnspython check)
    LazyBind,
    find_tool,
    first_error_line,
    ggond_zone_table,
    read_text,
    run,
    start_ggond,
    start_nsd,
)
from queries import queries_for  # noqa: E402
from wire import (  # noqa: E402
    parse_bind_raw,
    read_records,
    read_tcp_wire,
    record_key,
    show_key,
    tname,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(ROOT, "tests", "data", "zones")

# Time limits (seconds; the servers' are in servers.py).
T_QUERY = 3.0
T_AXFR = 30.0
MAX_AXFR_MESSAGES = 100000
MAX_BATCH = 60


def kind_of(reason):
    """A reason with file names, numbers, quoted text and names squeezed out,
    for counting failures by cause."""
    r = reason
    r = re.sub(r"^[^:\s]*:\d+:\s*", "", r)  # file:line:
    r = re.sub(r"^[^:]*\.(zone|db|signed|good|cf|conf|toml|tsv)[^:]*:\s*", "", r)
    r = re.sub(r"/[^\s:]+", "PATH", r)
    r = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "'…'", r)
    r = re.sub(r"\b[\w\\.*-]+\.\s", "NAME ", r)
    r = re.sub(r"\d+", "N", r)
    return r[:160]


# ---------------------------------------------------------------------------
# Manifest


def read_manifest(path):
    entries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) < 2:
                raise SystemExit(f"{path}:{n}: want path<TAB>origin[<TAB>basedir]")
            rel, origin = cols[0], cols[1]
            if not origin.endswith("."):
                origin += "."
            base = cols[2] if len(cols) > 2 and cols[2] else os.path.dirname(rel)
            entries.append(
                {
                    "path": rel,
                    "origin": origin,
                    "file": os.path.join(CORPUS, rel),
                    "basedir": os.path.join(CORPUS, base),
                }
            )
    return entries


# A quick representative subset (--subset): every file of the small sources
# and every third of the big ones (deterministic). `cargo test --test zones`
# runs the whole corpus, which is fast enough.
def subset(entries, stride=3):
    out = []
    counts = collections.Counter()
    for e in entries:
        src = e["path"].split("/", 1)[0]
        counts[src] += 1
        if src in ("ldns", "dnspython") or counts[src] % stride == 1:
            out.append(e)
    return out


# ---------------------------------------------------------------------------
# BIND: check and canonical form


def relpath_in(e):
    return os.path.relpath(e["file"], e["basedir"])


def bind_check(e, tools):
    rc, out = run([tools["named-checkzone"], "-i", "local", e["origin"], relpath_in(e)], cwd=e["basedir"])
    return rc == 0, ("" if rc == 0 else first_error_line(out))


def bind_canonical(e, tools, tmp):
    """The zone as BIND loads it: a set of (owner, ttl, class, type, rdata)
    with names lower-cased and rdata in canonical wire form (RFC 4034 6.2).
    Read from named-compilezone's raw output, so every type BIND knows comes
    through whatever dnspython's version knows."""
    out = os.path.join(tmp, "canon.raw")
    if os.path.exists(out):
        os.remove(out)
    rc, text = run(
        [tools["named-compilezone"], "-q", "-i", "local", "-k", "warn", "-F", "raw", "-o", out, e["origin"], relpath_in(e)],
        cwd=e["basedir"],
    )
    if rc != 0 or not os.path.exists(out):
        return None, "named-compilezone failed: " + first_error_line(text)
    with open(out, "rb") as f:
        data = f.read()
    try:
        return parse_bind_raw(data), ""
    except Exception as ex:  # a parse bug here is the harness's, say so
        return None, f"cannot read named-compilezone raw output: {ex!r}"


# ---------------------------------------------------------------------------
# ggond


def ggond_check(e, tools, tmp):
    cfg = os.path.join(tmp, "check.toml")
    with open(cfg, "w") as f:
        f.write("# generated by tests/zones/compare.py\n" + ggond_zone_table(e))
    rc, out = run([tools["ggond"], "--check-config", "--config", cfg], cwd=e["basedir"])
    if rc == 0:
        return True, ""
    msg = first_error_line(out) if rc is not None else out
    msg = msg.replace(cfg, "CFG").replace(e["file"], os.path.basename(e["file"]))
    msg = re.sub(r"^ggond: error: ", "", msg)
    msg = re.sub(r"^CFG:\d+: field `zone\.file`: ", "", msg)
    msg = msg.replace(os.path.basename(e["file"]) + ": ", "", 1)
    return False, msg or f"exit {rc}"


# ---------------------------------------------------------------------------
# NSD


def nsd_check(e, tools):
    """nsd-checkzone on the file (absolute path: it reads relative ones from
    its default zonesdir). Its $INCLUDE paths resolve against that zonesdir
    too, so for files with $INCLUDE the served zone decides (run_batch)."""
    rc, out = run([tools["nsd-checkzone"], e["origin"], e["file"]], cwd=e["basedir"])
    if rc == 0:
        return True, ""
    errs = [l for l in out.splitlines() if ": error: " in l]
    msg = errs[0].split(": error: ", 1)[1] if errs else first_error_line(out)
    return False, msg.replace(e["file"], os.path.basename(e["file"]))


def nsd_serves(addr, origin):
    try:
        r = ask(addr, origin, dns.rdatatype.SOA)
    except Exception:
        return False
    return (
        r.rcode() == dns.rcode.NOERROR
        and bool(r.flags & dns.flags.AA)
        and any(rr.rdtype == dns.rdatatype.SOA for rr in r.answer)
    )


# ---------------------------------------------------------------------------
# AXFR and queries


def axfr(addr, origin):
    """All records of an AXFR from addr, one entry per record (duplicates
    kept), the closing SOA removed. Raises on error. The messages are read
    here (read_records), not by dnspython, which refuses some RDATA that
    BIND accepts (an AMTRELAY of relay type 4, say)."""
    q = dns.message.make_query(origin, dns.rdatatype.AXFR)
    deadline = time.monotonic() + T_AXFR
    records = []
    soa_seen = 0
    with socket.create_connection(addr, timeout=T_QUERY) as s:
        dns.query.send_tcp(s, q, deadline)
        for _ in range(MAX_AXFR_MESSAGES):
            if time.monotonic() > deadline:
                raise TimeoutError(f"AXFR took over {T_AXFR} s")
            wire = read_tcp_wire(s)
            rcode, recs = read_records(wire)
            if rcode != dns.rcode.NOERROR:
                raise RuntimeError("AXFR answered " + dns.rcode.to_text(rcode))
            if not recs:
                raise RuntimeError("AXFR message with no records")
            for owner, rdtype, rdclass, ttl, rdata in recs:
                if rdtype == dns.rdatatype.SOA:
                    soa_seen += 1
                    if soa_seen == 2:
                        return records
                records.append(record_key(owner, ttl, rdclass, rdtype, rdata))
            if soa_seen == 0:
                raise RuntimeError("AXFR does not start with the SOA")
        raise RuntimeError("AXFR too long")


def compare_axfr(ref, got):
    got_counter = collections.Counter(got)
    got_set = set(got_counter)
    missing = sorted(ref - got_set)
    extra = sorted(got_set - ref)
    dups = sorted(k for k, n in got_counter.items() if n > 1)
    if not missing and not extra and not dups:
        return True, "", ""
    # Same record but another TTL: say so rather than missing+extra.
    ttl_of = {(k[0], k[2], k[3], k[4]): k[1] for k in extra}
    for k in missing:
        other = ttl_of.get((k[0], k[2], k[3], k[4]))
        if other is not None:
            return False, f"TTL {other} instead of {k[1]}: {show_key(k)}", f"TTL differs ({tname(k)})"
    for k in missing:
        other = [x for x in extra if (x[0], x[3]) == (k[0], k[3])]
        if other:
            return (
                False,
                f"{len(missing)} records differ, first: BIND {show_key(k)} | ggond {show_key(other[0])}",
                f"rdata differs ({tname(k)})",
            )
    if missing:
        return False, f"{len(missing)} records missing, first: {show_key(missing[0])}", f"record missing ({tname(missing[0])})"
    if extra:
        return False, f"{len(extra)} records extra, first: {show_key(extra[0])}", f"record extra ({tname(extra[0])})"
    return False, f"{len(dups)} records sent twice, first: {show_key(dups[0])}", f"record sent twice ({tname(dups[0])})"


def ask(addr, name, rdtype):
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=4096)
    q.flags &= ~dns.flags.RD
    r = dns.query.udp(q, addr[0], port=addr[1], timeout=T_QUERY)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, addr[0], port=addr[1], timeout=T_QUERY)
    return r


def answer_view(r):
    recs = set()
    for rrset in r.answer:
        for rd in rrset:
            recs.add(record_key(rrset.name, rrset.ttl, rrset.rdclass, rrset.rdtype, rd.to_wire()))
    return (dns.rcode.to_text(r.rcode()), bool(r.flags & dns.flags.AA), recs)


def ref_index(ref):
    idx = collections.defaultdict(set)
    for owner, ttl, _c, rdtype, rd in ref:
        idx[(owner, rdtype)].add((ttl, rd))
    return idx


def agrees_with_bind(recs, idx):
    """False if a record of the answer is at an (owner, type) of BIND's
    canonical zone but not there with that TTL and rdata."""
    for owner, ttl, _c, rdtype, rd in recs:
        known = idx.get((owner, rdtype))
        if known is not None and (ttl, rd) not in known:
            return False
    return True


def describe(qtext, qtype, g, n):
    """(reason, kind) of a difference between two answer views."""
    if g[0] != n[0]:
        return f"{qtext}: rcode {g[0]}, NSD {n[0]}", f"rcode {g[0]} where NSD says {n[0]} ({qtype})"
    if g[2] != n[2]:
        miss = sorted(n[2] - g[2])
        more = sorted(g[2] - n[2])
        if miss and more:
            if {(k[0], k[2], k[3], k[4]) for k in miss} == {(k[0], k[2], k[3], k[4]) for k in more}:
                return (
                    f"{qtext}: TTL differs: NSD {show_key(miss[0])} | ggond {show_key(more[0])}",
                    f"answer TTL differs ({tname(miss[0])})",
                )
            return (
                f"{qtext}: answer differs: NSD {show_key(miss[0])} | ggond {show_key(more[0])}",
                f"answer differs ({tname(miss[0])})",
            )
        if miss:
            return f"{qtext}: answer lacks {show_key(miss[0])} (NSD has it)", f"answer lacks records ({qtype})"
        return f"{qtext}: answer has {show_key(more[0])} (NSD has not)", f"answer has extra records ({qtype})"
    return f"{qtext}: AA={int(g[1])}, NSD AA={int(n[1])}", f"AA flag differs ({qtype})"


def compare_answers(gaddr, naddr, pairs, ref, bind=None):
    """Ask both servers every pair. Returns a dict: equal, error (the first
    difference), queries, differing, nsd_only (every difference is one
    where NSD's records disagree with BIND's canonical zone and ggond's
    agree: NSD, not ggond, reads the file differently) and bind_sided
    (every difference is one where BIND, asked the same question through
    `bind()`, answers as ggond does and not as NSD: NSD and BIND disagree
    and ggond answers as BIND)."""
    idx = ref_index(ref)
    asked = 0
    first = None
    first_nsd = None
    kind = None
    kind_nsd = None
    differing = 0
    not_bind = 0
    first_bind = None
    for name, rdtype in pairs:
        asked += 1
        qtext = f"{name} {dns.rdatatype.to_text(rdtype)}"
        try:
            g = answer_view(ask(gaddr, name, rdtype))
        except Exception as ex:
            first = first or f"{qtext}: ggond: {type(ex).__name__}"
            kind = kind or f"ggond query failed: {type(ex).__name__}"
            differing += 1
            not_bind += 1
            break  # a server that stops answering: do not wait on every query
        try:
            n = answer_view(ask(naddr, name, rdtype))
        except Exception as ex:
            first = first or f"{qtext}: nsd: {type(ex).__name__}"
            kind = kind or f"NSD query failed: {type(ex).__name__}"
            differing += 1
            not_bind += 1
            break
        if g == n:
            continue
        differing += 1
        why, k = describe(qtext, dns.rdatatype.to_text(rdtype), g, n)
        if bind_sides_with(bind, name, rdtype, g, n):
            first_bind = first_bind or "BIND answers as ggond: " + why
            continue
        not_bind += 1
        if g[0] == n[0] and g[1] == n[1] and agrees_with_bind(g[2], idx) and not agrees_with_bind(n[2], idx):
            first_nsd = first_nsd or "NSD disagrees with BIND: " + why
            kind_nsd = kind_nsd or "NSD disagrees with BIND: " + k
        elif first is None:
            first, kind = why, k
    return {
        "equal": differing == 0,
        "error": first or first_nsd or first_bind or "",
        "kind": kind or kind_nsd or ("BIND answers as ggond, NSD otherwise" if first_bind else ""),
        "queries": asked,
        "differing": differing,
        "nsd_only": differing > 0 and first is None,
        "bind_sided": differing > 0 and not_bind == 0,
    }


def bind_sides_with(bind, name, rdtype, g, n):
    """True when BIND answers this question as ggond did (g) and not as
    NSD did (n); False when it cannot say (no BIND, no answer)."""
    addr = bind() if bind else None
    if addr is None:
        return False
    try:
        b = answer_view(ask(addr, name, rdtype))
    except Exception:
        return False
    return b == g and b != n


# ---------------------------------------------------------------------------
# Batching


def names_conflict(a, b):
    a, b = a.lower(), b.lower()
    return a == b or a.endswith("." + b) or b.endswith("." + a) or a == "." or b == "."


def make_batches(entries):
    """Groups with no two origins equal or nested, and one cwd each (files
    with $INCLUDE need theirs)."""
    batches = []  # (cwd, [entries])
    for e in entries:
        cwd = e["basedir"] if e.get("has_include") else CORPUS
        for b in batches:
            if b[0] == cwd and len(b[1]) < MAX_BATCH and not any(
                names_conflict(e["origin"], x["origin"]) for x in b[1]
            ):
                b[1].append(e)
                break
        else:
            batches.append((cwd, [e]))
    return batches


def has_include(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return re.search(r"^\$INCLUDE", f.read(), re.M | re.I) is not None
    except OSError:
        return False


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--all", action="store_true", help="the whole corpus (default)")
    g.add_argument("--subset", action="store_true", help="the representative subset the Rust test runs")
    ap.add_argument("--manifest", default=os.path.join(CORPUS, "manifest.tsv"))
    ap.add_argument("--ggond", default=os.path.join(ROOT, "target", "debug", "ggond"))
    ap.add_argument("--only", action="append", default=[], help="only paths containing this (repeatable)")
    ap.add_argument("--out", help="write the JSON report here")
    ap.add_argument("--quiet", action="store_true", help="no per-file lines")
    args = ap.parse_args()

    started = time.monotonic()
    tools = {"ggond": args.ggond if os.access(args.ggond, os.X_OK) else None}
    for t in ("named-checkzone", "named-compilezone", "nsd", "nsd-checkzone"):
        tools[t] = find_tool(t)
    # named (package bind9) arbitrates where ggond and NSD differ; without
    # it every difference counts against ggond.
    tools_optional = {"named": find_tool("named")}
    missing = [t for t, p in tools.items() if not p]
    if missing:
        sys.stderr.write(
            "compare.py: missing tools: %s (ggond: cargo build --bin ggond; others: "
            "apt-get install bind9-utils nsd)\n" % ", ".join(missing)
        )
        return 3
    tools.update(tools_optional)

    entries = read_manifest(args.manifest)
    if args.subset:
        entries = subset(entries)
    if args.only:
        entries = [e for e in entries if any(s in e["path"] for s in args.only)]

    tmp = tempfile.mkdtemp(prefix="ggon-zones-")
    results = []
    phases = {}
    try:
        # a + b(load) + BIND's canonical form, per file (a few at a time).
        for e in entries:
            e["has_include"] = has_include(e["file"])
            e["result"] = {"path": e["path"], "origin": e["origin"]}
            results.append(e["result"])
        workers = max(2, min(4, os.cpu_count() or 2))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda ie: check_file(ie[1], tools, os.path.join(tmp, f"f{ie[0]}")), enumerate(entries)))

        phases["files"] = round(time.monotonic() - started, 1)
        # b(AXFR) + c, per batch of zones that ggond loads and NSD may serve.
        todo = [e for e in entries if e["result"].get("loaded") and e.get("ref") is not None]
        batches = make_batches(todo)
        phases["batches_run"] = len(batches)

        def one(ib):
            i, (cwd, batch) = ib
            d = os.path.join(tmp, f"b{i}")
            os.makedirs(d, exist_ok=True)
            run_batch(batch, tools, d, cwd)
            shutil.rmtree(d, ignore_errors=True)

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(one, enumerate(batches)))
        phases["batches"] = round(time.monotonic() - started - phases["files"], 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report = summarize(results, time.monotonic() - started, args)
    report["phase_seconds"] = phases
    print(f"zones: phases {phases}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    return 0


def check_file(e, tools, tmp):
    os.makedirs(tmp, exist_ok=True)
    r = e["result"]
    r["accepted"], r["checkzone"] = bind_check(e, tools)
    r["nsd_loaded"], r["nsd_error"] = nsd_check(e, tools)
    if not r["accepted"]:
        return
    e["ref"], err = bind_canonical(e, tools, tmp)
    if e["ref"] is None:
        r["harness_error"] = err
    r["records"] = len(e["ref"] or ())
    r["loaded"], r["load_error"] = ggond_check(e, tools, tmp)


def run_batch(batch, tools, tmp, cwd):
    started, err = start_ggond(batch, tools, tmp, cwd)
    if started is None:
        if len(batch) > 1:
            # One zone may upset the whole config: fall back to one per file.
            for e in batch:
                run_batch([e], tools, tmp, cwd)
            return
        r = batch[0]["result"]
        r["axfr_equal"] = r["answers_equal"] = False
        r["axfr_error"] = r["answers_error"] = err
        r["axfr_kind"] = r["answers_kind"] = kind_of(err)
        return
    gsrv, gaddr = started
    nsrv = None
    bind = LazyBind(batch, tools, tmp, cwd)
    try:
        nsd_batch = [e for e in batch if e["result"]["nsd_loaded"] or e.get("has_include")]
        naddr = None
        if nsd_batch:
            started_n, nerr = start_nsd(nsd_batch, tools, tmp, cwd)
            if started_n is not None:
                nsrv, naddr = started_n
                # What NSD serves decides whether it loaded the zone.
                for e in nsd_batch:
                    if nsd_serves(naddr, e["origin"]):
                        e["result"]["nsd_loaded"], e["result"]["nsd_error"] = True, ""
                    elif e["result"]["nsd_loaded"] or not e["result"]["nsd_error"]:
                        e["result"]["nsd_loaded"] = False
                        e["result"]["nsd_error"] = "NSD does not serve it: " + first_error_line(
                            read_text(os.path.join(tmp, "nsd", "nsd.log"))
                        )
            else:
                for e in nsd_batch:
                    e["result"]["answers_error"] = nerr
                    e["result"]["answers_kind"] = "NSD did not start"
        for e in batch:
            r = e["result"]
            try:
                got = axfr(gaddr, e["origin"])
                r["axfr_equal"], r["axfr_error"], r["axfr_kind"] = compare_axfr(e["ref"], got)
            except Exception as ex:
                r["axfr_equal"], r["axfr_error"] = False, f"AXFR failed: {type(ex).__name__}: {ex}"
                r["axfr_kind"] = f"AXFR failed: {type(ex).__name__}"
            if not r["nsd_loaded"]:
                r["answers_equal"] = False
                r["answers_error"] = "NSD does not load it: " + r["nsd_error"]
                r["answers_kind"] = "NSD does not load it"
                continue
            if naddr is None:
                r["answers_equal"] = False
                continue
            pairs = queries_for(e["ref"], e["origin"])
            c = compare_answers(gaddr, naddr, pairs, e["ref"], bind)
            r["answers_equal"], r["answers_error"], r["queries"] = c["equal"], c["error"], c["queries"]
            r["answers_differing"], r["answers_nsd_only"] = c["differing"], c["nsd_only"]
            r["answers_bind_sided"] = c["bind_sided"]
            r["answers_kind"] = c["kind"]
    finally:
        gsrv.stop()
        bind.stop()
        if nsrv is not None:
            nsrv.stop()


def summarize(results, wall, args):
    acc = [r for r in results if r["accepted"]]
    counts = collections.OrderedDict(
        files=len(results),
        accepted=len(acc),
        loaded=sum(1 for r in acc if r.get("loaded")),
        axfr_equal=sum(1 for r in acc if r.get("axfr_equal")),
        answers_equal=sum(1 for r in acc if r.get("answers_equal")),
        answers_equal_but_nsd=sum(1 for r in acc if r.get("answers_equal") or r.get("answers_nsd_only")),
        answers_reference=sum(1 for r in acc if r.get("answers_equal") or r.get("answers_bind_sided")),
        nsd_loaded=sum(1 for r in acc if r["nsd_loaded"]),
        nsd_loaded_all=sum(1 for r in results if r["nsd_loaded"]),
        queries=sum(r.get("queries", 0) for r in acc),
    )
    reasons = {k: collections.Counter() for k in ("load", "axfr", "answers", "nsd")}
    for r in acc:
        if not r["nsd_loaded"]:
            reasons["nsd"][kind_of(r["nsd_error"])] += 1
    fails = []
    for r in acc:
        if r.get("harness_error"):
            fails.append((r["path"], "harness", r["harness_error"]))
        elif not r.get("loaded"):
            fails.append((r["path"], "load", r["load_error"]))
            reasons["load"][kind_of(r["load_error"])] += 1
        else:
            if not r.get("axfr_equal"):
                fails.append((r["path"], "axfr", r.get("axfr_error", "")))
                reasons["axfr"][r.get("axfr_kind") or kind_of(r.get("axfr_error", ""))] += 1
            if not r.get("answers_equal"):
                fails.append((r["path"], "answers", r.get("answers_error", "")))
                reasons["answers"][r.get("answers_kind") or kind_of(r.get("answers_error", ""))] += 1
    if not args.quiet:
        for path, step, why in fails:
            print(f"FAIL {step:7} {path}: {why}")
        for step, c in reasons.items():
            if c:
                print(f"top {step} failure reasons:")
                for k, n in c.most_common(10):
                    print(f"  {n:4}  {k}")
    print(
        "zones: {files} files, {accepted} accepted by named-checkzone, {loaded} loaded by ggond, "
        "{axfr_equal} AXFR equal to named-compilezone, {answers_equal} answers equal to NSD "
        "(NSD loads {nsd_loaded} of the accepted; {answers_reference} equal or differing only where BIND "
        "answers as ggond and NSD otherwise; {answers_equal_but_nsd} equal or differing only where "
        "NSD disagrees with BIND; {queries} queries)".format(**counts)
    )
    print(f"zones: wall time {wall:.1f} s")
    return {
        "counts": counts,
        "wall_seconds": round(wall, 1),
        "subset": bool(args.subset),
        "reasons": {k: dict(v.most_common()) for k, v in reasons.items()},
        "files": results,
    }


if __name__ == "__main__":
    sys.exit(main())

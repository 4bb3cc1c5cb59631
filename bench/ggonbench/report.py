"""The tables of the default mode (flood, comparison, fixed-rate latency,
--scale: zone sizes, remap cost, remap rate, services) and its result
file, bench/results/DATE-HOST.json."""

from collections import namedtuple

from .common import fmt, mean, save_json

# What --scale measured (lists of rows; empty without --scale).
ScaleResults = namedtuple("ScaleResults", "zones remap_cost remap_rate services")


def summarize(rows):
    """Means over the rounds per (server, tool, query file), in run order."""
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], r["tool"], r["queries"]), []).append(r)
    summary = []
    for (server, tool, q), rs in groups.items():
        summary.append({
            "server": server, "tool": tool, "queries": q, "runs": len(rs),
            "qps": mean(r["qps"] for r in rs),
            "avg_ms": mean(r["latency_ms"]["avg"] for r in rs),
            "p50_ms": mean(r["latency_ms"]["p50"] for r in rs),
            "p99_ms": mean(r["latency_ms"]["p99"] for r in rs),
            "p999_ms": mean(r["latency_ms"].get("p999") for r in rs),
            "lost_pct": mean(r["lost_pct"] for r in rs),
            "q_per_cpu_s": mean(r["q_per_cpu_s"] for r in rs),
            "generator_cpu_s": mean(r["generator_cpu_s"] for r in rs),
            "generator_us_per_q": mean(1e6 * r["generator_cpu_s"] / r["completed"]
                                       if r["completed"] else None for r in rs),
            "generator_busy_pct": mean(r["generator_busy_pct"] for r in rs),
        })
    return summary


def flood_table(summary, meta):
    print()
    print(f"Flood: {meta['seconds']} s per run, {meta['rounds']} round(s), {meta['outstanding']} in flight,"
          f" servers on CPU {meta['server_cpu']}, load generator on CPU {meta['generator_cpu']}, nice {meta['nice']}"
          " (figures are means over the rounds)")
    hdr = (f"{'server':<12} {'tool':<10} {'queries':<22} {'qps':>10} {'avg ms':>7} {'p50 ms':>7} {'p99 ms':>7}"
           f" {'lost %':>7} {'q/cpu-s':>10} {'gen us/q':>8} {'gen %':>5}")
    print(hdr)
    print("-" * len(hdr))
    for s in summary:
        print(f"{s['server']:<12} {s['tool']:<10} {s['queries']:<22} {fmt(s['qps'], '10.0f')} {fmt(s['avg_ms'], '7.3f')}"
              f" {fmt(s['p50_ms'], '7.3f')} {fmt(s['p99_ms'], '7.3f')} {fmt(s['lost_pct'], '7.3f')}"
              f" {fmt(s['q_per_cpu_s'], '10.0f')} {fmt(s['generator_us_per_q'], '8.2f')} {fmt(s['generator_busy_pct'], '5.0f')}")
    print("q/cpu-s: answers per CPU-second of the server (its whole process tree);"
          " gen us/q, gen %: load generator CPU per answered query and its busy share of its core"
          " during the flood (near 100%: the generator is the limit).")
    print(f"Load average at start/end: {meta.get('loadavg_start')} / {meta.get('loadavg_end')}"
          " (other work on the machine skews qps more than q/cpu-s)")


def comparison(rows, summary):
    """Per tool, per server on queries.txt: q/cpu-s per round, avg and p99
    latency, loss, queries in flight, and ratios to gdnsd and to the echo
    reflector (SERVER-w2 rows against gdnsd-w2 and reflector-w2)."""
    by = {(s["server"], s["tool"]): s for s in summary if s["queries"] == "queries.txt"}
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    ratios = {}
    for tool in ("dnsperf", "ggon-perf", "ggon-perf-rate"):
        present = [sv for sv in servers if (sv, tool) in by]
        if not present:
            continue
        print()
        what = f"at a fixed {by[(present[0], tool)]['qps']:.0f} qps" if tool.endswith("-rate") else "flood"
        print(f"Comparison, {tool} on queries.txt, {what} (ratios: this server / the reference, from the means;"
              " q/cpu-s: higher is better, latency: lower is better; in flt: qps x avg latency, the"
              " queries really in flight, Little's law)")
        hdr = (f"{'server':<12} {'q/cpu-s per round':<24} {'avg ms':>7} {'p99 ms':>7} {'lost %':>7} {'in flt':>6}"
               f" {'q/cpu-s/gdnsd':>13} {'q/cpu-s/refl':>12} {'avg/gdnsd':>9} {'p99/gdnsd':>9}")
        print(hdr)
        print("-" * len(hdr))
        for sv in present:
            s = by[(sv, tool)]
            suffix = sv[sv.index("-"):] if "-" in sv else ""
            g = by.get(("gdnsd" + suffix, tool))
            f = by.get(("reflector" + suffix, tool))

            def ratio(a, b, k):
                return a[k] / b[k] if a and b and a.get(k) and b.get(k) else None
            rounds = sorted((r for r in rows if r["server"] == sv and r["tool"] == tool
                             and r["queries"] == "queries.txt"), key=lambda r: r["round"])
            per = " / ".join(fmt(r["q_per_cpu_s"] / 1e3 if r["q_per_cpu_s"] else None, ".0f") + "k" for r in rounds)
            rr = {"q_per_cpu_s_per_round": [r["q_per_cpu_s"] for r in rounds],
                  "q_per_cpu_s_vs_gdnsd": ratio(s, g, "q_per_cpu_s"),
                  "q_per_cpu_s_vs_reflector": ratio(s, f, "q_per_cpu_s"),
                  "avg_vs_gdnsd": ratio(s, g, "avg_ms"), "p99_vs_gdnsd": ratio(s, g, "p99_ms")}
            ratios[f"{sv} ({tool})"] = rr
            inflight = s["qps"] * s["avg_ms"] / 1e3 if s["qps"] and s["avg_ms"] else None
            print(f"{sv:<12} {per:<24} {fmt(s['avg_ms'], '7.3f')} {fmt(s['p99_ms'], '7.3f')} {fmt(s['lost_pct'], '7.3f')}"
                  f" {fmt(inflight, '6.0f')}"
                  f" {fmt(rr['q_per_cpu_s_vs_gdnsd'], '13.2f')} {fmt(rr['q_per_cpu_s_vs_reflector'], '12.2f')}"
                  f" {fmt(rr['avg_vs_gdnsd'], '9.2f')} {fmt(rr['p99_vs_gdnsd'], '9.2f')}")
    if any(sv.endswith("-w2") for sv in servers):
        print("SERVER-w2: 2 workers, not pinned, the generator (4 sockets; dnsperf 2 threads) sharing both cores")
    return ratios


def scale_table(scale):
    print()
    print("Scale: load = start to first NOERROR answer for the last name"
          " (probed every ~30 ms); RSS summed over the process tree (NSD's forked processes"
          " share pages, so it counts them more than once)")
    print("load s: pinned to one core, as for the flood; both cores: the same start again, not pinned"
          " (ggond loads a large zone on two threads, NSD on one)")
    print(f"{'server':<7} {'records':>8} {'load s':>8} {'RSS MiB':>9} {'both cores s':>12} {'RSS MiB':>8}"
          f" {'qps':>10} {'lost %':>7}")
    for s in scale:
        rss = s["rss_kib"] / 1024 if s.get("rss_kib") else None
        rss2 = s["rss_both_kib"] / 1024 if s.get("rss_both_kib") else None
        print(f"{s['server']:<7} {s['records']:>8} {fmt(s.get('load_s'), '8.2f')} {fmt(rss, '9.1f')}"
              f" {fmt(s.get('load_both_s'), '12.2f')} {fmt(rss2, '8.1f')}"
              f" {fmt(s.get('qps'), '10.0f')} {fmt(s.get('lost_pct'), '7.3f')}")


def remap_cost_table(remapcost):
    print()
    print("Remap cost (ggond, cic remapped through the control API): call = the API call's time (decide,"
          " recompile, swap; it returns once the answer is live), visible = from the call until a UDP"
          " query sees the new address")
    print(f"{'records':>8} {'remaps':>6} {'call p50 ms':>11} {'call max':>9} {'visible p50':>11} {'visible max':>11}"
          f" {'fsync ms':>8}")
    for r in remapcost:
        print(f"{r['records']:>8} {r['remaps']:>6} {fmt(r['call_ms']['p50'], '11.2f')} {fmt(r['call_ms']['max'], '9.2f')}"
              f" {fmt(r['visible_ms']['p50'], '11.2f')} {fmt(r['visible_ms']['max'], '11.2f')}"
              f" {fmt(r.get('fsync_ms'), '8.2f')}")
    print("fsync ms: one atomic write (temp file, fsync, rename, fsync of the directory) in the state"
          " directory right after; a remap makes one plus a history fsync")


def remap_rate_table(remaprate):
    print()
    print("Remap rate (ggond): remaps of cic at a target rate from keep-alive clients, under ggon-perf"
          " at half the scale flood's rate on the same zone; lost = flood queries never answered,"
          " bad = answered with other than NOERROR/NXDOMAIN")
    print(f"{'records':>8} {'target/s':>8} {'clients':>7} {'done/s':>8} {'errors':>6} {'call p50':>8} {'p99 ms':>7}"
          f" {'flood qps':>9} {'sent':>9} {'lost':>6} {'bad':>5} {'fsync ms':>8}")
    for r in remaprate:
        c = r.get("call_ms") or {}
        print(f"{r.get('records', 0):>8} {r.get('target_per_s', 0):>8} {r.get('clients', 0):>7}"
              f" {fmt(r.get('achieved_per_s'), '8.1f')} {r.get('errors', '-')!s:>6} {fmt(c.get('p50'), '8.2f')}"
              f" {fmt(c.get('p99'), '7.2f')} {r.get('flood_qps', 0):>9} {r.get('sent')!s:>9} {r.get('lost')!s:>6}"
              f" {r.get('bad_rcodes')!s:>5} {fmt(r.get('fsync_ms'), '8.2f')}")


def fixed_rate_table(summary):
    """Latency of every server at the one fixed rate (ggon-perf -Q on queries.txt), means over the rounds."""
    rate = [s for s in summary if s["tool"] == "ggon-perf-rate" and s["queries"] == "queries.txt"]
    if not rate:
        return
    print()
    print(f"Fixed-rate latency: ggon-perf -Q {rate[0]['qps']:.0f} on queries.txt, the same generator and rate"
          " for every server (means over the rounds)")
    hdr = f"{'server':<12} {'qps':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} {'lost %':>7}"
    print(hdr)
    print("-" * len(hdr))
    for s in rate:
        print(f"{s['server']:<12} {fmt(s['qps'], '8.0f')} {fmt(s['p50_ms'], '7.3f')} {fmt(s['p99_ms'], '7.3f')}"
              f" {fmt(s['p999_ms'], '8.3f')} {fmt(s['lost_pct'], '7.3f')}")


def services_table(services):
    print()
    print("Services (ggond, N services of 2 TCP-checked targets, every 5 s, all checks to one local listener):"
          " start = process start until the control API and the last service's name answer; RSS once"
          " settled, its peak (VmHWM); healthy = targets /metrics reports up; idle CPU = % of one core over"
          " the idle window (only checks); remaps of distinct services to backup: call = the API call,"
          " visible = from sending it until a UDP query answers the backup address")
    hdr = (f"{'services':>8} {'start s':>7} {'RSS MiB':>8} {'peak MiB':>8} {'KiB/svc':>7} {'healthy':>7}"
           f" {'idle CPU %':>10} {'remaps':>6} {'call p50':>8} {'call p90':>8} {'vis p50':>8} {'vis p90':>8}"
           f" {'fsync ms':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in services:
        c, v = r.get("call_ms") or {}, r.get("visible_ms") or {}
        rss = r["rss_kib"] / 1024 if r.get("rss_kib") else None
        peak = r["peak_kib"] / 1024 if r.get("peak_kib") else None
        print(f"{r['services']:>8} {fmt(r.get('startup_s'), '7.3f')} {fmt(rss, '8.1f')} {fmt(peak, '8.1f')}"
              f" {fmt(r.get('kib_per_service'), '7.1f')} {r.get('healthy_targets')!s:>7}"
              f" {fmt(r.get('idle_cpu_pct'), '10.1f')} {r.get('remaps', 0):>6} {fmt(c.get('p50'), '8.2f')}"
              f" {fmt(c.get('p90'), '8.2f')} {fmt(v.get('p50'), '8.2f')} {fmt(v.get('p90'), '8.2f')}"
              f" {fmt(r.get('fsync_ms'), '8.2f')}")


def scale_tables(sc):
    if sc.zones:
        scale_table(sc.zones)
    if sc.services:
        services_table(sc.services)
    if sc.remap_cost:
        remap_cost_table(sc.remap_cost)
    if sc.remap_rate:
        remap_rate_table(sc.remap_rate)


def report(rows, meta, sc, out_file):
    summary = summarize(rows)
    flood_table(summary, meta)
    ratios = comparison(rows, summary)
    fixed_rate_table(summary)
    scale_tables(sc)
    meta.update({"runs": rows, "summary": summary, "ratios": ratios, "scale": sc.zones, "remap_cost": sc.remap_cost,
                 "remap_rate": sc.remap_rate, "services": sc.services})
    save_json(out_file, meta, indent=2)
    print(f"\nsaved {out_file}")

#!/usr/bin/env python3
"""Turns benches/dnsperf.sh's raw results (OUTDIR/results.tsv and friends)
into Markdown: a summary table, then one table per query class with the
metric, keiko, gdnsd and the ratio keiko/gdnsd. Figures over rounds are
medians; "[a-b]" is the range over rounds.

usage: report.py OUTDIR > report.md
"""

import csv
import math
import os
import statistics
import sys

SERVERS = ("keiko", "gdnsd")
CLASS_TEXT = {
    "static": "static regional name (`api-contracts-us-east` A)",
    "failover": "failover (`api-contracts` A)",
    "weighted": "weighted (`api-contracts-weighted` A)",
    "geo": "geo with ECS (`api-contracts-geo` A and AAAA, 12 client subnets: 8 IPv4, 4 IPv6, 10 countries)",
    "nxdomain": "NXDOMAIN (1,000 names)",
    "mix": "realistic mix (1,000 queries: steered names 64 %, some with ECS; static data 17 %; NXDOMAIN 8 %)",
}


def load(outdir):
    with open(os.path.join(outdir, "results.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        for k in ("rate", "qps", "sent", "completed", "lost", "avg_ms", "sd_ms", "p50_ms",
                  "p99_ms", "user_us_q", "sys_us_q", "rss_kb", "resp_bytes"):
            r[k] = float(r[k])
    return rows


def med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def fmt(x, digits):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return "-"
    return f"{a / b:.2f}"


def cell(xs, digits, spread=False):
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return "-", float("nan")
    m = statistics.median(xs)
    text = fmt(m, digits)
    if spread and len(xs) > 1:
        text += f" [{fmt(min(xs), digits)}-{fmt(max(xs), digits)}]"
    return text, m


def lost_cell(rows):
    sent = sum(r["sent"] for r in rows)
    lost = sum(r["lost"] for r in rows)
    if not rows:
        return "-", float("nan")
    return f"{lost:,.0f} ({100 * lost / sent:.2f} %)" if sent else "-", lost


def table(title, metrics):
    """metrics: [(name, {server: (text, value)})]"""
    out = [f"### {title}", "", "| metric | keiko | gdnsd | keiko/gdnsd |", "| --- | ---: | ---: | ---: |"]
    for name, vals in metrics:
        k, g = vals["keiko"], vals["gdnsd"]
        out.append(f"| {name} | {k[0]} | {g[0]} | {ratio(k[1], g[1])} |")
    return "\n".join(out) + "\n"


def main():
    outdir = sys.argv[1]
    rows = load(outdir)
    meta = open(os.path.join(outdir, "meta.txt")).read().strip().splitlines()
    rss_start = {}
    with open(os.path.join(outdir, "rss-start.tsv")) as f:
        for line in f:
            s, kb = line.split()
            rss_start[s] = float(kb)
    check = None
    try:
        ok, bad = open(os.path.join(outdir, "answer-check.count")).read().split()
        check = (int(ok), int(bad))
    except (OSError, ValueError):
        pass

    def sel(server, cls, proto, kind):
        return [r for r in rows if r["server"] == server and r["class"] == cls
                and r["proto"] == proto and r["kind"] == kind]

    classes = list(dict.fromkeys(r["class"] for r in rows if r["proto"] == "udp"))
    tcp_classes = list(dict.fromkeys(r["class"] for r in rows if r["proto"] == "tcp"))

    out = ["# keiko-dns vs gdnsd: dnsperf on loopback", ""]
    out += [f"- {m}" for m in meta]
    out += [
        "- both servers run at once, on the same 2-core machine as dnsperf (which takes about a core); "
        "other processes may have been running too: compare the ratios of one run, not absolute numbers",
        "- qps: `dnsperf -c CLIENTS -q OUTSTANDING` flat out; latency: a fixed-rate run (`-Q`) per class, "
        "percentiles from dnsperf's per-query output (`-v`); CPU per query: the server's utime/stime "
        "(/proc/PID/stat) over the run divided by queries completed",
        "- keiko/gdnsd: above 1 is better for keiko for qps, worse for every other row",
    ]
    if check:
        out.append(f"- answer check before the runs: {check[0]} queries answered identically by both, "
                   f"{check[1]} differently (TTLs ignored; see `target/dnsperf/answer-check.txt`)")
    out.append("")

    # summary
    out += ["## Summary (UDP unless marked)", "",
            "qps flat out; CPU (user + system) and user CPU per query and average latency "
            "at the same fixed offered load (the per-class tables give the rates); medians "
            "over rounds; × is keiko/gdnsd (above 1 is better for keiko for qps, worse for "
            "every other column).", "",
            "| class | keiko qps | gdnsd qps | × | keiko CPU us/q | gdnsd CPU us/q | × "
            "| keiko user us/q | gdnsd user us/q | × | keiko avg ms | gdnsd avg ms | × |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for proto, clss in (("udp", classes), ("tcp", tcp_classes)):
        for c in clss:
            # TCP runs are flat out only: their CPU and latency are at max.
            fixed = "lat" if proto == "udp" else "max"
            q = {s: med([r["qps"] for r in sel(s, c, proto, "max")]) for s in SERVERS}
            cpu = {s: med([r["user_us_q"] + r["sys_us_q"] for r in sel(s, c, proto, fixed)]) for s in SERVERS}
            u = {s: med([r["user_us_q"] for r in sel(s, c, proto, fixed)]) for s in SERVERS}
            a = {s: med([r["avg_ms"] for r in sel(s, c, proto, fixed)]) for s in SERVERS}
            name = c if proto == "udp" else f"{c} (TCP, at max)"
            out.append(f"| {name} | {fmt(q['keiko'], 0)} | {fmt(q['gdnsd'], 0)} | {ratio(q['keiko'], q['gdnsd'])} "
                       f"| {fmt(cpu['keiko'], 2)} | {fmt(cpu['gdnsd'], 2)} | {ratio(cpu['keiko'], cpu['gdnsd'])} "
                       f"| {fmt(u['keiko'], 2)} | {fmt(u['gdnsd'], 2)} | {ratio(u['keiko'], u['gdnsd'])} "
                       f"| {fmt(a['keiko'], 3)} | {fmt(a['gdnsd'], 3)} | {ratio(a['keiko'], a['gdnsd'])} |")
    # Per class, three rounds leave the medians at the mercy of scheduler
    # stalls (a 4 ms tick lands on one server's run and not the other's);
    # pooling the paired fixed-load runs of every class says more.
    pairs = {}
    for r in rows:
        if r["proto"] == "udp" and r["kind"] == "lat":
            pairs.setdefault((r["round"], r["class"]), {})[r["server"]] = r
    pairs = [p for p in pairs.values() if len(p) == 2]
    if pairs:
        out += ["", f"Paired fixed-load runs, all UDP classes and rounds ({len(pairs)} pairs): "]
        for label, key in (("average latency", lambda r: r["avg_ms"]),
                           ("CPU per query", lambda r: r["user_us_q"] + r["sys_us_q"]),
                           ("user CPU per query", lambda r: r["user_us_q"])):
            rs = [key(p["keiko"]) / key(p["gdnsd"]) for p in pairs if key(p["gdnsd"]) > 0 and key(p["keiko"]) > 0]
            wins = sum(1 for x in rs if x < 1)
            gm = math.exp(sum(math.log(x) for x in rs) / len(rs)) if rs else float("nan")
            out[-1] += f"{label}: keiko lower in {wins} of {len(rs)}, geometric mean × {gm:.2f}; "
        out[-1] = out[-1].rstrip("; ") + "."
    rk, rg = (rss_start.get(s, float("nan")) / 1024 for s in ("keiko", "gdnsd"))
    out += ["", f"Resident memory after start (VmRSS): keiko {fmt(rk, 1)} MiB, gdnsd {fmt(rg, 1)} MiB, "
            f"× {ratio(rk, rg)}.", ""]

    # per class
    out += ["## Per class", ""]
    for c in classes:
        m = []
        maxr = {s: sel(s, c, "udp", "max") for s in SERVERS}
        latr = {s: sel(s, c, "udp", "lat") for s in SERVERS}
        rates = sorted({r["rate"] for s in SERVERS for r in latr[s]})
        rate = "/".join(fmt(x, 0) for x in rates) if rates else "?"
        m.append(("max throughput, qps (median [range])", {s: cell([r["qps"] for r in maxr[s]], 0, True) for s in SERVERS}))
        m.append(("lost at max throughput", {s: lost_cell(maxr[s]) for s in SERVERS}))
        m.append(("server user CPU per query at max, us", {s: cell([r["user_us_q"] for r in maxr[s]], 3) for s in SERVERS}))
        m.append(("server system CPU per query at max, us", {s: cell([r["sys_us_q"] for r in maxr[s]], 3) for s in SERVERS}))
        m.append((f"average latency at {rate} qps, ms", {s: cell([r["avg_ms"] for r in latr[s]], 3) for s in SERVERS}))
        m.append((f"p50 latency at {rate} qps, ms", {s: cell([r["p50_ms"] for r in latr[s]], 3) for s in SERVERS}))
        m.append((f"p99 latency at {rate} qps, ms", {s: cell([r["p99_ms"] for r in latr[s]], 3) for s in SERVERS}))
        m.append((f"lost at {rate} qps", {s: lost_cell(latr[s]) for s in SERVERS}))
        m.append((f"server user CPU per query at {rate} qps, us", {s: cell([r["user_us_q"] for r in latr[s]], 3) for s in SERVERS}))
        m.append((f"server system CPU per query at {rate} qps, us", {s: cell([r["sys_us_q"] for r in latr[s]], 3) for s in SERVERS}))
        m.append(("average response size, bytes", {s: cell([r["resp_bytes"] for r in maxr[s]], 0) for s in SERVERS}))
        m.append(("RSS after start, MiB", {s: (fmt(rss_start.get(s, float("nan")) / 1024, 1), rss_start.get(s, float("nan")) / 1024) for s in SERVERS}))
        m.append(("RSS after this class's runs (max), MiB", {s: (lambda v: (fmt(v, 1), v))(max([r["rss_kb"] for r in maxr[s] + latr[s]] or [float("nan")]) / 1024) for s in SERVERS}))
        out.append(table(CLASS_TEXT.get(c, c), m))
    for c in tcp_classes:
        m = []
        maxr = {s: sel(s, c, "tcp", "max") for s in SERVERS}
        m.append(("max throughput, qps (median [range])", {s: cell([r["qps"] for r in maxr[s]], 0, True) for s in SERVERS}))
        m.append(("lost at max throughput", {s: lost_cell(maxr[s]) for s in SERVERS}))
        m.append(("average latency at max throughput, ms", {s: cell([r["avg_ms"] for r in maxr[s]], 3) for s in SERVERS}))
        m.append(("server user CPU per query, us", {s: cell([r["user_us_q"] for r in maxr[s]], 3) for s in SERVERS}))
        m.append(("server system CPU per query, us", {s: cell([r["sys_us_q"] for r in maxr[s]], 3) for s in SERVERS}))
        m.append(("average response size, bytes", {s: cell([r["resp_bytes"] for r in maxr[s]], 0) for s in SERVERS}))
        m.append(("RSS after the runs (max), MiB", {s: (lambda v: (fmt(v, 1), v))(max([r["rss_kb"] for r in maxr[s]] or [float("nan")]) / 1024) for s in SERVERS}))
        out.append(table(f"TCP: {CLASS_TEXT.get(c, c)}, `dnsperf -m tcp`, CLIENTS connections", m))

    prof = os.path.join(outdir, "profile.tsv")
    lines = [l.rstrip("\n").split("\t") for l in open(prof)] if os.path.exists(prof) else []
    if lines:
        per = {}  # class -> server -> (method, queries, instructions per query, cycles per query)
        for l in lines:
            l += [""] * (6 - len(l))
            server, cls, method, q, ins, cyc = l[:6]
            q = float(q or 0)
            ipq = float(ins) / q if q and ins else float("nan")
            cpq = float(cyc) / q if q and cyc else float("nan")
            per.setdefault(cls, {})[server] = (method, q, ipq, cpq)
        methods = sorted({v[0] for d in per.values() for v in d.values()})
        out += ["## Instructions per query (fixed rate)", "",
                f"Method: {'; '.join(methods)}. Counts cover every thread of the process "
                "over the run (control plane included), user space only; at a low fixed rate "
                "each receive call usually gets one datagram, so per-call costs weigh in fully.", "",
                "| class | keiko queries | keiko instr/query | gdnsd queries | gdnsd instr/query | keiko/gdnsd |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for cls, d in per.items():
            k = d.get("keiko", ("", 0, float("nan"), float("nan")))
            g = d.get("gdnsd", ("", 0, float("nan"), float("nan")))
            out.append(f"| {CLASS_TEXT.get(cls, cls).split(' (')[0]} | {fmt(k[1], 0)} | {fmt(k[2], 0)} "
                       f"| {fmt(g[1], 0)} | {fmt(g[2], 0)} | {ratio(k[2], g[2])} |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()

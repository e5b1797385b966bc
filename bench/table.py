#!/usr/bin/env python3
"""bench/table.py - bookkeeping and the results table for bench/run.sh.

Subcommands (standard library only):
  record FILE --workload W --title T --kind K --broker B --rep N
         --status ok|na|failed --reason TEXT [--out SHBENCH-OUTPUT]
      append one run to FILE (JSON lines), taking the "SHBENCH {json}" or
      "SHBENCH-HW {json}" line from the output file when given
  brief OUT STATUS REASON      one-line progress summary of a run
  field OUT NAME               one field of a run's JSON (for the driver)
  table FILE [--machine F] [--markdown OUT] [--smoke]
      print the comparison table (median and spread over repetitions,
      StreamHouse / reference ratio), resource use and machine limits

Spread is the half range: (max - min) / 2 / median, shown as +-x%.
"""
import argparse
import json
import statistics
import sys


def parse_out(path):
    """The JSON a bench program printed, or None."""
    try:
        with open(path) as f:
            for line in f:
                for tag in ("SHBENCH ", "SHBENCH-HW "):
                    if line.startswith(tag):
                        return json.loads(line[len(tag):])
    except (OSError, ValueError):
        pass
    return None


def cmd_record(a):
    rec = {"workload": a.workload, "title": a.title, "kind": a.kind, "broker": a.broker,
           "rep": a.rep, "status": a.status, "reason": a.reason,
           "result": parse_out(a.out) if a.out else None}
    with open(a.file, "a") as f:
        f.write(json.dumps(rec) + "\n")


def fmt_count(v):
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def fmt_ms(v):
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def cmd_brief(a):
    r = parse_out(a.out)
    if a.status != "ok" or not r:
        print(f"{a.status.upper()}: {a.reason}" if a.reason else a.status.upper())
        return
    s = f"{fmt_count(r['records_per_sec'])} rec/s, {r['mib_per_sec']:.1f} MiB/s"
    for key, name in (("produce_latency_ms", "produce"), ("e2e_latency_ms", "e2e")):
        lat = r.get(key)
        if lat:
            s += f", {name} p50/p99 {lat['p50']:.2f}/{lat['p99']:.2f} ms"
    if r.get("broker_cpu_s") is not None:
        s += f", broker {r['broker_cpu_s']:.2f} s CPU"
    print(s)


def cmd_field(a):
    r = parse_out(a.out) or {}
    v = r.get(a.name)
    print("" if v is None else v)


# ------------------------------------------------------------------ table

class Notes:
    """Footnotes for n/a and FAILED reasons, numbered in order of use."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"


def med_spread(values):
    m = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / m * 100 if m else 0.0
    return m, spread


def spread_txt(values, spread):
    return f" ±{spread:.1f}%" if len(values) > 1 else " (1 run)"


def status_cell(runs, notes):
    """None when there are figures to show, else the n/a / FAILED text."""
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        return "FAILED " + notes.ref(failed[0]["reason"] or "failed")
    if not [r for r in runs if r["status"] == "ok" and r["result"]]:
        na = [r for r in runs if r["status"] == "na"]
        return "n/a " + notes.ref(na[0]["reason"] if na and na[0]["reason"] else "no result")
    return None


def ok_results(runs):
    return [r["result"] for r in runs if r["status"] == "ok" and r["result"]]


def metric_rows(kind):
    """(label, extractor, formatter, primary) for each row of a workload."""
    thr = ("records/s (MiB/s)", lambda r: r["records_per_sec"], None, True)
    if kind in ("consume", "fill"):
        return [thr, ("records", lambda r: r["records"], fmt_count, False)]
    if kind != "e2e":
        return [thr]
    rows = []
    for key, name in (("produce_latency_ms", "produce"), ("e2e_latency_ms", "end-to-end")):
        for p, pname in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
            rows.append((f"{name} latency {pname}",
                         (lambda k, q: lambda r: r[k][q] if r.get(k) else None)(key, p),
                         fmt_ms, True))
    rows.append(("achieved records/s", lambda r: r["records_per_sec"], None, False))
    return rows


def cell(runs, extract, fmt, notes):
    st = status_cell(runs, notes)
    if st:
        return st, None
    res = ok_results(runs)
    vals = [v for v in (extract(r) for r in res) if v is not None]
    if not vals:
        return "-", None
    m, sp = med_spread(vals)
    partial = f" ({len(res)} of {len(runs)} runs)" if len(res) < len(runs) else ""
    if fmt is None:
        mib = statistics.median([r["mib_per_sec"] for r in res])
        text = f"{fmt_count(m)} ({mib:.1f} MiB/s)"
    else:
        text = fmt(m)
    return text + spread_txt(vals, sp) + partial, m


def render(headers, rows, markdown):
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def build(records, machine, smoke, markdown):
    order, by = [], {}
    for rec in records:
        key = rec["workload"]
        if key not in by:
            order.append(key)
            by[key] = {"title": rec["title"], "kind": rec["kind"], "runs": {}}
        by[key]["runs"].setdefault(rec["broker"], []).append(rec)

    notes = Notes()
    out = []
    h2 = "## " if markdown else ""
    if smoke:
        out.append("Smoke run: tiny counts, one repetition. The figures below only show "
                   "that each run completed and verified; they are not measurements.\n")

    # machine limits
    hw = [k for k in order if by[k]["kind"] == "hw"]
    if hw or machine:
        out.append(f"{h2}Machine\n")
        if machine:
            fence = "```" if markdown else ""
            out.append((fence + "\n" if fence else "") + machine.strip() +
                       ("\n" + fence if fence else "") + "\n")
    if hw:
        rows = []
        specs = {
            "hw-tcp": [("loopback TCP throughput", "mib_per_sec", lambda v: f"{v:.0f} MiB/s")],
            "hw-fsync": [("fsync latency, 1 KiB append + fdatasync, p50", "p50_ms", fmt_ms),
                         ("fsync latency, 1 KiB append + fdatasync, p99", "p99_ms", fmt_ms)],
            "hw-seqwrite": [("sequential write, fdatasync every 1 MiB", "mib_per_sec",
                             lambda v: f"{v:.0f} MiB/s")],
        }
        for k in hw:
            runs = by[k]["runs"].get("machine", [])
            for label, field, fmt in specs.get(k, []):
                st = status_cell(runs, notes)
                if st:
                    rows.append([label, st])
                    continue
                vals = [r[field] for r in ok_results(runs)]
                m, sp = med_spread(vals)
                rows.append([label, fmt(m) + spread_txt(vals, sp)])
        out.append(render(["limit", "median ±spread"], rows, markdown) + "\n")

    # comparison
    rows = []
    for k in order:
        w = by[k]
        if w["kind"] == "hw":
            continue
        sh = w["runs"].get("streamhouse", [])
        ref = w["runs"].get("reference", [])
        for i, (label, extract, fmt, primary) in enumerate(metric_rows(w["kind"])):
            sh_txt, sh_v = cell(sh, extract, fmt, notes) if sh else ("-", None)
            ref_txt, ref_v = cell(ref, extract, fmt, notes) if ref else ("-", None)
            ratio = f"{sh_v / ref_v:.2f}x" if sh_v is not None and ref_v else "-"
            rows.append([w["title"] if i == 0 else "", label, sh_txt, ref_txt, ratio])
    out.append(f"{h2}StreamHouse vs reference\n")
    out.append(render(["workload", "metric", "StreamHouse", "reference", "SH/ref"], rows,
                      markdown) + "\n")

    # resources
    rows = []
    for k in order:
        w = by[k]
        if w["kind"] == "hw":
            continue
        row = [w["title"]]
        for b in ("streamhouse", "reference"):
            res = ok_results(w["runs"].get(b, []))
            cpu = [r["broker_cpu_s"] for r in res if r.get("broker_cpu_s") is not None]
            cores = [r["broker_cores"] for r in res if r.get("broker_cores") is not None]
            rss = [r["broker_rss_peak_kib"] for r in res if r.get("broker_rss_peak_kib")]
            row.append(f"{statistics.median(cpu):.2f} s ({statistics.median(cores):.2f} cores)"
                       if cpu else "-")
            row.append(f"{statistics.median(rss) / 1024:.0f} MiB" if rss else "-")
        res = ok_results(w["runs"].get("reference", [])) + \
            ok_results(w["runs"].get("streamhouse", []))
        cl = [r["client_cpu_s"] for r in res]
        row.append(f"{statistics.median(cl):.2f} s" if cl else "-")
        rows.append(row)
    out.append(f"{h2}Resources per run (medians)\n")
    out.append(render(["workload", "SH broker CPU", "SH peak RSS", "ref broker CPU",
                       "ref peak RSS", "client CPU"], rows, markdown) + "\n")

    if notes.items:
        out.append(f"{h2}Notes\n")
        out.append("\n".join(f"[{i + 1}] {t}" + ("  " if markdown else "")
                             for i, t in enumerate(notes.items)) + "\n")
    return "\n".join(out)


def cmd_table(a):
    records = []
    with open(a.file) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    machine = ""
    if a.machine:
        try:
            with open(a.machine) as f:
                machine = f.read()
        except OSError:
            pass
    print(build(records, machine, a.smoke, False))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(build(records, machine, a.smoke, True))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("file")
    for opt in ("workload", "title", "kind", "broker", "status", "reason"):
        r.add_argument("--" + opt, required=True)
    r.add_argument("--rep", type=int, required=True)
    r.add_argument("--out")
    b = sub.add_parser("brief")
    b.add_argument("out")
    b.add_argument("status")
    b.add_argument("reason")
    f = sub.add_parser("field")
    f.add_argument("out")
    f.add_argument("name")
    t = sub.add_parser("table")
    t.add_argument("file")
    t.add_argument("--machine")
    t.add_argument("--markdown")
    t.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    {"record": cmd_record, "brief": cmd_brief, "field": cmd_field, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

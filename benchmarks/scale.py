"""Scale benchmark: the workflow on demo data of growing size; time and peak memory per stage.

    python benchmarks/scale.py [--sizes 250,500,1000] [--llama-problems 250] [--no-analyses]
                               [--quick] [--git-ref REF] [--work DIR] [--results PATH]

Runs ``snakemake --cores 2`` (the default pipeline: sweep, sweet spot, every site, plots, the
use-case analyses) in a fresh copy of the workflow on the synthetic demo of the GPT-2 shape
(12 layers x 6 positions x 768 dims) at each number of problems, and of the LLaMA-1B shape
(16 x 6 x 2048). Each demo raw JSON is written once, by the workflow's ``demo_data`` rule, and
cached in the work dir. Per job: seconds and max_rss from Snakemake's benchmark TSVs, and the
mem_mb and runtime it asked for, from the ``resources:`` line of the Snakemake log. Jobs are
grouped into stages; each stage's growth between sizes is reported as an exponent
log(v2/v1) / log(n2/n1) (1: linear). Conversion is also run alone (benchmarks/stages.py) for
its exact peak RSS, to set beside the raw JSON's and the output's sizes. Writes a Markdown report
(default benchmarks/SCALE.md) and results.json in the work dir; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from run_benchmark import (ANALYSIS_JOBS, QUICK, SEED_TARGETS, WORKFLOW_FILES, copy_workflow, job_stats, machine,
                           run_child)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
THREADS = 2
MB = 2**20
JSON_BYTES_PER_VALUE = 32  # the demo's raw JSON: 31 bytes a value, measured
GPT2 = {"n_layers": 12, "n_positions": 6, "hidden_dim": 768}
LLAMA = {"n_layers": 16, "n_positions": 6, "hidden_dim": 2048}
QUICK_GPT2 = {k: QUICK.demo[k] for k in GPT2}
QUICK_LLAMA = {**QUICK_GPT2, "n_layers": QUICK_GPT2["n_layers"] + 1, "hidden_dim": 2 * QUICK_GPT2["hidden_dim"]}
PLOT_JOBS = ("collect_site_metrics", "plot_sites", "plot_sweep", "report_tables")
STAGES = ("conversion", "baselines", "sweep training", "sweep analysis", "sites training", "collection/plots",
          "use-case analyses")
ROWS = STAGES + ("all jobs", "snakemake wall")
DEMO_TARGET = "results/demo/synthetic_raw.json"


def stage_of(job: str) -> str:
    """The stage of a job, from its benchmark TSV's path (``sweep/all.tsv`` -> sweep training)."""
    name = job.removesuffix(".tsv")
    if name == "demo_data":
        return "demo data"
    if name == "convert":
        return "conversion"
    if name.startswith("baselines"):
        return "baselines"
    if name.startswith("sweep/"):
        return "sweep training"
    if name == "analyze_sweep":
        return "sweep analysis"
    if name.startswith("sites/"):
        return "sites training"
    if name in PLOT_JOBS:
        return "collection/plots"
    return "use-case analyses" if name in ANALYSIS_JOBS else "other"


def requested(log: Path) -> dict[str, dict]:
    """Per job (its benchmark TSV, relative to results/benchmarks) the resources Snakemake printed
    when it started the job: ``{"mem_mb": 4000, "runtime": 60, ...}`` (numbers as numbers)."""
    out, bench = {}, None
    for line in log.read_text(errors="replace").splitlines():
        if re.match(r"^(local)?(rule|checkpoint) \S+:$", line):
            bench = None
        elif m := re.match(r"^\s+benchmark: results/benchmarks/(\S+)$", line):
            bench = m[1]
        elif (m := re.match(r"^\s+resources: (.*)$", line)) and bench:
            res = dict(item.split("=", 1) for item in m[1].split(", ") if "=" in item)
            out[bench] = {k: (float(v) if re.fullmatch(r"-?\d+(\.\d+)?", v) else v) for k, v in res.items()}
    return out


def tsv_row(path: Path) -> dict:
    with open(path) as f:
        return next(csv.DictReader(f, delimiter="\t"))


def snakemake(wd: Path, config: dict, log: Path, targets=()) -> dict:
    """``snakemake --cores 2 --configfile scale.yaml [targets]`` in ``wd``: wall, CPU, peak."""
    (wd / "scale.yaml").write_text(json.dumps(config, indent=2))
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", str(THREADS), "--configfile", "scale.yaml"]
    return {"command": shlex.join(cmd[2:]), **run_child(cmd, log, cwd=wd)}


def check_disk(where: Path, need: int, what: str) -> None:
    free = shutil.disk_usage(where).free
    if free < need:
        sys.exit(f"not enough disk for {what}: {need / MB:.0f} MB needed, {free / MB:.0f} MB free in {where}")


def demo_json(work: Path, shape: dict, n: int, base_config: dict, git_ref: str | None) -> tuple[Path, dict]:
    """The cached demo raw JSON of ``n`` problems of ``shape`` and its ``demo_data`` job's stats;
    written once by the workflow's own rule (after a check of the free disk)."""
    label = f"demo-{n}x{shape['n_layers']}x{shape['n_positions']}x{shape['hidden_dim']}"
    raw, stats_file = work / f"{label}.json", work / f"{label}.stats.json"
    if raw.exists() and stats_file.exists():
        return raw, json.loads(stats_file.read_text())
    values = n * shape["n_layers"] * shape["n_positions"] * shape["hidden_dim"]
    check_disk(work, int(values * (JSON_BYTES_PER_VALUE + 4) * 1.2) + 2**30, f"the demo {label}")
    print(f"writing the demo raw JSON {raw} (once)", flush=True)
    wd = work / "demo-workflow"
    copy_workflow(wd, git_ref)
    config = {**base_config, "raw_json": "", "demo": {"n_problems": n, **shape, "seed": 0}}
    log = work / f"{label}.snakemake.log"
    run = snakemake(wd, config, log, [DEMO_TARGET])
    shutil.move(wd / DEMO_TARGET, raw)
    stats = {**job_stats(wd / "results" / "benchmarks")["demo_data.tsv"],
             "requested": requested(log).get("demo_data.tsv", {}), "snakemake_seconds": run["seconds"],
             "raw_json_mb": raw.stat().st_size / MB, "date": datetime.now().isoformat(timespec="seconds")}
    stats_file.write_text(json.dumps(stats, indent=2))
    shutil.rmtree(wd)
    return raw, stats


def run_size(work: Path, label: str, shape: dict, n: int, base_config: dict, analyses: bool,
             git_ref: str | None) -> dict:
    """One size: its demo, the workflow on it (fresh copy), every job's stats beside its request,
    and the conversion alone in its own process (exact peak RSS)."""
    raw, demo = demo_json(work, shape, n, base_config, git_ref)
    out = work / label
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    split_mb = n * shape["n_layers"] * shape["n_positions"] * shape["hidden_dim"] * 4 / MB
    check_disk(work, int(3 * split_mb * MB) + 2**30, f"the run {label}")
    wd = out / "workflow"
    copy_workflow(wd, git_ref)
    log = out / "snakemake.log"
    print(f"{label}: snakemake ({n} problems, {shape})", flush=True)
    run = snakemake(wd, {**base_config, "raw_json": str(raw)}, log, () if analyses else SEED_TARGETS)
    print(f"  {run['seconds']:.1f} s, CPU {run['cpu_seconds']:.1f} s", flush=True)
    bench = wd / "results" / "benchmarks"
    asked = requested(log)
    jobs = {job: {**s, "stage": stage_of(job), "requested": asked.get(job, {})} for job, s in job_stats(bench).items()}
    conv = tsv_row(bench / "convert.tsv")
    to_mb = lambda v: None if v == "NA" else float(v)  # noqa: E731
    convert_alone = run_child([sys.executable, str(HERE / "stages.py"), "ours-convert",
                               json.dumps({"raw_json": str(raw), "out_dir": str(out / "convert"), "workers": THREADS}),
                               str(out / "convert.json")], out / "convert.log")
    shutil.rmtree(out / "convert")
    sweet = next(iter(sorted((wd / "results" / "sweep").rglob("sweet_spot.json"))), None)
    return {
        "label": label, "shape": shape, "n_problems": n, "values": n * math.prod(shape.values()),
        "raw_json": str(raw), "raw_json_mb": raw.stat().st_size / MB, "demo": demo,
        "splits_mb": sum(p.stat().st_size for p in (wd / "results" / "data").glob("*_activations.pt")) / MB,
        "sweet_spot": json.loads(sweet.read_text()) if sweet else None,
        "snakemake": run, "jobs": jobs,
        "convert_tsv": {k: to_mb(conv[k]) for k in ("max_rss", "max_uss", "max_pss")},
        "convert_alone": convert_alone, "load_after": load(),
    }


def stage_totals(run: dict) -> dict[str, dict]:
    """Per stage: job seconds summed, the largest job max_rss (MB; None if none was sampled)."""
    out = {}
    for stage in STAGES + ("other",):
        jobs = [j for j in run["jobs"].values() if j["stage"] == stage]
        if jobs:
            rss = [j["max_rss_mb"] for j in jobs if j["max_rss_mb"] is not None]
            out[stage] = {"seconds": sum(j["seconds"] for j in jobs), "peak_mb": max(rss) if rss else None,
                          "n_jobs": len(jobs)}
    return out


def exponent(v1, v2, n1, n2) -> float | None:
    """log(v2/v1) / log(n2/n1): 1 when v grows as n, 0 when it stays put."""
    if not v1 or not v2 or n1 == n2:
        return None
    return math.log(v2 / v1) / math.log(n2 / n1)


def verdict(points: list[tuple[float, float]], flat: float) -> str:
    """Linear or not, from the increments between consecutive sizes: equal increments per problem
    (within 1.5x) is linear (plus a fixed cost); a change under ``flat`` (or 15%) is flat."""
    points = [(n, v) for n, v in points if v is not None]
    if len(points) < 2:
        return "-"
    values = [v for _, v in points]
    if max(values) - min(values) < max(flat, 0.15 * max(values)):
        return "flat (fixed cost)"
    slopes = [(v2 - v1) / (n2 - n1) for (n1, v1), (n2, v2) in zip(points, points[1:])]
    if len(slopes) == 1:
        return "grows" if slopes[0] > 0 else "shrinks"
    if min(slopes) > 0 and max(slopes) <= 1.5 * min(slopes):
        return "linear"
    return "faster than linear" if slopes[-1] > 1.5 * max(slopes[0], 0) else "slower than linear"


def row_value(run: dict, row: str, metric: str) -> float | None:
    """A stage's value (``stage_totals``), or over every job ("all jobs": seconds summed, largest
    max_rss), or the snakemake process's wall seconds ("snakemake wall")."""
    if row == "snakemake wall":
        return run["snakemake"]["seconds"] if metric == "seconds" else None
    if row == "all jobs":
        values = [j["seconds" if metric == "seconds" else "max_rss_mb"] for j in run["jobs"].values()]
        values = [v for v in values if v is not None]
        return (sum(values) if metric == "seconds" else max(values)) if values else None
    return stage_totals(run).get(row, {}).get(metric)


def growth(runs: list[dict], llama: dict | None) -> dict:
    """Per row (stage) and metric: the GPT-2 series, its pairwise exponents and verdict, and
    LLaMA's exponent in data values against the GPT-2 run of the same (else nearest) problem count."""
    gpt2 = sorted(runs, key=lambda r: r["n_problems"])
    out = {}
    for row in ROWS:
        for metric, flat in (("seconds", 1.0), ("peak_mb", 50.0)):
            series = [(r["n_problems"], row_value(r, row, metric)) for r in gpt2]
            entry = {"series": series, "verdict": verdict(series, flat),
                     "exponents": [exponent(v1, v2, n1, n2) for (n1, v1), (n2, v2) in zip(series, series[1:])]}
            if llama and gpt2:
                ref = min(gpt2, key=lambda r: abs(r["n_problems"] - llama["n_problems"]))
                v1, v2 = row_value(ref, row, metric), row_value(llama, row, metric)
                entry["llama"] = {"value": v2, "vs": ref["label"], "ratio": v2 / v1 if v1 and v2 else None,
                                  "values_ratio": llama["values"] / ref["values"],
                                  "exponent": exponent(v1, v2, ref["values"], llama["values"])}
            out[f"{row}|{metric}"] = entry
    return out


def with_demo(run: dict) -> dict[str, dict]:
    """The run's jobs, its demo's ``demo_data`` job first (for the tables of requests only)."""
    return {"demo_data.tsv": {**run["demo"], "stage": "demo data"}, **run["jobs"]}


def flags(run: dict) -> list[str]:
    """Jobs whose measured max_rss exceeds their mem_mb request, or seconds their runtime (min)."""
    out = []
    for job, j in with_demo(run).items():
        mem, minutes = j["requested"].get("mem_mb"), j["requested"].get("runtime")
        if isinstance(mem, float) and j["max_rss_mb"] is not None and j["max_rss_mb"] > mem:
            out.append(f"{run['label']} {job}: max_rss {j['max_rss_mb']:.0f} MB > mem_mb {mem:.0f}")
        if isinstance(minutes, float) and j["seconds"] > 60 * minutes:
            out.append(f"{run['label']} {job}: {j['seconds']:.0f} s > runtime {minutes:.0f} min")
    return out


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(v, digits=1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report(m: dict) -> str:
    """The Markdown report of the measurements ``m``."""
    runs = m["runs"] + ([m["llama"]] if m["llama"] else [])
    gpt2, llama, g = m["runs"], m["llama"], m["growth"]
    mach = m["machine"]
    shape = lambda s: f"{s['n_layers']} x {s['n_positions']} x {s['hidden_dim']}"  # noqa: E731
    lines = [
        "# Scale benchmark: the workflow at growing sizes", "",
        f"- Date: {m['date']}; whole benchmark {m['wall_seconds'] / 60:.1f} min",
        f"- Command: `{m['command']}` ({m['mode']} mode)",
        f"- Machine: {mach['cpu']}, {mach['cores']} cores, {mach['ram_gib']} GiB RAM; Python {mach['python']}, "
        f"torch {mach['torch']}, numpy {mach['numpy']}, snakemake {mach['snakemake']}",
        f"- Load average (1, 5, 15 min) before: {m['load_before']}, after: {m['load_after']}"
        + (" (another process was using the cores: times are a little high and noisy)"
           if max(float(x) for x in f"{m['load_before']}, {m['load_after']}".split(", ")) > 0.5 else ""),
        f"- Workflow: {m['source']}; each size runs `snakemake --cores {THREADS} --configfile scale.yaml"
        f"{'' if m['analyses'] else ' ' + ' '.join(SEED_TARGETS)}` in a fresh copy, scale.yaml = "
        f"`{json.dumps(m['base_config'])}` plus `raw_json` (the cached demo); everything else is the default "
        "config (the 8-entry sweep at position 3, layer 8, 25 epochs, then the sweet spot at every site)"
        + ("" if m["analyses"] else "; **the use-case analyses were skipped (--no-analyses)**"),
        "",
        "## Runs", "",
        "| Run | Shape (layers x positions x dims) | Problems | Raw JSON MB | Splits MB | Demo data s / max_rss MB "
        "(not in the pipeline) | Sweet spot (d, K) | Snakemake wall s | CPU s | Sum of job s | Load after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        sw, d = r["sweet_spot"], r["demo"]
        lines.append(
            f"| {r['label']} | {shape(r['shape'])} | {r['n_problems']} | {r['raw_json_mb']:.0f} | "
            f"{r['splits_mb']:.0f} | {d['seconds']:.1f} / {fmt(d['max_rss_mb'], 0)} | "
            f"{(sw['d'], sw['k']) if sw else '-'} | {r['snakemake']['seconds']:.1f} | "
            f"{r['snakemake']['cpu_seconds']:.1f} | {sum(j['seconds'] for j in r['jobs'].values()):.1f} | "
            f"{r['load_after']} |")
    pairs = [f"{a['n_problems']}->{b['n_problems']}" for a, b in zip(gpt2, gpt2[1:])]
    heads = [f"GPT-2 {r['n_problems']}" for r in gpt2]
    ref = f" vs {g[f'{STAGES[0]}|seconds']['llama']['vs']}" if llama else ""
    for metric, title, unit in (("seconds", "Time per stage", "job seconds, summed over the stage's jobs"),
                                ("peak_mb", "Peak memory per stage", "the largest max_rss of the stage's jobs, MB")):
        lines += ["", f"## {title} ({unit})", "",
                  "| Stage | " + " | ".join(heads) + " | " + " | ".join(f"exponent {p}" for p in pairs)
                  + " | GPT-2 verdict" + (f" | LLaMA {llama['n_problems']} | LLaMA ratio{ref} | "
                                          "exponent in data values" if llama else "") + " |",
                  "|---" * (2 + len(heads) + len(pairs) + (3 if llama else 0)) + "|"]
        for stage in ROWS if metric == "seconds" else ROWS[:-1]:
            e = g[f"{stage}|{metric}"]
            cells = [fmt(v, 1 if metric == "seconds" else 0) for _, v in e["series"]]
            cells += [fmt(x, 2) for x in e["exponents"]] + [e["verdict"]]
            if llama:
                ll = e["llama"]
                cells += [fmt(ll["value"], 1 if metric == "seconds" else 0), fmt(ll["ratio"], 2),
                          fmt(ll["exponent"], 2)]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    if llama:
        lines += ["", f"LLaMA ratio: the LLaMA run's value over the GPT-2 run's at {llama['n_problems']} problems "
                  f"(nearest); the data has {g[f'{STAGES[0]}|seconds']['llama']['values_ratio']:.2f}x the values "
                  f"({shape(llama['shape'])} against {shape(gpt2[0]['shape'])}); exponent in data values: "
                  "log(ratio) / log(values ratio), 1 = proportional to the data."]
    lines += ["", "all jobs: seconds summed over every job, and the largest job's max_rss; snakemake wall: the whole "
              "run's wall time (2 cores, jobs side by side). Exponent: log(v2/v1) / log(n2/n1) between two sizes "
              "(1 = linear, 0 = flat). Every job pays a "
              "fixed start-up (Python, torch: about 2 s and 200-300 MB), so small stages show exponents below 1. "
              "Verdict: linear when the increment per problem is the same (within 1.5x) between each pair of "
              "sizes; flat when the change is under 15% (or 1 s, 50 MB). Stage time is the sum of its jobs' "
              "wall seconds (2 jobs may run at once). max_rss: Snakemake's benchmark TSV, the RSS summed over the "
              "job's process tree, sampled about once a second, so jobs under a second may show little or NA.",
              "", "## Conversion memory against the raw JSON and the output", "",
              "| Run | Raw JSON MB | Splits MB (output) | Conversion max_rss MB (TSV, tree sum) | max_pss MB | "
              "Exact peak MB (alone, largest process, os.wait4) | Peak < raw JSON | Peak / output | "
              "Largest job max_rss MB (job) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        c, alone, peak = r["convert_tsv"], r["convert_alone"]["peak_mb"], conversion_peak(r)
        big = max((j for j in r["jobs"].items() if j[1]["max_rss_mb"] is not None), key=lambda j: j[1]["max_rss_mb"])
        lines.append(
            f"| {r['label']} | {r['raw_json_mb']:.0f} | {r['splits_mb']:.0f} | {fmt(c['max_rss'], 0)} | "
            f"{fmt(c['max_pss'], 0)} | {alone:.0f} | {'yes' if peak < r['raw_json_mb'] else 'NO'} | "
            f"{peak / r['splits_mb']:.2f} | {big[1]['max_rss_mb']:.0f} ({big[0].removesuffix('.tsv')}) |")
    pairs = [(gpt2[0], gpt2[-1])] if len(gpt2) > 1 else []
    pairs += [(min(gpt2, key=lambda r: abs(r["n_problems"] - llama["n_problems"])), llama)] if llama and gpt2 else []
    lines += ["", "Growth of the conversion's peak (fixed part: Python, numpy and 2 parsing workers): "
              + "; ".join(conversion_growth(a, b) for a, b in pairs) + ".", "",
              "Growth of every stage's peak against the raw JSON's (a stage that held the raw file would grow "
              "at least as much): " + "; ".join(stage_peak_growth(a, b) for a, b in pairs) + "."]
    lines += ["", "## Requested against measured, per job", "",
              "Each cell: seconds / max_rss MB / requested mem_mb (runtime min), the request as Snakemake printed "
              "it when it started the job. **bold**: the job used more than it asked for.", "",
              "| Job | Stage | " + " | ".join(r["label"] for r in runs) + " |",
              "|---|---|" + "---|" * len(runs)]
    order = ("demo data", *STAGES, "other")
    jobs = sorted({j for r in runs for j in with_demo(r)}, key=lambda j: (order.index(stage_of(j)), j))
    for job in jobs:
        cells = []
        for r in runs:
            j = with_demo(r).get(job)
            if j is None:
                cells.append("-")
                continue
            mem, minutes = j["requested"].get("mem_mb"), j["requested"].get("runtime")
            cell = f"{j['seconds']:.1f} / {fmt(j['max_rss_mb'], 0)} / {fmt(mem, 0)} ({fmt(minutes, 0)})"
            over = (isinstance(mem, float) and (j["max_rss_mb"] or 0) > mem) or (
                isinstance(minutes, float) and j["seconds"] > 60 * minutes)
            cells.append(f"**{cell}**" if over else cell)
        lines.append(f"| {job.removesuffix('.tsv')} | {stage_of(job)} | " + " | ".join(cells) + " |")
    lines += ["", "Over their request: " + ("; ".join(m["flags"]) if m["flags"] else "none") + ".", "",
              "## Summary", "", *summary(m), ""]
    return "\n".join(lines)


def conversion_peak(run: dict) -> float:
    """Conversion's peak MB: the larger of the TSV's (tree sum, sampled) and the exact one (alone)."""
    return max(v for v in (run["convert_tsv"]["max_rss"], run["convert_alone"]["peak_mb"]) if v is not None)


def conversion_growth(a: dict, b: dict) -> str:
    """How conversion's peak grew from run ``a`` to run ``b``, beside the raw JSON and the output."""
    dpeak, dout, draw = (conversion_peak(b) - conversion_peak(a), b["splits_mb"] - a["splits_mb"],
                         b["raw_json_mb"] - a["raw_json_mb"])
    return (f"from {a['label']} to {b['label']}: raw JSON +{draw:.0f} MB, output +{dout:.0f} MB, conversion peak "
            f"{dpeak:+.0f} MB ({fmt(dpeak / dout if dout > 0 else None, 2)}x the output's growth, "
            f"{fmt(dpeak / draw if draw > 0 else None, 2)}x the raw JSON's)")


def stage_peak_growth(a: dict, b: dict) -> str:
    """Each stage's peak growth from run ``a`` to run ``b``, beside the raw JSON's growth."""
    ta, tb = stage_totals(a), stage_totals(b)
    grown = {s: tb[s]["peak_mb"] - ta[s]["peak_mb"] for s in STAGES
             if s in ta and s in tb and ta[s]["peak_mb"] is not None and tb[s]["peak_mb"] is not None}
    return (f"from {a['label']} to {b['label']}, raw JSON +{b['raw_json_mb'] - a['raw_json_mb']:.0f} MB, stage "
            "peaks " + ", ".join(f"{s} {v:+.0f}" for s, v in grown.items()) + " MB")


def summary(m: dict) -> list[str]:
    """Plain-language bullets from the verdicts and the conversion check."""
    g, runs = m["growth"], m["runs"] + ([m["llama"]] if m["llama"] else [])
    out = []
    for metric, what in (("seconds", "Time"), ("peak_mb", "Peak memory")):
        by = {}
        for stage in STAGES:
            by.setdefault(g[f"{stage}|{metric}"]["verdict"], []).append(stage)
        out.append(f"- {what} with the number of problems (GPT-2 shape): "
                   + "; ".join(f"{v}: {', '.join(s)}" for v, s in by.items()) + ".")
    if m["llama"]:
        ll = {s: g[f"{s}|seconds"]["llama"] for s in STAGES}
        vr = next(iter(ll.values()))["values_ratio"]
        heavy = [f"{s} x{e['ratio']:.1f}" for s, e in ll.items() if e["ratio"]]
        ref = next(r for r in m["runs"] if r["label"] == next(iter(ll.values()))["vs"])
        jobs = {job: j["seconds"] / ref["jobs"][job]["seconds"] for job, j in m["llama"]["jobs"].items()
                if job in ref["jobs"] and ref["jobs"][job]["seconds"] >= 1}
        top = sorted(jobs, key=jobs.get, reverse=True)[:3]
        (hl, sl), (hg, sg) = ((r["shape"]["hidden_dim"], r["shape"]["n_layers"] * r["shape"]["n_positions"])
                              for r in (m["llama"], ref))
        out.append(f"- LLaMA-1B shape ({m['llama']['n_problems']} problems, {vr:.2f}x the values of GPT-2 at the "
                   f"same count): time ratios {', '.join(heavy)}; the jobs that grow most: "
                   + ", ".join(f"{j.removesuffix('.tsv')} x{jobs[j]:.1f}" for j in top)
                   + f". A site's matmuls grow with H ({hl / hg:.2f}x), and there are {sl} sites against {sg}: "
                   f"{hl / hg * sl / sg:.1f}x the training work per problem.")
    above = [r["label"] for r in runs if conversion_peak(r) >= r["raw_json_mb"]]
    gpt2 = m["runs"]
    out.append("- Conversion's peak is below the raw JSON's size "
               + (f"at every size except {', '.join(above)}, where the file is small and the fixed part (Python "
                  "and 2 parsing workers) dominates" if above else "at every size")
               + (f"; {conversion_growth(gpt2[0], gpt2[-1])}" if len(gpt2) > 1 else "") + ".")
    if len(gpt2) > 1:
        a, b = gpt2[0], gpt2[-1]
        draw = b["raw_json_mb"] - a["raw_json_mb"]
        ta, tb = stage_totals(a), stage_totals(b)
        grown = {s: tb[s]["peak_mb"] - ta[s]["peak_mb"] for s in STAGES
                 if s in ta and s in tb and ta[s]["peak_mb"] is not None and tb[s]["peak_mb"] is not None}
        top = max(grown, key=grown.get)
        out.append(f"- No stage holds the raw file: {'yes' if grown[top] < draw else 'NO'}; from {a['label']} to "
                   f"{b['label']} the raw JSON grows by {draw:.0f} MB and the stage peak that grows most "
                   f"({top}) by {grown[top]:.0f} MB.")
    out.append(f"- Jobs over their memory or time request: {len(m['flags']) or 'none'}.")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="GPT-2-shaped problem counts (default 250,500,1000; quick: 40,80)")
    parser.add_argument("--llama-problems", type=int, help="problems of the LLaMA-1B-shaped run, 0 to skip "
                        "(default 250; quick: 40)")
    parser.add_argument("--no-analyses", action="store_true", help="skip the use-case analyses (the seed's "
                        "pipeline only: raw JSON to the sites' plots and tables)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 sweep configs, 2 epochs (smoke test)")
    parser.add_argument("--git-ref", help="run the workflow of this commit (default: the working tree)")
    parser.add_argument("--work", type=Path, default=HERE / "work" / "scale", help="work dir, caches the demos")
    parser.add_argument("--results", type=Path, help="Markdown report (default benchmarks/SCALE.md; quick: in "
                        "the work dir)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in (args.sizes or ("40,80" if args.quick else "250,500,1000")).split(",")]
    llama_n = args.llama_problems if args.llama_problems is not None else (40 if args.quick else 250)
    gpt2_shape, llama_shape = (QUICK_GPT2, QUICK_LLAMA) if args.quick else (GPT2, LLAMA)
    base_config = {}
    if args.quick:
        (position, layer) = QUICK.sweep_site
        base_config = {"train": {"epochs": QUICK.epochs}, "sweep": {
            "position": position, "layer": layer, "configs": [{"d": d, "k": k} for d, k in QUICK.sweep_configs]}}
    load_before = load()
    analyses = not args.no_analyses
    runs = [run_size(work, f"gpt2-{n}", gpt2_shape, n, base_config, analyses, args.git_ref) for n in sizes]
    llama = run_size(work, f"llama-{llama_n}", llama_shape, llama_n, base_config, analyses, args.git_ref) \
        if llama_n else None
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", *WORKFLOW_FILES],
                           capture_output=True, text=True).stdout.strip()
    m = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["python", os.path.relpath(__file__, Path.cwd()), *(argv or sys.argv[1:])]),
        "mode": "quick" if args.quick else "full", "machine": machine(), "analyses": analyses,
        "source": f"commit {args.git_ref}" if args.git_ref else
        f"working tree at {head}" + (" with uncommitted changes to the workflow" if dirty else ""),
        "base_config": base_config, "load_before": load_before, "load_after": load(),
        "runs": runs, "llama": llama, "growth": growth(runs, llama),
        "flags": [f for r in runs + ([llama] if llama else []) for f in flags(r)],
        "wall_seconds": time.perf_counter() - start,
    }
    results = args.results or (work / "SCALE-quick.md" if args.quick else HERE / "SCALE.md")
    results.parent.mkdir(parents=True, exist_ok=True)
    text = report(m)
    results.write_text(text)
    (work / "results.json").write_text(json.dumps(m, indent=2))
    print("\n" + text)
    print(f"wrote {results} and {work / 'results.json'} ({m['wall_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()

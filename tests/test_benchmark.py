"""Smoke test of the benchmark: a --quick run writes every row to RESULTS.md and results.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = ("Conversion time", "Conversion peak memory", "Sites training", "Sites training, topk recipe", "FLOP floor", "Explained variance", "Death rate",
        "End to end", "End-to-end CPU time", "Sweep jobs", "Use-case analyses", "No-op rerun", "Max job RSS", "GPU sites")


@pytest.mark.slow
def test_quick_benchmark_reports_every_row(tmp_path):
    results = tmp_path / "RESULTS.md"
    cmd = [sys.executable, "benchmarks/run_benchmark.py", "--quick", "--work", str(tmp_path),
           "--results", str(results)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = results.read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    names = [r["row"] for r in data["rows"]]
    for name in ROWS:
        assert any(n.startswith(name) for n in names), name
        assert f"| {name}" in report and f"| {name}" in proc.stdout, name
    for r in data["rows"]:
        assert r["met"] in (True, False, None) and r["target"]
    assert data["mode"] == "quick" and data["sites_compared"]["explained_variance"]["n_sites"] == 12
    assert data["workflow"]["jobs"], "no Snakemake benchmark TSV was read"
    assert (tmp_path / "seed/plots/reconstruction_loss.png").exists()
    assert (tmp_path / "seed/plots/feature_death_rate.png").exists()


def test_quick_extraction_benchmark_reports_every_row(tmp_path):
    pytest.importorskip("transformers")
    results = tmp_path / "EXTRACTION.md"
    cmd = [sys.executable, "benchmarks/extraction.py", "--quick", "--work", str(tmp_path), "--results", str(results)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in results.read_text().splitlines() if re.match(r"\| (1|16) \| (1|16) \|", line)]
    assert len(rows) == 4 and "random weights" in results.read_text()


def test_quick_rows_benchmark_reports_every_recipe_at_every_size(tmp_path):
    results = tmp_path / "ROWS.md"
    cmd = [sys.executable, "benchmarks/rows.py", "--quick", "--results", str(results)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = results.read_text()
    assert "SYNTHETIC" in report
    rows = [line.split(" | ")[:4] for line in report.splitlines() if line.startswith("| position")]
    assert rows == [["| position 3, layer 8", str(n), "4", recipe] for n in (100, 200)
                    for recipe in ("seed", "topk", "topk, signed codes, lr 0.003")]
    data = json.loads(results.with_suffix(".json").read_text())
    assert all(0 <= r["pca_fvu"] < r["mean_only_fvu"] for r in data["results"])
    assert all(0 <= r[key] <= 1 for r in data["results"] for key in ("found", "found_cosine", "pca_found"))

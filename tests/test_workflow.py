"""End-to-end runs of the workflow on tiny data, in a copy of the repository."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import os
import re
import shutil
import signal
import statistics
import uuid
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import torch
from conftest import RunsCode, raw_dict, write_raw

import codi_sae
from codi_sae.checkpoint import load_sae
from codi_sae.codes import load_codes
from codi_sae.crosslayer import dictionary_overlap
from codi_sae.sae import TopKAutoencoder
from codi_sae.selection import rank_configs

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "src", "config", "envs", "profiles", "report")
TINY = """
demo: {n_problems: 30, n_layers: 3, n_positions: 4, hidden_dim: 16}
sweep: {position: 1, layer: 2, configs: [{d: 8, k: 2}, {d: 16, k: 4}, {d: 24, k: 8}, {d: 16, k: 4, recipe: topk}]}
train: {epochs: 3, batch_size: 8}
sites: {sites_per_batch: 5}
"""
SWEEP = (("d8_k2", 8, 2, "seed"), ("d16_k4", 16, 4, "seed"), ("d24_k8", 24, 8, "seed"), ("d16_k4_topk", 16, 4, "topk"))
ANALYSIS_PLOTS = ("probe_auroc_codes", "probe_auroc_raw", "cross_layer", "positions")
USE_CASES = ("codes", "probe", "catalogue", "cross_layer", "positions", "probe_page", "plot_analyses")
HEATMAPS = ("reconstruction_loss", "feature_death_rate", "explained_variance", "fvu", "fvu_minus_pca_fvu")
METRICS = {
    "explained_variance", "explained_variance_std", "fvu", "reconstruction_loss", "cosine_similarity",
    "l0_mean", "l0_std", "mean_activation", "max_activation", "median_activation", "feature_death_rate",
    "num_dead_features", "num_active_features", "train_time_sec", "epochs",
}


def copy_workflow(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def ran(proc: subprocess.CompletedProcess) -> Counter:
    """How many jobs of each rule a run executed."""
    text = proc.stdout + proc.stderr
    return Counter(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", text, re.M))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("demo"))
    (wd / "tiny.yaml").write_text(TINY)
    snakemake(wd, "--configfile", "tiny.yaml")
    return wd


def test_every_output_of_the_demo_run(demo_run):
    wd = demo_run
    raw = json.loads((wd / "results/demo/synthetic_raw.json").read_text())
    assert raw["metadata"]["synthetic"] is True
    truth = torch.load(wd / "results/demo/synthetic_ground_truth.pt", weights_only=True)
    assert truth["synthetic"] is True

    train = torch.load(wd / "results/data/train_activations.pt", weights_only=True)
    val = torch.load(wd / "results/data/val_activations.pt", weights_only=True)
    assert train["activations"].shape == (24 * 3 * 4, 16) and val["activations"].shape == (6 * 3 * 4, 16)
    assert set(train["problems"]["ids"]).isdisjoint(val["problems"]["ids"])

    sweep = wd / "results/sweep/pos1_layer2"
    for name, d, k, recipe in SWEEP:
        ckpt = torch.load(sweep / f"{name}.pt", weights_only=True)
        assert (ckpt["config"]["latent_dim"], ckpt["config"]["k"], ckpt["config"]["recipe"]) == (d, k, recipe)
        assert METRICS <= set(ckpt["metrics"])
        doc = json.loads((sweep / f"{name}.json").read_text())
        assert doc["metrics"] == ckpt["metrics"] and doc["provenance"] == ckpt["provenance"]
        assert doc["provenance"] == {
            "codi_sae": codi_sae.__version__, "torch": torch.__version__,
            **{f"{split}_split": {"path": f"results/data/{split}_activations.pt",
                                  "sha256": hashlib.sha256((wd / f"results/data/{split}_activations.pt").read_bytes()).hexdigest()}
               for split in ("train", "val")},
        }
    summary = json.loads((wd / "results/sweep/analysis_summary.json").read_text())
    choice = json.loads((wd / "results/sweep/sweet_spot.json").read_text())
    assert choice == {key: summary["sweet_spot"][key] for key in ("d", "k", "recipe")}
    assert len(summary["configs"]) == 4 and summary["rationale"]
    baselines = json.loads((wd / "results/baselines/sweep.json").read_text())
    assert baselines["ks"] == [2, 4, 8] and baselines["n_train"] == 24 and list(baselines["sites"]) == ["2"]
    for row in summary["configs"]:
        pca = baselines["sites"]["2"]["1"]["pca"][str(row["k"])]
        assert row["pca_fvu"] == pca["fvu"] and row["fvu_minus_pca_fvu"] == pytest.approx(row["fvu"] - pca["fvu"])
        assert row["mean_only_fvu"] == baselines["sites"]["2"]["1"]["mean_only"]["fvu"]
    assert "| Rank |" in (wd / "results/sweep/analysis_summary.md").read_text()

    everything = json.loads((wd / "results/sweet_spot/metrics_all.json").read_text())
    assert sorted(everything["results"]) == ["0", "1", "2"]
    assert all(sorted(by_pos) == ["0", "1", "2", "3"] for by_pos in everything["results"].values())
    assert (everything["config"]["latent_dim"], everything["config"]["recipe"]) == (choice["d"], choice["recipe"])
    site_baselines = json.loads((wd / "results/baselines/sites.json").read_text())
    assert site_baselines["ks"] == [choice["k"]]
    pca = site_baselines["sites"]["0"]["3"]["pca"][str(choice["k"])]
    assert everything["baselines"]["0"]["3"]["pca_fvu"] == pca["fvu"]
    assert everything["config"]["sites_trained_together"] is None  # batches of 5, 5 and 2 sites
    for key, stats in everything["statistics"].items():
        source = everything["results"] if key in everything["results"]["0"]["0"] else everything["baselines"]
        values = [m[key] for by_pos in source.values() for m in by_pos.values()]
        assert len(values) == 12
        expected = {"n": 12, "mean": statistics.fmean(values), "std": statistics.stdev(values), "min": min(values),
                    "max": max(values)}
        assert stats == pytest.approx(expected, rel=1e-12), key
    for layer in range(3):
        for pos in range(4):
            ckpt = torch.load(wd / f"results/sweet_spot/pos{pos}_layer{layer}.pt", weights_only=True)
            cfg = ckpt["config"]
            assert (cfg["position"], cfg["layer"], cfg["latent_dim"], cfg["k"]) == (pos, layer, choice["d"], choice["k"])
            # the seed's Quick Start code loads it unchanged (and the activation it names)
            sae = TopKAutoencoder(input_dim=16, latent_dim=cfg["latent_dim"], k=cfg["k"], activation=cfg["activation"])
            sae.load_state_dict(ckpt["model_state_dict"])
            _, features, stats = sae(torch.randn(5, 16))
            assert 0 < stats["l0_mean"] <= choice["k"]
            assert ckpt["metrics"] == everything["results"][str(layer)][str(pos)]
    model, ckpt = load_sae(wd / "results/sweet_spot/pos3_layer2.pt")
    assert (model.latent_dim, model.k, ckpt["config"]["position"]) == (choice["d"], choice["k"], 3)

    for name in HEATMAPS + ANALYSIS_PLOTS + ("sweep",):
        assert (wd / f"results/plots/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (wd / f"results/plots/{name}.svg").stat().st_size > 1000
    assert (wd / "results/logs/sites/all.log").read_text()

    # the seed's use cases
    problems = json.loads((wd / "results/data/problems.json").read_text())["problems"]
    assert len(problems) == 30 and {p["split"] for p in problems} == {"train", "val"} and problems[0]["question"]
    probe = json.loads((wd / "results/probe/metrics.json").read_text())
    cross = json.loads((wd / "results/analysis/cross_layer.json").read_text())
    positions = json.loads((wd / "results/analysis/positions.json").read_text())
    for layer in range(3):
        for pos in range(4):
            codes = load_codes(wd / f"results/codes/pos{pos}_layer{layer}.pt")
            assert codes["indices"].shape == (30, choice["k"]) and len(codes["problem_ids"]) == 30
            result = probe["sites"][str(layer)][str(pos)]
            assert set(result["models"]) == {"codes", "raw", "pca", "majority"} and result["n"] == 30
            catalogue = json.loads((wd / f"results/catalogue/pos{pos}_layer{layer}.json").read_text())
            assert len(catalogue["latents"]) == choice["d"]
            frequencies = sum(latent["frequency"] for latent in catalogue["latents"]) * 30
            assert frequencies == pytest.approx(int((codes["indices"] >= 0).sum()))
    assert set(cross["across_layers"]) == {"0", "1", "2", "3"} and set(cross["across_positions"]) == {"0", "1", "2"}
    # the demo's planted dictionary against each SAE's, and its plot
    planted = torch.load(wd / "results/demo/synthetic_ground_truth.pt", weights_only=True)["directions"]
    signed = ckpt["config"]["activation"] == "signed_topk"  # ckpt: position 3, layer 2
    assert cross["planted"]["sites"]["2"]["3"] == dictionary_overlap(planted[2].T, ckpt["model_state_dict"]["decoder.weight"],
                                                                     signed)
    assert cross["planted"]["n_features"] == planted.shape[1]
    assert (wd / "results/plots/planted.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = [log.read_text() for log in (wd / ".snakemake/log").glob("*.snakemake.log")]  # the run's notes at its end
    assert any("NOTE: SYNTHETIC demo: the sites' SAEs found" in log for log in logs)
    # the position table summarises the per-site metrics
    fvu = positions["metrics"]["fvu"]["per_layer"]["1"]
    odd = [everything["results"]["1"][str(p)]["fvu"] for p in (1, 3)]
    assert fvu["odd"] == pytest.approx(statistics.fmean(odd))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def chosen(rows: list[dict], min_ev: float, metric: str) -> dict:
    best = rank_configs(rows, min_ev, metric)[0][0]
    return {"d": best["d"], "k": best["k"], "recipe": best["recipe"]}


def entry(d: int, k: int, recipe: str) -> str:
    """A sweep entry as tiny.yaml spells it."""
    return f"{{d: {d}, k: {k}" + (f", recipe: {recipe}}}" if recipe != "seed" else "}")


def test_incremental_rebuilds(demo_run):
    wd = demo_run
    args = ("--configfile", "tiny.yaml")
    config = wd / "tiny.yaml"
    choice_file = wd / "results/sweep/sweet_spot.json"
    summary_file = wd / "results/sweep/analysis_summary.json"
    sites_and_after = {"train_sites": 1, "collect_site_metrics": 1, "plot_sites": 1, "report_tables": 1, "all": 1,
                       **{rule: 1 for rule in USE_CASES}}
    assert ran(snakemake(wd, *args)) == Counter()

    # how many sites train together cannot change a result: nothing reruns
    edit(config, "sites: {sites_per_batch: 5}", "sites: {sites_per_batch: 12}")
    assert ran(snakemake(wd, *args)) == Counter()

    # an edited sweep entry whose result does not change the choice: that config and the analysis
    choice = json.loads(choice_file.read_text())
    d, k, recipe = next((d, k, r) for _, d, k, r in SWEEP if d != choice["d"])
    edit(config, entry(d, k, recipe), entry(d, 1, recipe))  # k=1: worse, not chosen
    jobs = ran(snakemake(wd, *args))
    assert json.loads(choice_file.read_text()) == choice, "test premise: the choice stays"
    sweep_only = {"analyze_sweep": 1, "plot_sweep": 1, "report_tables": 1, "all": 1}
    # the new K needs the sweep site's PCA-1: its baselines rerun, not the sites'
    assert jobs == Counter({"baselines": 1, "train_sweep": 1, **sweep_only})

    # a selection rule edited: the analysis; the sites too, but only if the choice changed
    rows = json.loads(summary_file.read_text())["configs"]
    metric, threshold = "explained_variance_std", -10.0
    config.write_text(config.read_text() + f"selection: {{metric: {metric}, min_explained_variance: {threshold}}}\n")
    jobs = ran(snakemake(wd, *args))
    new = json.loads(choice_file.read_text())
    assert new == chosen(rows, threshold, metric)
    if new == choice:
        assert jobs == Counter(sweep_only)
    else:
        assert jobs == Counter({"analyze_sweep": 1, "plot_sweep": 1, "baselines": int(new["k"] != choice["k"]),
                                **sites_and_after})

    # an edit of the chosen config's sweep entry: it, the analysis and, the choice changing, every site
    choice = json.loads(choice_file.read_text())
    d, k, recipe = choice["d"], choice["k"], choice["recipe"]
    taken = {(r["d"], r["k"], r["recipe"]) for r in rows}
    k2 = k + 1 if k < d and (d, k + 1, recipe) not in taken else k - 1
    sweep_ks = lambda: {r["k"] for r in json.loads(summary_file.read_text())["configs"]}  # noqa: E731
    ks_before = sweep_ks()
    edit(config, entry(d, k, recipe), entry(d, k2, recipe))
    jobs = ran(snakemake(wd, *args))
    new = json.loads(choice_file.read_text())
    assert new != choice
    baselines = int(sweep_ks() != ks_before) + int(new["k"] != choice["k"])
    assert jobs == Counter({"train_sweep": 1, "analyze_sweep": 1, "plot_sweep": 1, "baselines": baselines,
                            **sites_and_after})

    # dry runs (-n) from here: the jobs a run would execute after each edit alone
    settings = config.read_text()

    # the same settings with keys reordered and defaults written out: nothing
    config.write_text(settings.replace("train: {epochs: 3, batch_size: 8}", "train: {batch_size: 8, epochs: 3}")
                      .replace("demo: {n_problems: 30,", "demo: {seed: 0, n_problems: 30,")
                      + "split: {seed: 42}\nprobe: {C: 1.0}\n")
    assert ran(snakemake(wd, *args, "-n")) == Counter()

    # probe settings: the probe and what reads it only
    config.write_text(settings + "probe: {C: 0.5}\n")
    assert ran(snakemake(wd, *args, "-n")) == Counter({"probe": 1, "positions": 1, "probe_page": 1,
                                                        "plot_analyses": 1, "all": 1})

    # site training settings: the sites and what follows only
    config.write_text(settings.replace("sites: {sites_per_batch: 12}",
                                       "sites: {sites_per_batch: 12, train: {epochs: 2}}"))
    assert ran(snakemake(wd, *args, "-n")) == Counter(sites_and_after)
    config.write_text(settings)

    # the plotting code: the plots only
    with open(wd / "src/codi_sae/plots.py", "a") as f:
        f.write("\n# edited\n")
    assert ran(snakemake(wd, *args, "-n")) == Counter({"plot_sites": 1, "plot_sweep": 1, "plot_analyses": 1, "all": 1})

    # the package's training code: every training job and what follows, not the data (a real run:
    # a dry run cannot see past the sweep's analysis, a checkpoint, that reruns)
    with open(wd / "src/codi_sae/train.py", "a") as f:
        f.write("\n# edited\n")
    jobs = ran(snakemake(wd, *args))
    assert jobs["train_sweep"] == 1 and jobs["train_sites"] == 1
    assert not jobs["convert"] and not jobs["demo_data"]


def test_jobs_split_by_config_and_layer_give_the_same_results(tmp_path):
    """Sweep jobs per config and site jobs per layer, with other batches of sites: the same
    tensors and metrics (timings aside) as a second run with one job each."""
    wd = copy_workflow(tmp_path / "wf")
    config = wd / "tiny.yaml"
    config.write_text(TINY)
    edit(config, "sweep: {position: 1, layer: 2,", "sweep: {jobs: per_config, position: 1, layer: 2,")
    edit(config, "sites: {sites_per_batch: 5}", "sites: {sites_per_batch: 2, jobs: per_layer}")
    args = ("results/sweet_spot/metrics_all.json", "--configfile", "tiny.yaml")  # the training, not the analyses
    jobs = ran(snakemake(wd, *args))
    assert jobs["train_sweep"] == 4 and jobs["train_sites"] == 3  # one per sweep entry, one per layer
    assert all((wd / f"results/logs/sites/layer{layer}.log").read_text() for layer in range(3))
    files = [f"results/sweep/pos1_layer2/{name}.pt" for name, *_ in SWEEP]
    files += [f"results/sweet_spot/pos{p}_layer{layer}.pt" for layer in range(3) for p in range(4)]
    split = {f: torch.load(wd / f, weights_only=True)["model_state_dict"] for f in files}
    metrics = {f: without_times(json.loads((wd / f.replace(".pt", ".json")).read_text())["metrics"]) for f in files}

    # a recipe switch would rerun the sweep jobs whose recipe it changes: the seed's three, not topk's
    config.write_text(config.read_text() + "sae: {activation: relu_topk}\n")
    jobs = ran(snakemake(wd, *args, "-n"))
    assert jobs["train_sweep"] == 3 and not jobs["baselines"] and not jobs["convert"]

    # back to one job each: the sweep's job lists its entries, so it reruns; the sites' split is no
    # rerun trigger (the choice is the same), so they are made again on demand: the same SAEs, tensor for tensor
    config.write_text(TINY)
    jobs = ran(snakemake(wd, *args))
    assert jobs["train_sweep"] == 1 and not jobs["train_sites"]
    assert ran(snakemake(wd, *args, "--forcerun", "train_sites"))["train_sites"] == 1
    for f in files:
        one = torch.load(wd / f, weights_only=True)["model_state_dict"]
        assert all(torch.equal(one[key], value) for key, value in split[f].items()), f
        assert without_times(json.loads((wd / f.replace(".pt", ".json")).read_text())["metrics"]) == metrics[f], f


def without_times(doc):
    """``doc`` without wall times and their statistics, which differ from run to run."""
    if isinstance(doc, dict):
        return {k: without_times(v) for k, v in doc.items() if "time" not in k and k != "source"}
    if isinstance(doc, list):
        return [without_times(v) for v in doc]
    return doc


def test_a_sweep_at_several_sites(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    config = wd / "tiny.yaml"
    config.write_text(TINY)
    edit(config, "sweep: {position: 1, layer: 2,", "sweep: {jobs: per_config, sites: [[1, 2], [0, 0]],")
    args = ("results/sweep/analysis_summary.json", "--configfile", "tiny.yaml")  # the sweep, not the sites
    assert ran(snakemake(wd, *args))["train_sweep"] == 4
    summary = json.loads((wd / "results/sweep/analysis_summary.json").read_text())
    assert summary["sites"] == [{"position": 1, "layer": 2}, {"position": 0, "layer": 0}]
    for row, per_site in zip(summary["configs"], summary["per_site"]):
        assert [(r["position"], r["layer"]) for r in per_site] == [(1, 2), (0, 0)]
        assert row["feature_death_rate"] == pytest.approx(sum(r["feature_death_rate"] for r in per_site) / 2)
    assert json.loads((wd / "results/sweep/sweet_spot.json").read_text()) == summary["configs"][0]["entry"]
    baselines = json.loads((wd / "results/baselines/sweep.json").read_text())
    assert baselines["sites"].keys() == {"0", "2"}
    files = [f"results/sweep/{site}/{name}.pt" for site in ("pos1_layer2", "pos0_layer0") for name, *_ in SWEEP]
    apart = {f: torch.load(wd / f, weights_only=True)["model_state_dict"] for f in files}

    # every site, in one job: the same SAEs where the sites overlap, tensor for tensor
    edit(config, "sweep: {jobs: per_config, sites: [[1, 2], [0, 0]],", "sweep: {sites: all,")
    assert ran(snakemake(wd, *args))["train_sweep"] == 1
    assert len(json.loads((wd / "results/sweep/analysis_summary.json").read_text())["sites"]) == 12
    for f in files:
        together = torch.load(wd / f, weights_only=True)["model_state_dict"]
        assert all(torch.equal(together[key], value) for key, value in apart[f].items()), f


def build_report(workdir: Path, *args: str) -> str:
    """The HTML of ``snakemake --report`` in ``workdir``."""
    report = workdir / "results/report.html"
    snakemake(workdir, *args, "--report", str(report))
    return report.read_text()


def test_jobs_run_the_package_of_their_own_checkout(tmp_path):
    wd = copy_workflow(tmp_path / "wf")  # this venv has the package of REPO installed, not the copy's
    with open(wd / "src/codi_sae/jobs.py", "a") as f:
        f.write("\nfrom pathlib import Path\nPath('imported_from').write_text(__file__)\n")
    (wd / "tiny.yaml").write_text(TINY)
    snakemake(wd, "results/demo/synthetic_raw.json", "--configfile", "tiny.yaml")
    assert (wd / "imported_from").read_text() == str(wd / "src/codi_sae/jobs.py")


def test_raw_json_of_another_shape_then_one_layer_and_one_position(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    obj = raw_dict(n=12, layers=tuple(range(5)), T=6, H=96)
    obj["metadata"]["synthetic"] = True  # the data's own flag, not raw_json being empty, makes the banner
    raw = write_raw(tmp_path / "llm.json", obj)
    (wd / "other.yaml").write_text(
        f"raw_json: {raw}\n"
        "split: {train_fraction: 0.75}\n"
        "sweep: {configs: [{d: 32, k: 8}, {d: 64, k: 8}]}\n"  # at the seed's site at this depth
        "train: {epochs: 2}\n"
    )
    args = ("--configfile", "other.yaml")
    snakemake(wd, *args)
    everything = json.loads((wd / "results/sweet_spot/metrics_all.json").read_text())
    assert sorted(map(int, everything["results"])) == list(range(5))
    assert everything["n_sites"] == 30 and everything["config"]["input_dim"] == 96
    assert everything["config"]["n_train"] == 9 and everything["config"]["n_val"] == 3
    assert not (wd / "results/demo").exists()
    # the seed's position 3 of 6 and layer 8 of 12 (ids 0..11), at the same depth of 5 layers
    assert [p.name for p in (wd / "results/sweep").iterdir() if p.is_dir()] == ["pos3_layer3"]
    ckpt = torch.load(wd / "results/sweet_spot/pos5_layer4.pt", weights_only=True)
    assert ckpt["model_state_dict"]["encoder.weight"].shape[1] == 96
    assert (wd / "results/plots/explained_variance.png").exists()
    html = build_report(wd, *args)
    assert "SYNTHETIC DEMO DATA: the data" in html and "(75% train, 25%" in html
    # the default config (the demo) in this folder: a note that these results come from other data
    proc = snakemake(wd, "-n")
    assert (f"results/data/dataset.json was made from {raw}, but this config names results/demo/synthetic_raw.json: "
            "a run replaces those results; to report on them, pass the run's own --config or --configfile"
            ) in proc.stdout + proc.stderr

    # replaced by other (real, not synthetic) data of the smallest shape, one layer and one position:
    # everything reruns, with a note where a comparison needs two layers or positions
    write_raw(raw, raw_dict(n=12, layers=(7,), T=1, H=16, seed=1))
    (wd / "other.yaml").write_text(f"raw_json: {raw}\n"
                                   "sweep: {configs: [{d: 16, k: 4}]}\ntrain: {epochs: 2}\n")
    proc = snakemake(wd, *args)
    assert ran(proc) == Counter({"convert": 1, "baselines": 2, "train_sweep": 1, "analyze_sweep": 1,
                                 "train_sites": 1, "collect_site_metrics": 1, "plot_sites": 1, "plot_sweep": 1,
                                 "report_tables": 1, "all": 1, **{rule: 1 for rule in USE_CASES}})
    # the run ends with a note of the results' warnings: random activations of 9 training rows, nothing to learn
    assert json.loads((wd / "results/sweet_spot/metrics_all.json").read_text())["warnings"], "test premise"
    assert "1 of 1 sites have an SAE that learned little" in proc.stderr
    assert "planted" not in proc.stderr  # no ground truth, no note of it
    assert "was made from" not in proc.stderr  # the same raw JSON's path: no note
    site = json.loads((wd / "results/sweet_spot/metrics_all.json").read_text())["baselines"]["7"]["0"]
    assert site["fvu_minus_pca_fvu"] > 0, "test premise"
    assert "PCA with the same K reconstructs the validation rows better than the SAE for 1 of 1 sweep configs " \
           "and 1 of 1 sites" in proc.stderr
    info = json.loads((wd / "results/data/dataset.json").read_text())
    assert info["synthetic"] is False and info["layers"] == [7] and info["n_positions"] == 1
    cross = json.loads((wd / "results/analysis/cross_layer.json").read_text())
    assert cross["across_layers"] == {"0": {}} and cross["across_positions"] == {"7": {}}
    assert cross["planted"] is None and not (wd / "results/plots/planted.png").exists()  # no ground truth here
    positions = json.loads((wd / "results/analysis/positions.json").read_text())
    assert positions["metrics"]["fvu"]["note"] == "no even/odd comparison: the data have no odd position"
    assert json.loads((wd / "results/probe/metrics.json").read_text())["sites"]["7"]["0"]["folds"] == 4
    assert "SYNTHETIC DEMO DATA" not in build_report(wd, *args)

    # the same data with one problem not graded: error prediction leaves it out, and says so
    ungraded = raw_dict(n=12, layers=(7,), T=1, H=16, seed=1)
    del ungraded["samples"][5]["is_correct"]
    write_raw(raw, ungraded)
    proc = snakemake(wd, *args)
    assert "no error prediction" not in proc.stderr
    site = json.loads((wd / "results/probe/metrics.json").read_text())["sites"]["7"]["0"]
    assert (site["n"], site["ungraded"], site["folds"]) == (11, 1, 4) and "note" not in site
    assert json.loads((wd / "results/data/problems.json").read_text())["problems"][5]["is_correct"] is None
    assert ("1 problem(s) are not graded (is_correct null or missing): the probes leave them out"
            in (wd / "results/report/probe.html").read_text())
    build_report(wd, *args)


@pytest.mark.parametrize(
    "config, message",
    [
        ("sweep: {position: 4, layer: 2}", r"sweep.position=4 but the data has positions 0..3: choose sites of this "
         r"data, or leave sweep.position and sweep.layer null .* here position 2, layer 2"),
        ("sweep: {position: 1, layer: 3}", r"sweep.layer=3 but the data has layers \[0, 1, 2\]"),
        ("sweep: {sites: [[0, 0], [3, 5]]}", r"sweep.sites: layer=5 but the data has layers \[0, 1, 2\]"),
        ("sweep: {sites: [[0, 0, 1]]}", r"On instance\['sweep'\]\['sites'\]"),
        ("sweep: {position: 1, layer: 2, configs: [{d: 8, k: 9}]}", "sweep.configs: k=9 is larger than d=8"),
        ("sites: {config: {d: 4, k: 5}}\nsweep: {position: 1, layer: 2}", "sites.config: k=5 is larger than d=4"),
        ("train: {epochs: 0}", "epochs"),
        ("sweep: {configs: [{d: 8}]}", "'k' is a required property"),
        ("raw_json: /no/such/file.json", "/no/such/file.json: raw JSON file not found"),
        ("sweep: {position: 1, layer: 2, configs: [{d: 8, k: 2}, {d: 8, k: 2, recipe: seed}]}",
         "sweep.configs lists d8_k2 twice"),
        ("sae: {activation: relu}", "'relu' is not one of"),
        ("sweep: {position: 1, layer: 2, configs: [{d: 8, k: 2, recipe: gated}]}", "'gated' is not one of"),
        ("selection: {metric: fvu}", "'fvu' is not one of"),
        ("resources: {mem_mb: {train: 100}}", "'train' is not one of"),
        ("train: {lr: fast}", "'fast' is not of type 'number'"),
    ],
)
def test_config_errors_stop_before_any_job(tmp_path, config, message):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "bad.yaml").write_text("demo: {n_problems: 10, n_layers: 3, n_positions: 4, hidden_dim: 8}\n" + config)
    proc = snakemake(wd, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr)
    assert not (wd / "results").exists()


def test_numbers_written_as_text_are_numbers(tmp_path):
    """YAML 1.1 reads 1e-3 as text, and Snakemake's --config passes all inside braces as text:
    where the schema wants a number (or null), such text counts as one."""
    wd = copy_workflow(tmp_path / "wf")
    (wd / "mine.yaml").write_text("demo: {n_problems: 10, n_layers: 3, n_positions: 4, hidden_dim: 8}\ntrain: {lr: 1e-3}\n")
    proc = snakemake(wd, "-n", "--configfile", "mine.yaml", "--config",
                     "sweep={position: 1, layer: null, configs: [{d: 8, k: 2}, {d: 16, k: 4}]}", "sites={config: null}")
    assert ran(proc)["train_sweep"] == 1 and "results/sweep/pos1_layer2/d16_k4.pt" in proc.stdout  # layer null: 2 of 0..2


def test_broken_raw_json_fails_cleanly(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    obj = raw_dict()
    obj["samples"][4]["thoughts"]["layer_1"][2] = obj["samples"][4]["thoughts"]["layer_1"][2][:-1]
    raw = write_raw(tmp_path / "broken.json", obj)
    (wd / "bad.yaml").write_text(f"raw_json: {raw}\nsweep: {{position: 1, layer: 2, configs: [{{d: 8, k: 2}}]}}\n")
    proc = snakemake(wd, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    expected = f"{raw}: sample #4 (id 104): layer_1, position 2 has 7 values, the metadata says hidden_dim=8"
    assert expected in proc.stdout + proc.stderr
    assert "Traceback" not in (wd / "results/logs/convert.log").read_text()
    assert not any((wd / "results/data").glob("*"))


@pytest.fixture(scope="module")
def demo_report(demo_run) -> Path:
    build_report(demo_run, "--configfile", "tiny.yaml")
    return demo_run / "results/report.html"


def test_report_holds_the_workflow_text_plots_and_tables(demo_report):
    html = demo_report.read_text()
    assert "SYNTHETIC DEMO DATA: the data's metadata marks it synthetic" in html and "(80% train, 20%" in html
    for name in HEATMAPS + ANALYSIS_PLOTS + ("sweep",):
        assert f'"data_uri": "data:image/png;charset=utf8;filename={name}.png;base64,iVBORw0KGgo' in html, name
    for name, text in (("sweep", "Sweet spot: d="), ("sweep", "<td>topk</td>"), ("sweep", "PCA-K FVU"),
                       ("sweep", "Mean-only FVU"), ("sites", "Statistics over 12 sites"), ("sites", "PCA-K FVU"),
                       ("probe", "AUROC, SAE codes"), ("catalogue", "Hide dead latents"),
                       ("positions", "Wilcoxon")):
        encoded = re.search(rf'"data_uri": "data:text/html;charset=utf8;filename={name}.html;base64,([^"]+)"', html)
        assert text in base64.b64decode(encoded.group(1)).decode(), name


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPORT_CLICKS = (
    [("Per-site heatmaps", f"results/plots/{m}.png") for m in HEATMAPS]
    + [("Sweep", "results/plots/sweep.png"), ("Error prediction", "results/plots/probe_auroc_codes.png"),
       ("Cross-layer", "results/plots/cross_layer.png"), ("Cross-layer", "results/plots/planted.png"),
       ("Position specialisation", "results/plots/positions.png"),
       ("Error prediction", "results/report/probe.html"), ("Feature catalogue", "results/report/catalogue.html"),
       ("Position specialisation", "results/report/positions.html")]
)
# Once the report's app has rendered, clicks each (category, result) of REPORT_CLICKS in turn (the
# menu's "Results" leads back to the categories) and records what it then shows: the plot as an
# <img> of its PNG, or the page in an <iframe>.
CLICK_THROUGH = """<script>
const clicks = %s, seen = [];
let banner;
function clickText(text) {
  const el = [...document.querySelectorAll('#app *')].find(e => e.textContent.trim() === text);
  if (!el) return false;
  (el.querySelector('a,button') || el.closest('a,button') || el).click();
  return true;
}
function shown(result) {
  const name = result.split("/").pop(), app = document.getElementById("app");
  return name.endsWith(".png")
    ? !!app.querySelector(`img[src^="data:image/png;charset=utf8;filename=${name};base64,iVBORw0KGgo"]`)
    : !!app.querySelector(`iframe[src^="data:text/html;charset=utf8;filename=${name};base64,PCFET0NUWVBF"]`);
}
function step(i) {
  if (i === clicks.length) {
    const out = document.createElement("pre");
    out.id = "clicked";
    out.textContent = JSON.stringify({banner: banner, clicks: seen});
    document.body.appendChild(out);
    return;
  }
  const [category, result] = clicks[i], entry = {};
  clickText("Results");  // back to the list of categories (none to click before the first)
  setTimeout(() => {
    entry.category = clickText(category);
    setTimeout(() => {
      entry.result = clickText(result);
      setTimeout(() => {
        entry.shown = shown(result);
        seen.push(entry);
        step(i + 1);
      }, 500);
    }, 500);
  }, 500);
}
setTimeout(() => {  // the app opens on the workflow's description, under the banner
  banner = document.getElementById("app").textContent.includes("SYNTHETIC DEMO DATA");
  step(0);
}, 500);
</script>"""


@pytest.fixture(scope="module")
def clicked_report(demo_report) -> dict:
    """What headless Chromium found in the report: ``banner``, whether the app opens under the
    synthetic-data banner, and per (category, result) of REPORT_CLICKS, on clicking them,
    ``{"category", "result", "shown"}``, each true or false."""
    html = demo_report.read_text()
    head, tail = html.rsplit("</body>", 1)  # the app's code holds the string "</body>" too
    page = demo_report.parent / "click_through.html"
    page.write_text(head + CLICK_THROUGH % json.dumps(REPORT_CLICKS) + "</body>" + tail)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={page.parent / uuid.uuid4().hex}", "--virtual-time-budget=60000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=300).stdout
    found = re.search(r'<pre id="clicked">(.*?)</pre>', dom, re.S)
    assert found, "test premise: the click-through ran to its end"
    seen = json.loads(html_lib.unescape(found.group(1)))
    return {"banner": seen["banner"], **dict(zip(REPORT_CLICKS, seen["clicks"]))}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
@pytest.mark.parametrize("category, result", REPORT_CLICKS)
def test_report_shows_the_plots_in_a_browser(clicked_report, category, result):
    assert clicked_report[category, result] == {"category": True, "result": True, "shown": True}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_report_opens_under_the_synthetic_banner_in_a_browser(clicked_report):
    assert clicked_report["banner"] is True


def start_run(wd: Path, *args: str) -> subprocess.Popen:
    """``snakemake --cores 2`` in the background, in a session of its own (to kill it whole), its
    output going to ``wd/run.out``: a pipe nobody reads would fill, and block its jobs' logging."""
    with open(wd / "run.out", "w") as out:
        return subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=wd,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def job_process(wd: Path, run: subprocess.Popen, script: str, log: str | None = None,
                says: str = "") -> psutil.Process:
    """The process of ``run``'s job that runs ``script``, once its ``log`` holds ``says``."""
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        job = next((p for p in psutil.process_iter(["cmdline"])
                    if any(str(wd) in part and script in part for part in p.info["cmdline"] or [])), None)
        if job and (log is None or (wd / log).exists() and says in (wd / log).read_text()):
            return job
        time.sleep(0.02)
    raise AssertionError(f"test premise: a {script} job is running")


def sites_job_training(wd: Path, run: subprocess.Popen) -> psutil.Process:
    return job_process(wd, run, "train_sites", "results/logs/sites/all.log", "training")


def kill_whole_run(run: subprocess.Popen) -> None:
    """``kill -9`` of snakemake and every job it started."""
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()


def test_interrupted_and_concurrent_runs(tmp_path):
    """kill -9 of the whole run during conversion, training and plotting: after the README's
    recovery (--unlock, then the same command) the run completes without redoing finished jobs.
    A second run in the same folder is refused; SIGTERM to a training job (a Slurm time limit)
    ends it within seconds, keeping nothing. A split replaced by a file that is not ours is
    refused, and what its pickle would run never runs."""
    wd = copy_workflow(tmp_path / "wf")
    (wd / "tiny.yaml").write_text(TINY.replace("sites: {", "sites: {train: {epochs: 3000}, "))
    args = ("--configfile", "tiny.yaml")
    no_leftovers = lambda: not list((wd / "results").rglob(".*.tmp*"))  # noqa: E731
    splits = [wd / "results/data" / name for name in ("train_activations.pt", "val_activations.pt")]

    run = start_run(wd, *args)  # killed whole while it converts
    job_process(wd, run, "convert", "results/logs/convert.log", "read ")
    kill_whole_run(run)
    locked = snakemake(wd, *args, check=False)  # what a user sees first
    assert locked.returncode != 0 and "removed with the --unlock argument" in locked.stderr
    snakemake(wd, "--unlock", *args)  # the README's recovery, word for word

    run = start_run(wd, *args)
    job = sites_job_training(wd, run)
    assert all(split.exists() for split in splits)
    second = snakemake(wd, *args, check=False)
    assert second.returncode != 0 and "Directory cannot be locked" in second.stderr
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=10)  # within seconds (its exit code: not our child; see test_jobs)
    run.wait(timeout=120)
    assert run.returncode != 0 and "stopped by SIGTERM" in (wd / "results/logs/sites/all.log").read_text()
    assert not list((wd / "results/sweet_spot").glob("*.pt")) and no_leftovers()
    assert "rule demo_data:" not in (wd / "run.out").read_text()  # finished before the kill

    run = start_run(wd, *args)  # killed whole while it trains
    sites_job_training(wd, run)
    kill_whole_run(run)
    (wd / "tiny.yaml").write_text(TINY)  # quicker from here; the sites rerun either way
    snakemake(wd, "--unlock", *args)
    run = start_run(wd, *args)  # killed whole while it plots the sites
    job_process(wd, run, "plot_sites")
    kill_whole_run(run)
    snakemake(wd, "--unlock", *args)
    jobs = ran(snakemake(wd, *args))
    assert jobs["plot_sites"] == 1 and not jobs["train_sites"] and not jobs["convert"]  # finished jobs stay
    assert no_leftovers()
    for pt in (wd / "results").rglob("*.pt"):
        torch.load(pt, weights_only=True)
    for png in (wd / "results").rglob("*.png"):
        assert png.read_bytes().startswith(b"\x89PNG") and png.read_bytes().endswith(b"IEND\xaeB`\x82"), png
    assert json.loads((wd / "results/sweet_spot/metrics_all.json").read_text())["n_sites"] == 12

    marker = wd / "pickle_ran"
    torch.save({"activations": RunsCode(marker)}, splits[0])  # a newer split: everything after it reruns
    refused = snakemake(wd, *args, check=False)
    assert refused.returncode != 0 and not marker.exists()
    assert re.search(r"train_activations\.pt: .*nothing was run", refused.stderr), refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr


def test_the_workflow_from_a_model(tmp_path):
    """extract: set: the rule writes the raw JSON from the model, and everything downstream runs on
    it; the shape comes from the model's config before the file exists; settings that change the
    thoughts (or a model file replaced) rerun the extraction, batch_size and device do not."""
    pytest.importorskip("transformers")
    from conftest import write_tiny_codi

    checkpoint, base, problems = write_tiny_codi(tmp_path / "model", n_problems=20)
    wd = copy_workflow(tmp_path / "wf")
    extract = f"{{checkpoint: {checkpoint}, base_model: {base}, problems: {problems}, latent_steps: 3, max_new_tokens: 4"
    config = wd / "model.yaml"
    tiny = TINY.split("\n", 2)[2].replace("layer: 2,", "layer: 1,")  # TINY less its demo: line, at a layer of the model's
    config.write_text(tiny + f"extract: {extract}}}\n")
    args = ("results/sweet_spot/metrics_all.json", "results/report/catalogue.html", "--configfile", "model.yaml")
    jobs = ran(snakemake(wd, *args))
    assert jobs["extract"] == 1 and not jobs["demo_data"] and jobs["train_sites"] == 1
    raw = json.loads((wd / "results/extract/thoughts.json").read_text())
    assert (raw["metadata"]["n_tokens"], raw["metadata"]["hidden_dim"], len(raw["samples"])) == (3, 16, 20)
    info = json.loads((wd / "results/data/dataset.json").read_text())
    assert info["synthetic"] and info["layers"] == [0, 1] and info["n_positions"] == 3
    assert len(list((wd / "results/sweet_spot").glob("pos*_layer*.pt"))) == 6
    catalogue = json.loads((wd / "results/catalogue/pos2_layer1.json").read_text())
    tops = [p for lat in catalogue["latents"] for p in lat["top_problems"]]
    assert tops and all(p["thought_tokens"] == raw["samples"][p["id"]]["thought_tokens"][2] for p in tops)
    assert "SYNTHETIC" in (wd / "results/report/catalogue.html").read_text()

    config.write_text(config.read_text().replace("max_new_tokens: 4", "max_new_tokens: 4, batch_size: 3, device: cpu"))
    assert "Nothing to be done" in snakemake(wd, *args, "-n").stdout
    tokenizer = base / "tokenizer.json"  # replaced in place by another file (its folder's time is unchanged)
    tokenizer.write_text(json.dumps(json.loads(tokenizer.read_text()), indent=1))
    later = (wd / "results/extract/thoughts.json").stat().st_mtime + 10
    os.utime(tokenizer, (later, later))
    assert ran(snakemake(wd, *args, "-n"))["extract"] == 1
    config.write_text(config.read_text().replace("latent_steps: 3", "latent_steps: 3, convention: codi"))
    assert ran(snakemake(wd, *args, "-n"))["extract"] == 1

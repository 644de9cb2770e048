import json

import numpy as np
import pytest

from codi_sae.collect import BASELINE_SUMMARY, SUMMARY_METRICS, collect_site_metrics
from codi_sae.compare import BASELINE_METRICS, run_notes, warning
from codi_sae.errors import InputError


def site_file(tmp_path, position, layer, batch, rng, **overrides):
    config = {"input_dim": 16, "latent_dim": 8, "k": 2, "position": position, "layer": layer, "epochs": 3,
              "recipe": "seed", "sites_trained_together": batch, **overrides}
    metrics = {key: float(rng.uniform()) for key in SUMMARY_METRICS}
    path = tmp_path / f"pos{position}_layer{layer}.json"
    path.write_text(json.dumps({"config": config, "metrics": metrics}))
    return path


def baselines_file(tmp_path, sites, rng, k=2):
    scores = lambda: {m: float(rng.uniform()) for m in BASELINE_METRICS}  # noqa: E731
    doc = {"ks": [k], "sites": {}}
    for position, layer in sites:
        doc["sites"].setdefault(str(layer), {})[str(position)] = {
            "mean_only": {**scores(), "fvu": 1.01}, "pca": {str(k): {"n_components": k, **scores()}}}
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(doc))
    return path


def collect(tmp_path, files, sites, rng):
    (tmp_path / "dataset.json").write_text('{"model": "m"}')
    return collect_site_metrics(files, tmp_path / "dataset.json", baselines_file(tmp_path, sites, rng),
                                tmp_path / "all.json")


def test_statistics_baselines_and_shared_config(tmp_path):
    rng = np.random.default_rng(0)
    sites = [(p, layer) for layer in (0, 1) for p in range(3)]
    batches = [4, 4, 4, 4, 2, 2]  # six sites, four per batch
    files = [site_file(tmp_path, p, layer, b, rng) for (p, layer), b in zip(sites, batches)]
    out = collect(tmp_path, files, sites, rng)
    assert out == json.loads((tmp_path / "all.json").read_text())
    assert out["config"] == {"input_dim": 16, "latent_dim": 8, "k": 2, "epochs": 3, "recipe": "seed",
                             "sites_trained_together": None}
    assert out["n_sites"] == 6 and out["dataset"] == {"model": "m"} and out["warnings"] == []
    baselines = json.loads((tmp_path / "baselines.json").read_text())["sites"]
    for p, layer in sites:
        site = out["baselines"][str(layer)][str(p)]
        assert site["pca_fvu"] == baselines[str(layer)][str(p)]["pca"]["2"]["fvu"] and site["pca_k"] == 2
        assert site["fvu_minus_pca_fvu"] == pytest.approx(out["results"][str(layer)][str(p)]["fvu"] - site["pca_fvu"])
    for key in SUMMARY_METRICS + BASELINE_SUMMARY:
        source = out["results"] if key in SUMMARY_METRICS else out["baselines"]
        values = np.array([source[str(layer)][str(p)][key] for p, layer in sites])
        expected = {"n": 6, "mean": values.mean(), "std": values.std(ddof=1), "min": values.min(), "max": values.max()}
        assert out["statistics"][key] == pytest.approx(expected, rel=1e-12), key


def test_warnings_and_undefined_metrics(tmp_path):
    rng = np.random.default_rng(1)
    sites = [(0, 0), (1, 0), (2, 0)]
    files = [site_file(tmp_path, p, 0, 3, rng, n_train=24, batch_size=8) for p, _ in sites]
    for path, fvu in ((files[1], 0.995), (files[2], None)):  # learned little; a constant site
        doc = json.loads(path.read_text())
        doc["metrics"].update(fvu=fvu, explained_variance_std=None if fvu is None else 1 - fvu)
        path.write_text(json.dumps(doc))
    out = collect(tmp_path, files, sites, rng)
    assert out["config"]["sites_trained_together"] == 3
    assert [w.split(":")[0] for w in out["warnings"]] == ["position 1, layer 0", "position 2, layer 0"]
    assert "FVU 0.995 > 0.99" in out["warnings"][0] and "do not vary" in out["warnings"][1]
    assert "try sae.recipe: topk" in out["warnings"][0]  # the sites' recipe is the seed's
    assert "only 9 optimiser steps" in out["warnings"][0]  # 3 epochs of 24 rows in batches of 8
    assert out["statistics"]["fvu"]["n"] == 2 and out["statistics"]["fvu_minus_pca_fvu"]["n"] == 2
    assert "NaN" not in (tmp_path / "all.json").read_text()


def test_a_warning_says_when_an_sae_is_worse_than_the_mean_and_what_to_try():
    worse = warning(4561.346, 1.031, "seed")  # the seed recipe on data with a dimension near 3000
    assert worse.startswith("FVU 4561.346 > 0.99, above the mean-only model's 1.031: the SAE reconstructs")
    assert worse.endswith("try sae.recipe: topk")
    little = warning(0.995, 1.01, "topk")
    assert "explains under 1% of the variance" in little and "try" not in little
    assert warning(0.98, 1.01, "seed") is None
    assert warning(0.995, None).endswith("which the mean-only model predicts")  # its FVU undefined
    few = warning(1.072, 1.007, "seed", steps=100)  # the demo's default: 25 epochs of 4 batches
    assert few.endswith("try sae.recipe: topk; it took only 100 optimiser steps (epochs x batches of "
                        "train.batch_size rows): more epochs (train.epochs) often help")
    assert "optimiser steps" not in warning(1.072, 1.007, "seed", steps=1000)
    assert warning(0.98, 1.01, "seed", steps=9) is None  # learned enough: no warning at all


def test_the_notes_at_the_end_of_a_run_count_the_warnings_and_the_saes_pca_beats(tmp_path):
    sweep, sites = tmp_path / "analysis_summary.json", tmp_path / "metrics_all.json"
    assert run_notes(sweep, sites) == []  # nothing run yet
    sweep.write_text(json.dumps({"configs": [{}]}))  # an older version's files
    sites.write_text(json.dumps({"n_sites": 72}))
    assert run_notes(sweep, sites) == []
    configs = [{"fvu_minus_pca_fvu": v} for v in (-0.2, -0.1, None)]
    baselines = {"1": {"0": {"fvu_minus_pca_fvu": -0.3}, "1": {"fvu_minus_pca_fvu": -0.01}}}
    sweep.write_text(json.dumps({"configs": configs, "warnings": []}))
    sites.write_text(json.dumps({"n_sites": 2, "baselines": baselines, "warnings": []}))
    assert run_notes(sweep, sites) == []
    sites.write_text(json.dumps({"n_sites": 3, "baselines": baselines,
                                 "warnings": ["position 0, layer 1: FVU 1.200 > 0.99, above the mean-only model's "
                                              "1.007", "position 1, layer 1: the activations here do not vary",
                                              "position 2, layer 1: FVU 1.500 > 0.99 (FVU 1.900)"]}))
    [note] = run_notes(sweep, sites)
    assert note.startswith("WARNING: 3 of 3 sites have an SAE that learned little beyond the per-dimension mean.")
    assert "The worst: position 2, layer 1: FVU 1.500 > 0.99 (FVU 1.900)." in note and note.endswith(f"All: {sites}")
    configs[2]["fvu_minus_pca_fvu"] = 0.25
    sweep.write_text(json.dumps({"configs": configs, "warnings": ["d=8, K=2: FVU 3.0"]}))
    baselines["1"]["1"]["fvu_minus_pca_fvu"] = 0.05
    sites.write_text(json.dumps({"n_sites": 2, "baselines": baselines, "warnings": []}))
    warned, beaten = run_notes(sweep, sites)
    assert warned.startswith("WARNING: 1 of 3 sweep configs have") and warned.endswith(f"All: {sweep}")
    assert beaten.startswith("NOTE: PCA with the same K reconstructs the validation rows better than the SAE for "
                             "1 of 3 sweep configs and 1 of 2 sites (FVU lower by 0.050 to 0.250;")
    # sites where one dimension holds most of the variance
    baselines["1"]["0"]["top_dimension_share"], baselines["1"]["1"]["top_dimension_share"] = 0.988, 0.3
    sites.write_text(json.dumps({"n_sites": 2, "baselines": baselines, "warnings": []}))
    assert run_notes(sweep, sites)[2].startswith("NOTE: at 1 of 2 sites one dimension holds over 50% of the variance "
                                                 "(up to 98.8%; the tables' 'Top dim. share')")
    baselines["1"]["0"]["top_dimension_share"] = 0.5
    sites.write_text(json.dumps({"n_sites": 2, "baselines": baselines, "warnings": []}))
    assert len(run_notes(sweep, sites)) == 2
    # on the synthetic demo, the planted features found (cross_layer.json; null on real data)
    cross = tmp_path / "cross_layer.json"
    assert len(run_notes(sweep, sites, cross)) == 2  # not written yet
    cross.write_text(json.dumps({"planted": None}))
    assert len(run_notes(sweep, sites, cross)) == 2
    found = {"1": {"0": {"share_above_0_9": 0.0}, "1": {"share_above_0_9": 0.125}, "2": {"share_above_0_9": None}}}
    cross.write_text(json.dumps({"planted": {"n_features": 384, "sites": found}}))
    assert run_notes(sweep, sites, cross)[2].startswith(
        "NOTE: SYNTHETIC demo: the sites' SAEs found 0% to 12% of the demo's 384 planted features per layer")
    found["1"]["1"]["share_above_0_9"] = 0.0
    cross.write_text(json.dumps({"planted": {"n_features": 384, "sites": found}}))
    assert "found 0% of the demo's 384 planted" in run_notes(sweep, sites, cross)[2]
    # the sites the probe could not run at (every problem in one class), and why
    probe = tmp_path / "probe.json"
    assert len(run_notes(sweep, sites, cross, probe)) == 3  # not written yet
    why = "the model is right on 0 of 60 problems: cross-validation needs at least 2 of each"
    probe.write_text(json.dumps({"sites": {"1": {"0": {"note": why}, "1": {"note": None}}, "2": {"0": {}}}}))
    assert run_notes(sweep, sites, cross, probe)[3] == f"NOTE: no error prediction at 1 of 3 sites: {why} ({probe})"


def test_sites_of_different_saes_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    files = [site_file(tmp_path, 0, 0, 2, rng), site_file(tmp_path, 1, 0, 2, rng, latent_dim=16)]
    with pytest.raises(InputError, match="latent_dim=16, but .*pos0_layer0.json has 8"):
        collect(tmp_path, files, [(0, 0), (1, 0)], rng)
    assert not (tmp_path / "all.json").exists()


def test_baselines_of_another_k_or_site_and_unreadable_metrics_are_named(tmp_path):
    rng = np.random.default_rng(3)
    with pytest.raises(InputError, match=r"baselines.json: no PCA-3 baseline at position 0, layer 0 \(it has K in "
                                         r"\[2\]\).*snakemake -R baselines"):
        collect(tmp_path, [site_file(tmp_path, 0, 0, 1, rng, k=3)], [(0, 0)], rng)
    files = [site_file(tmp_path, 0, 0, 2, rng), site_file(tmp_path, 1, 0, 2, rng)]
    with pytest.raises(InputError, match="no PCA-2 baseline at position 1, layer 0"):
        collect(tmp_path, files, [(0, 0)], rng)
    files[1].write_text('{"config": {"k": 2}}')
    with pytest.raises(InputError, match=r"pos1_layer0.json: missing key\(s\) metrics"):
        collect(tmp_path, files, [(0, 0), (1, 0)], rng)
    files[1].write_text('{"config": ')
    with pytest.raises(InputError, match="pos1_layer0.json: cannot read JSON"):
        collect(tmp_path, files, [(0, 0), (1, 0)], rng)
    assert not (tmp_path / "all.json").exists()

import json
import math

import pytest

from codi_sae.selection import analyze_sweep, rank_configs


def row(d, k, ev, death, ev_std=None):
    return {"d": d, "k": k, "explained_variance": ev, "feature_death_rate": death, "explained_variance_std": ev_std}


def ranked(rows, min_ev=0.7, metric="explained_variance"):
    order, qualified = rank_configs(rows, min_ev, metric)
    return [(r["d"], r["k"]) for r in order], qualified


def test_lowest_death_rate_among_qualified():
    rows = [row(512, 100, 0.94, 0.26), row(512, 150, 0.948, 0.041), row(192, 20, 0.6, 0.0)]
    assert ranked(rows) == ([(512, 150), (512, 100), (192, 20)], True)


def test_ties_go_to_higher_ev_then_smaller_d_then_smaller_k():
    rows = [row(512, 150, 0.90, 0.0), row(256, 75, 0.95, 0.0), row(384, 75, 0.95, 0.0), row(256, 50, 0.95, 0.0)]
    assert ranked(rows)[0] == [(256, 50), (256, 75), (384, 75), (512, 150)]


def test_none_qualifying_takes_the_best_explained_variance():
    rows = [row(512, 150, 0.5, 0.0), row(256, 75, 0.6, 0.3), row(192, 20, 0.6, 0.1)]
    assert ranked(rows) == ([(192, 20), (256, 75), (512, 150)], False)


def test_threshold_is_inclusive():
    assert ranked([row(64, 8, 0.7, 0.5), row(64, 4, 0.69, 0.0)])[0][0] == (64, 8)


def test_the_standard_metric_can_decide():
    rows = [row(512, 150, 0.99, 0.0, ev_std=0.1), row(512, 100, 0.97, 0.2, ev_std=0.6)]
    assert ranked(rows)[0][0] == (512, 150)
    assert ranked(rows, 0.5, "explained_variance_std")[0][0] == (512, 100)


@pytest.mark.parametrize("undefined", [None, math.nan])
def test_an_undefined_metric_ranks_last_and_never_vanishes(undefined):
    rows = [row(64, 8, undefined, 0.0), row(64, 4, 0.8, 0.5), row(32, 4, 0.6, 0.1)]
    assert ranked(rows) == ([(64, 4), (32, 4), (64, 8)], True)
    assert ranked(rows, 0.9) == ([(64, 4), (32, 4), (64, 8)], False)


def write_config(tmp_path, name, d, k, ev, death, recipe="seed"):
    path = tmp_path / f"{name}.json"
    metrics = {"explained_variance": ev, "explained_variance_std": ev - 0.5, "fvu": 1.5 - ev,
               "reconstruction_loss": 0.01, "cosine_similarity": 0.9, "feature_death_rate": death,
               "num_dead_features": int(death * d), "train_time_sec": 1.0, "epochs": 25}
    config = {"latent_dim": d, "k": k, "position": 3, "layer": 8, "recipe": recipe, "epochs": 25}
    path.write_text(json.dumps({"config": config, "metrics": metrics}))
    return path


def baselines(tmp_path, ks):
    scores = {"explained_variance": 0.99, "explained_variance_std": 0.3, "fvu": 0.7, "reconstruction_loss": 0.02}
    mean_only = {"explained_variance": 0.98, "explained_variance_std": -0.01, "fvu": 1.01, "reconstruction_loss": 0.03}
    site = {"mean_only": mean_only, "pca": {str(k): {"n_components": k, **scores} for k in ks}}
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"ks": ks, "sites": {"8": {"3": site}}}))
    return path


@pytest.mark.parametrize("min_ev, qualified", [(0.7, True), (0.99, False)])
def test_analysis_files(tmp_path, min_ev, qualified):
    files = [write_config(tmp_path, "d512_k150_topk", 512, 150, 0.95, 0.04, "topk"),
             write_config(tmp_path, "d256_k30", 256, 30, 0.88, 0.59),
             write_config(tmp_path, "d256_k75", 256, 75, 0.4, 0.0)]
    entries = [{"d": 512, "k": 150, "recipe": "topk"}, {"d": 256, "k": 30, "recipe": "seed"},
               {"d": 256, "k": 75, "recipe": "seed", "epochs": 100}]
    out = [tmp_path / n for n in ("summary.json", "summary.md", "choice.json")]
    selection = {"metric": "explained_variance", "min_explained_variance": min_ev}
    analyze_sweep(files, entries, baselines(tmp_path, [30, 75, 150]), selection, *out)
    summary = json.loads(out[0].read_text())
    assert summary["site"] == {"position": 3, "layer": 8}
    assert summary["selection_rule"]["metric"] == "explained_variance"
    assert summary["any_config_qualified"] is qualified
    assert (summary["sweet_spot"]["d"], summary["sweet_spot"]["k"], summary["sweet_spot"]["recipe"]) == (512, 150, "topk")
    assert [c["rank"] for c in summary["configs"]] == [1, 2, 3]
    assert ("No config reaches" in summary["rationale"]) is not qualified
    assert json.loads(out[2].read_text()) == {"d": 512, "k": 150, "recipe": "topk"}
    best = summary["configs"][0]
    assert (best["pca_k"], best["pca_fvu"], best["mean_only_fvu"]) == (150, 0.7, 1.01)
    assert best["fvu_minus_pca_fvu"] == pytest.approx(0.55 - 0.7) and best["warning"] is None
    # FVU 1.1 for d=256, K=75: a warning in the summary and the table
    assert [c["warning"] is not None for c in summary["configs"]] == [False, False, True]
    assert len(summary["warnings"]) == 1 and "d=256, K=75 (seed recipe, 25 epochs): FVU 1.100 > 0.99" in summary["warnings"][0]
    table = out[1].read_text()
    assert "| 1 | topk | 512 | 150 | 29.3% | 25 | 0.9500 | 0.9900 | 0.9800 |" in table and summary["rationale"] in table
    assert "- WARNING d=256, K=75" in table

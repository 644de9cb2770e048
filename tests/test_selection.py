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


def write_config(tmp_path, name, d, k, ev, death, recipe="seed", position=3, layer=8):
    path = tmp_path / f"{name}_pos{position}_layer{layer}.json"
    metrics = {"explained_variance": ev, "explained_variance_std": ev - 0.5, "fvu": 1.5 - ev,
               "reconstruction_loss": 0.01, "cosine_similarity": 0.9, "feature_death_rate": death,
               "num_dead_features": int(death * d), "train_time_sec": 1.0, "epochs": 25}
    config = {"latent_dim": d, "k": k, "position": position, "layer": layer, "recipe": recipe, "epochs": 25}
    path.write_text(json.dumps({"config": config, "metrics": metrics}))
    return path


def baselines(tmp_path, ks, sites=((3, 8),)):
    scores = {"explained_variance": 0.99, "explained_variance_std": 0.3, "fvu": 0.7, "reconstruction_loss": 0.02}
    mean_only = {"explained_variance": 0.98, "explained_variance_std": -0.01, "fvu": 1.01, "reconstruction_loss": 0.03}
    site = {"mean_only": mean_only, "pca": {str(k): {"n_components": k, **scores} for k in ks}}
    by_layer = {}
    for position, layer in sites:
        by_layer.setdefault(str(layer), {})[str(position)] = site
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"ks": ks, "sites": by_layer}))
    return path


def table_heading(path):
    return path.read_text().splitlines()[0]


@pytest.mark.parametrize("min_ev, qualified", [(0.7, True), (0.99, False)])
def test_analysis_files(tmp_path, min_ev, qualified):
    files = [write_config(tmp_path, "d512_k150_topk", 512, 150, 0.95, 0.04, "topk"),
             write_config(tmp_path, "d256_k30", 256, 30, 0.88, 0.59),
             write_config(tmp_path, "d256_k75", 256, 75, 0.4, 0.0)]
    entries = [{"d": 512, "k": 150, "recipe": "topk"}, {"d": 256, "k": 30, "recipe": "seed"},
               {"d": 256, "k": 75, "recipe": "seed", "epochs": 100}]
    out = [tmp_path / n for n in ("summary.json", "summary.md", "choice.json")]
    selection = {"metric": "explained_variance", "min_explained_variance": min_ev}
    analyze_sweep([[f] for f in files], entries, baselines(tmp_path, [30, 75, 150]), selection, *out)
    summary = json.loads(out[0].read_text())
    assert summary["site"] == {"position": 3, "layer": 8} and summary["sites"] == [summary["site"]]
    assert "per_site" not in summary and table_heading(out[1]) == "# Sweep at position 3, layer 8"
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


def test_the_rationale_says_when_every_config_has_a_warning(tmp_path):
    files = [write_config(tmp_path, "d512_k150", 512, 150, 0.45, 0.0),  # FVU 1.05 and 1.2
             write_config(tmp_path, "d256_k30", 256, 30, 0.3, 0.0)]
    entries = [{"d": 512, "k": 150, "recipe": "seed"}, {"d": 256, "k": 30, "recipe": "seed"}]
    out = [tmp_path / n for n in ("summary.json", "summary.md", "choice.json")]
    selection = {"metric": "explained_variance", "min_explained_variance": 0.7}
    analyze_sweep([[f] for f in files], entries, baselines(tmp_path, [30, 150]), selection, *out)
    rationale = json.loads(out[0].read_text())["rationale"]
    assert rationale.endswith("Every config has a warning: none reconstructs clearly better than the mean-only model.")
    assert rationale in out[1].read_text()
    files[1] = write_config(tmp_path, "d256_k30", 256, 30, 0.9, 0.0)  # FVU 0.6: no warning
    analyze_sweep([[f] for f in files], entries, baselines(tmp_path, [30, 150]), selection, *out)
    assert "Every config" not in json.loads(out[0].read_text())["rationale"]


def test_a_sweep_at_several_sites_picks_one_sweet_spot_by_the_means(tmp_path):
    sites = [(3, 8), (0, 1)]
    # d=512 is better at (3, 8) alone; over both sites d=256 has the lower mean death rate
    ev_death = {512: [(0.95, 0.04), (0.75, 0.50)], 256: [(0.90, 0.10), (0.80, 0.10)]}
    files = [[write_config(tmp_path, f"d{d}", d, 30, ev, death, position=p, layer=layer)
              for (p, layer), (ev, death) in zip(sites, ev_death[d])] for d in (512, 256)]
    entries = [{"d": 512, "k": 30, "recipe": "seed"}, {"d": 256, "k": 30, "recipe": "seed"}]
    out = [tmp_path / n for n in ("summary.json", "summary.md", "choice.json")]
    selection = {"metric": "explained_variance", "min_explained_variance": 0.7}
    analyze_sweep(files, entries, baselines(tmp_path, [30], sites), selection, *out)
    summary = json.loads(out[0].read_text())
    assert "site" not in summary and summary["sites"] == [{"position": 3, "layer": 8}, {"position": 0, "layer": 1}]
    assert json.loads(out[2].read_text()) == {"d": 256, "k": 30, "recipe": "seed"}
    best, other = summary["configs"]
    assert (best["d"], best["explained_variance"], best["feature_death_rate"]) == (256, pytest.approx(0.85), pytest.approx(0.1))
    assert (other["explained_variance"], other["feature_death_rate"]) == (pytest.approx(0.85), pytest.approx(0.27))
    assert best["position"] is None and best["k"] == 30  # what differs is averaged, not what is the same
    assert (best["num_dead_features"], other["num_dead_features"]) == (25, (20 + 256) / 2)
    assert [[r["position"] for r in rows] for rows in summary["per_site"]] == [[3, 0], [3, 0]]
    assert summary["per_site"][0][0]["feature_death_rate"] == 0.10
    assert table_heading(out[1]) == "# Sweep at 2 sites (means over the sites)"

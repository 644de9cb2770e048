import json

import pytest

from codi_sae.selection import analyze_sweep, rank_configs


def row(d, k, ev, death):
    return {"d": d, "k": k, "explained_variance": ev, "feature_death_rate": death}


def ranked(rows, min_ev=0.7):
    order, qualified = rank_configs(rows, min_ev)
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


def write_config(tmp_path, d, k, ev, death):
    path = tmp_path / f"d{d}_k{k}.json"
    metrics = {"explained_variance": ev, "explained_variance_std": ev - 0.1, "fvu": 1.1 - ev,
               "reconstruction_loss": 0.01, "cosine_similarity": 0.9, "feature_death_rate": death,
               "num_dead_features": int(death * d), "train_time_sec": 1.0}
    path.write_text(json.dumps({"config": {"latent_dim": d, "k": k, "position": 3, "layer": 8}, "metrics": metrics}))
    return path


@pytest.mark.parametrize("min_ev, qualified", [(0.7, True), (0.99, False)])
def test_analysis_files(tmp_path, min_ev, qualified):
    files = [write_config(tmp_path, 512, 150, 0.95, 0.04), write_config(tmp_path, 256, 30, 0.88, 0.59)]
    out = [tmp_path / n for n in ("summary.json", "summary.md", "choice.json")]
    analyze_sweep(files, min_ev, *out)
    summary = json.loads(out[0].read_text())
    assert summary["site"] == {"position": 3, "layer": 8}
    assert summary["any_config_qualified"] is qualified
    assert (summary["sweet_spot"]["d"], summary["sweet_spot"]["k"]) == (512, 150)
    assert [c["rank"] for c in summary["configs"]] == [1, 2]
    assert ("No config reaches" in summary["rationale"]) is not qualified
    assert json.loads(out[2].read_text()) == {"d": 512, "k": 150}
    table = out[1].read_text()
    assert "| 1 | 512 | 150 | 29.3% | 0.9500 |" in table and summary["rationale"] in table

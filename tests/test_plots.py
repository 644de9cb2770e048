"""Plots: files are written, valid, and work for odd shapes, missing cells and the synthetic flag."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from codi_sae.errors import InputError
from codi_sae.plots import (plot_cross_layer, plot_planted, plot_probe_heatmaps, plot_site_heatmaps, plot_sweep,
                             plt, sweep_figure)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEATMAP_STEMS = ("reconstruction_loss", "feature_death_rate", "explained_variance", "fvu", "fvu_minus_pca_fvu")


def dataset(n_layers=12, n_positions=6, synthetic=True):
    return {"source": "results/demo/synthetic_raw.json", "synthetic": synthetic,
            "model": "gpt2-codi (synthetic demo)" if synthetic else "gpt2-codi", "dataset": "gsm8k",
            "layers": list(range(n_layers)), "n_positions": n_positions, "hidden_dim": 768,
            "n_problems": 1000, "n_train": 800, "n_val": 200, "accuracy": 0.44, "train_fraction": 0.8,
            "split_seed": 42}


def site_metrics(rng):
    ev = float(rng.uniform(0.6, 0.99))
    return {"explained_variance": ev, "explained_variance_std": ev - 0.08, "fvu": 1 - ev,
            "reconstruction_loss": float(rng.uniform(0.001, 0.05)), "cosine_similarity": 0.97,
            "l0_mean": 150.0, "l0_std": 0.0, "feature_death_rate": float(rng.uniform(0.0, 0.3)),
            "num_dead_features": 21, "num_active_features": 491, "train_time_sec": 0.6, "epochs": 25}


def site_baselines(metrics, rng):
    pca = {"pca_explained_variance": 0.99, "pca_explained_variance_std": 0.6, "pca_fvu": float(rng.uniform(0.2, 0.5)),
           "pca_reconstruction_loss": 0.01}
    return {**pca, "mean_only_fvu": 1.01, "fvu_minus_pca_fvu": metrics["fvu"] - pca["pca_fvu"], "warning": None}


def metrics_all(n_layers=12, n_positions=6, synthetic=True, skip=()):
    """metrics_all.json for every (layer, position) except those in ``skip``."""
    rng = np.random.default_rng(0)
    results = {str(layer): {str(p): site_metrics(rng) for p in range(n_positions) if (layer, p) not in skip}
               for layer in range(n_layers)}
    baselines = {layer: {p: site_baselines(m, rng) for p, m in by_pos.items()} for layer, by_pos in results.items()}
    config = {"input_dim": 768, "latent_dim": 512, "k": 150, "epochs": 25, "batch_size": 256, "lr": 0.001,
              "seed": 42, "device": "cpu", "recipe": "seed", "n_train": 800, "n_val": 200,
              "sites_trained_together": n_layers * n_positions}
    return {"config": config, "dataset": dataset(n_layers, n_positions, synthetic),
            "n_sites": n_layers * n_positions - len(skip), "results": results, "baselines": baselines,
            "warnings": [], "statistics": {}}


def summary(qualified=True):
    configs = []
    for d in (256, 512, 1024):
        for k in (50, 150, 300):
            ev = 0.45 + 0.12 * np.log2(d / 256) + 0.09 * np.log2(k / 50) - (0 if qualified else 0.3)
            configs.append({"d": d, "k": k, "recipe": "seed", "epochs": 25, "sparsity": k / d,
                            "explained_variance": float(ev), "fvu": float(1.2 - ev),
                            "pca_explained_variance": 0.99, "pca_fvu": 0.4, "mean_only_explained_variance": 0.98,
                            "mean_only_fvu": 1.01, "feature_death_rate": 0.3 * (d / 1024) / (k / 50)})
    configs.sort(key=lambda c: -c["explained_variance"])
    configs = [{**c, "rank": i + 1} for i, c in enumerate(configs)]
    best = configs[0]
    return {"site": {"position": 3, "layer": 8}, "sites": [{"position": 3, "layer": 8}],
            "selection_rule": {"metric": "explained_variance", "min_explained_variance": 0.7, "rule": "..."},
            "sweet_spot": {"d": best["d"], "k": best["k"], "metrics": best},
            "any_config_qualified": qualified, "rationale": "...", "configs": configs,
            "comparison_table_markdown": "..."}


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def record(monkeypatch, name):
    """Replace ``plots.<name>`` (``_heatmap`` or ``_draw``) by a recorder of its arguments; returns their list."""
    from codi_sae import plots

    calls = []
    monkeypatch.setattr(plots, name, lambda *args, **kwargs: calls.append(args) or [])
    return calls


def svg_text(path):
    text = path.read_text()
    assert ET.fromstring(text).tag == "{http://www.w3.org/2000/svg}svg" and len(text) > 5_000
    return text


@pytest.mark.parametrize("shape", [(7, 6), (1, 1)])
def test_site_heatmaps_shapes(tmp_path, shape):
    src = write(tmp_path / "metrics_all.json", metrics_all(*shape))
    paths = plot_site_heatmaps(src, tmp_path / "plots")
    assert sorted(paths) == sorted(tmp_path / "plots" / f"{s}.{ext}" for s in HEATMAP_STEMS for ext in ("png", "svg"))
    for path in paths:
        check_png(path) if path.suffix == ".png" else svg_text(path)
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary files left behind


def test_site_heatmaps_drawn_in_two_processes_are_the_same_files(tmp_path):
    src = write(tmp_path / "metrics_all.json", metrics_all(2, 3))
    one, two = plot_site_heatmaps(src, tmp_path / "one"), plot_site_heatmaps(src, tmp_path / "two", workers=2)
    assert [p.name for p in one] == [p.name for p in two]
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_site_heatmaps_missing_cell_and_flag(tmp_path, monkeypatch):
    src = write(tmp_path / "m.json", metrics_all(3, 2, synthetic=False, skip={(1, 0), (2, 1)}))
    paths = plot_site_heatmaps(src, tmp_path)
    ev_svg = svg_text(tmp_path / "explained_variance.svg")
    assert "SYNTHETIC" not in ev_svg and "d=512, K=150" in ev_svg
    assert "PCA 0.990" in ev_svg and "PCA " not in svg_text(tmp_path / "feature_death_rate.svg")
    assert len(paths) == 10
    drawn = record(monkeypatch, "_heatmap")
    plot_site_heatmaps(src, tmp_path / "again")
    values, labels, rows, cols = next(c for c in drawn if c[4].key == "explained_variance")[:4]
    doc = json.loads(src.read_text())
    assert rows == [0, 1, 2] and cols == [0, 1] and values.shape == (3, 2)
    for i, layer in enumerate(rows):
        for j, pos in enumerate(cols):
            if (layer, pos) in {(1, 0), (2, 1)}:  # no result: an empty cell
                assert np.isnan(values[i, j]) and labels[i, j] == ""
            else:
                ev = doc["results"][str(layer)][str(pos)]["explained_variance"]
                assert values[i, j] == ev and labels[i, j] == f"{ev:.3f}\nPCA 0.990"
    monkeypatch.undo()
    src = write(tmp_path / "s.json", metrics_all(2, 2, synthetic=True))
    plot_site_heatmaps(src, tmp_path / "syn")
    assert "SYNTHETIC DEMO DATA" in svg_text(tmp_path / "syn" / "feature_death_rate.svg")


def test_site_heatmaps_mark_the_sites_with_a_warning(tmp_path, monkeypatch):
    doc = metrics_all(2, 2)
    doc["baselines"]["1"]["0"]["warning"] = "FVU 1.300 > 0.99"
    drawn = record(monkeypatch, "_heatmap")
    plot_site_heatmaps(write(tmp_path / "m.json", doc), tmp_path)
    for call in drawn:
        labels, metric, title = call[1], call[4], call[5]
        assert labels[1, 0].startswith("! ") and not any(s.startswith("!") for s in labels.flat[[0, 1, 3]]), metric.key
        assert title.endswith("; !: the SAE learned little beyond the mean there (see the warnings)")
    doc["baselines"]["1"]["0"]["warning"] = None
    drawn.clear()
    plot_site_heatmaps(write(tmp_path / "m.json", doc), tmp_path)
    assert not any("!" in call[5] for call in drawn)


def test_site_heatmaps_bad_input(tmp_path):
    with pytest.raises(InputError, match="results"):
        plot_site_heatmaps(write(tmp_path / "m.json", {"config": {}}), tmp_path)


@pytest.mark.parametrize("synthetic,qualified", [(True, True), (False, False)])
def test_sweep_plot(tmp_path, synthetic, qualified):
    s = write(tmp_path / "summary.json", summary(qualified))
    d = write(tmp_path / "dataset.json", dataset(synthetic=synthetic))
    plot_sweep(s, d, tmp_path / "sweep.png", tmp_path / "sweep.svg")
    check_png(tmp_path / "sweep.png")
    text = svg_text(tmp_path / "sweep.svg")
    assert ("SYNTHETIC DEMO DATA" in text) == synthetic
    assert "sweet spot" in text and "position 3, layer 8" in text
    assert ("no config reaches" in text) == (not qualified)


def test_sweep_plot_axes_without_any_dead_feature():
    doc = summary()
    for c in doc["configs"]:
        c["feature_death_rate"] = 0.0
    fig = sweep_figure(doc, dataset())
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    plt.close(fig)


@pytest.mark.parametrize("layers, n_positions", [([5], 1), ([5], 3), ([5, 6], 3)])
def test_cross_layer_plot_with_nothing_to_compare(tmp_path, layers, n_positions):
    """One layer (and one position), or no pair of layers with live latents: a panel with no
    pair says why instead of failing."""
    pair = {"mean_max_cosine": 0.8, "initial_mean_max_cosine": 1.0, "share_above_0.9": 0.1}
    doc = {"across_layers": {str(p): {} for p in range(n_positions)},
           "across_positions": {"5": {f"{p}->{p + 1}": pair for p in range(n_positions - 1)}},
           "chance": {"mean_max_cosine": 0.37, "input_dim": 64}, "activation": "signed_topk", "shared_start": True}
    data = {**dataset(len(layers), n_positions), "layers": layers}
    png, svg = tmp_path / "cross_layer.png", tmp_path / "cross_layer.svg"
    plot_cross_layer(write(tmp_path / "cross.json", doc), write(tmp_path / "dataset.json", data), png, svg)
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    text = svg.read_text()
    assert ET.fromstring(text).tag == "{http://www.w3.org/2000/svg}svg"
    assert ("the data has one layer" in text) == (len(layers) == 1)
    assert ("no two consecutive layers with live" in text) == (len(layers) > 1)  # the text wraps after it
    assert ("the data has one position" in text) == (n_positions == 1)


def test_cross_layer_grids_hold_each_pair_in_its_cell(tmp_path, monkeypatch):
    pair = lambda cos: {"mean_max_cosine": cos, "initial_mean_max_cosine": 0.5, "share_above_0.9": 0.1}  # noqa: E731
    doc = {"across_layers": {str(p): {f"{a}->{a + 1}": pair(0.1 * a + 0.01 * p) for a in (0, 1)} for p in range(3)},
           "across_positions": {str(layer): {f"{p}->{p + 1}": pair(0.2 + 0.1 * layer + 0.01 * p) for p in (0, 1)}
                                for layer in (0, 1, 2)},
           "chance": {"mean_max_cosine": 0.37, "input_dim": 64}, "activation": "signed_topk", "shared_start": False}
    drawn = record(monkeypatch, "_draw")
    plot_cross_layer(write(tmp_path / "cross.json", doc), write(tmp_path / "dataset.json", dataset(3, 3)),
                     tmp_path / "c.png", tmp_path / "c.svg")
    (left, l_labels, l_rows, l_cols), (right, _, r_rows, r_cols) = [call[1:5] for call in drawn]
    assert l_rows == ["0\u21921", "1\u21922"] and l_cols == ["0", "1", "2"]  # layer pairs x positions
    assert r_rows == ["0", "1", "2"] and r_cols == ["0\u21921", "1\u21922"]  # layers x position pairs
    for a in (0, 1):
        for p in range(3):
            assert left[a, p] == pytest.approx(0.1 * a + 0.01 * p)
            assert l_labels[a, p] == f"{0.1 * a + 0.01 * p:.2f}\nstart 0.50"
            assert right[p, a] == pytest.approx(0.2 + 0.1 * p + 0.01 * a)
    assert drawn[0][5].limits == drawn[1][5].limits == pytest.approx((0.0, 0.41))  # one colour scale for both


def test_probe_heatmaps_show_each_inputs_auroc(tmp_path, monkeypatch):
    auroc = {"codes": (0.91, 0.02), "raw": (0.55, 0.03), "pca": (0.7, 0.01)}
    site = lambda p: {"models": {m: {"auroc": {"mean": mean + 0.01 * p, "std": std}}  # noqa: E731
                                 for m, (mean, std) in auroc.items()}}
    doc = {"settings": {"folds": 5}, "sites": {"0": {str(p): site(p) for p in range(2)}}}
    drawn = record(monkeypatch, "_heatmap")
    plot_probe_heatmaps(write(tmp_path / "probe.json", doc), write(tmp_path / "dataset.json", dataset(2, 3)), tmp_path)
    by_input = {call[4].key.rsplit("_", 1)[1]: call for call in drawn}
    assert sorted(by_input) == ["codes", "raw"]
    for name, (values, labels, rows, cols) in ((n, c[:4]) for n, c in by_input.items()):
        mean, std = auroc[name]
        assert rows == [0, 1] and cols == [0, 1, 2]
        assert values[0, :2] == pytest.approx([mean, mean + 0.01]) and np.isnan(values[0, 2])
        assert np.isnan(values[1]).all()  # layer 1 and position 2: no probe there
        assert labels[0, 1] == f"{mean + 0.01:.2f}\n\u00b1{std:.2f}"


def test_planted_plot_shows_each_sites_share_found(tmp_path, monkeypatch):
    found = lambda share: {"share_above_0_9": share, "mean_max_cosine": 0.5, "n_latents": 5}  # noqa: E731
    doc = {"planted": {"n_features": 384, "threshold": 0.9, "chance_mean_max_cosine": 0.21,
                       "sites": {str(layer): {str(p): found(0.125 * (p + 2 * layer)) for p in range(2)}
                                 for layer in range(3)}}}
    paths = plot_planted(write(tmp_path / "cross.json", doc), write(tmp_path / "dataset.json", dataset(3, 2)),
                         tmp_path)
    assert paths == [tmp_path / "planted.png", tmp_path / "planted.svg"]
    check_png(paths[0])
    text = paths[1].read_text()
    assert all(f"{share:.0%}" in text for share in (0.0, 0.125, 0.5, 0.625)) and "384 planted" in text
    assert "SYNTHETIC DEMO DATA" in text
    drawn = record(monkeypatch, "_heatmap")
    plot_planted(tmp_path / "cross.json", tmp_path / "dataset.json", tmp_path / "again")
    values, labels = drawn[0][:2]
    assert values.tolist() == [[0.0, 0.125], [0.25, 0.375], [0.5, 0.625]]
    assert labels[0, 0] == "0%\ncos 0.50" and labels[2, 1] == "62%\ncos 0.50"
    monkeypatch.undo()
    with pytest.raises(InputError, match="no planted dictionary"):
        plot_planted(write(tmp_path / "real.json", {"planted": None}), tmp_path / "dataset.json", tmp_path)

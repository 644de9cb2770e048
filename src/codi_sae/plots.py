"""Figures: per-site heatmaps of the sweet-spot SAE, and the (d, K) sweep.

Every figure is written as a PNG plus a vector SVG beside it, each atomically.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from .atomic import atomic_path, load_json  # noqa: E402
from .compare import unprobed  # noqa: E402
from .errors import InputError  # noqa: E402
from .heatmaps import PROBE_METRICS, SITE_METRICS, Metric  # noqa: E402
from .parallel import map_in_order  # noqa: E402
from .selection import where  # noqa: E402

DPI = 150
SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA - not real model activations"
SWEET_COLOR, OTHER_COLOR = "#e6550d", "#9ecae1"


def _title(fig, text: str, synthetic: bool) -> None:
    """Figure title, with a red SYNTHETIC DEMO DATA banner above it when the data is synthetic."""
    fig.suptitle(text, fontsize=12)
    if synthetic:
        fig.text(0.5, 1.0, SYNTHETIC_BANNER, ha="center", va="bottom", color="#b30000",
                 fontsize=12, fontweight="bold")


def _save(fig, png: str | os.PathLike, svg: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as PNG and SVG (text kept as text; no timestamp and fixed element ids, so the
    same figure gives the same bytes), atomically; close it."""
    try:
        with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "codi-sae"}):
            for path, fmt, meta in ((png, "png", None), (svg, "svg", {"Date": None})):
                with atomic_path(path) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", metadata=meta)
    finally:
        plt.close(fig)
    return [Path(png), Path(svg)]


def _site_grid(doc: dict) -> tuple[list[int], list[int]]:
    """Layer and position ids to draw: the dataset's, plus any others found in the results."""
    results, dataset = doc["results"], doc.get("dataset", {})
    layers = {int(layer) for layer in results} | set(dataset.get("layers", []))
    positions = {int(p) for by_pos in results.values() for p in by_pos} | set(range(dataset.get("n_positions", 0)))
    return sorted(layers), sorted(positions)


def _heatmap(values: np.ndarray, labels: np.ndarray, rows: list, cols: list, metric: Metric, title: str,
             heading: str, synthetic: bool, out: Path, xlabel: str = "Thought position",
             ylabel: str = "Layer", empty: str = "No site has a value") -> list[Path]:
    """One annotated heatmap of ``values`` [rows, cols] (NaN: an empty cell), as PNG and SVG; where
    no cell has a value, the text ``empty`` instead."""
    # Rows stay ~0.42 in tall up to 40 of them, then shrink so the figure stays under ~20 in.
    row_h = min(0.42, 17.0 / len(rows))
    font = max(5.0, min(10.0, row_h * 72 * 0.5))
    figsize = (max(5.5, 0.95 * len(cols) + 2.8), row_h * len(rows) + 2.0)
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    _draw(ax, values, labels, rows, cols, metric, title, xlabel, ylabel, font, empty)
    _title(fig, heading, synthetic)
    return _save(fig, out.with_suffix(".png"), out.with_suffix(".svg"))


def _draw(ax, values: np.ndarray, labels: np.ndarray, rows: list, cols: list, metric: Metric, title: str,
          xlabel: str, ylabel: str, font: float, empty: str) -> None:
    """An annotated heatmap on ``ax``, with its colour bar labelled by ``metric``; where no cell has
    a value, the text ``empty`` instead."""
    if not np.isfinite(values).any():
        _nothing(ax, title, empty)
        return
    import seaborn as sns  # here, not above: its import (with scipy.stats) is 0.6 s of the sweep plot's 2 s

    label = f"{metric.title.split(' (')[0]} ({metric.better})"
    width = max(20, int(11 * (ax.figure.get_figheight() - 1.5)))  # characters the colour bar's height holds
    cbar_kws = {"label": "\n".join(textwrap.wrap(label, width)), "shrink": 0.9}
    if metric.fmt.endswith("%}"):
        cbar_kws["format"] = PercentFormatter(1.0)
    low, high = metric.limits or (None, None)
    sns.heatmap(values, ax=ax, cmap=metric.cmap, center=metric.center, vmin=low, vmax=high, annot=labels, fmt="",
                annot_kws={"fontsize": font}, linewidths=0.5, linecolor="white",
                xticklabels=cols, yticklabels=rows, cbar_kws=cbar_kws)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="y", labelrotation=0, labelsize=min(10.0, font + 1))
    ax.set_title(title, fontsize=10)


def _nothing(ax, title: str, text: str) -> None:
    """An axes-free panel that says why it has nothing to draw."""
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 60)), ha="center", va="center", transform=ax.transAxes)


def _grid(layers: list[int], positions: list[int], cell) -> tuple[np.ndarray, np.ndarray]:
    """Values and labels of a layer x position grid; ``cell(layer, position)`` gives
    ``(value, label)`` or None for an empty cell."""
    values = np.full((len(layers), len(positions)), np.nan)
    labels = np.full(values.shape, "", dtype=object)
    for i, layer in enumerate(layers):
        for j, pos in enumerate(positions):
            here = cell(layer, pos)
            if here is not None:
                values[i, j], labels[i, j] = here
    return values, labels


def _site_heatmap(job: tuple) -> list[Path]:
    """One metric's heatmap for ``plot_site_heatmaps`` (in a worker process, when there are several)."""
    metric, doc, layers, positions, heading, out_dir = job

    def cell(layer: int, pos: int):
        here = {**doc.get("baselines", {}).get(str(layer), {}).get(str(pos), {}),
                **doc["results"].get(str(layer), {}).get(str(pos), {})}  # the metrics beside their baselines
        if here.get(metric.key) is None:
            return None
        label = ("! " if here.get("warning") else "") + metric.fmt.format(here[metric.key])
        if metric.pca_key and here.get(metric.pca_key) is not None:
            label += "\nPCA " + metric.fmt.format(here[metric.pca_key])
        return here[metric.key], label

    title = metric.title + ("; under each cell, PCA with the same K" if metric.pca_key else "")
    if any(site.get("warning") for by_pos in doc.get("baselines", {}).values() for site in by_pos.values()):
        title += "; !: the SAE learned little beyond the mean there (see the warnings)"
    return _heatmap(*_grid(layers, positions, cell), layers, positions, metric, title, heading,
                    doc.get("dataset", {}).get("synthetic", False), Path(out_dir) / metric.key)


def plot_site_heatmaps(metrics_all_json: str | os.PathLike, out_dir: str | os.PathLike, workers: int = 1) -> list[Path]:
    """Layer x position heatmaps of ``heatmaps.SITE_METRICS``, with PCA-K's value under the SAE's
    where there is one to compare, drawn by ``workers`` processes; returns the PNG+SVG paths."""
    doc = load_json(metrics_all_json, "config", "results")
    layers, positions = _site_grid(doc)
    if not layers or not positions:
        raise InputError(f"{metrics_all_json}: no site results to plot")
    dataset, cfg = doc.get("dataset", {}), doc["config"]
    heading = (f"{dataset.get('model', 'model')} - TopK SAE d={cfg.get('latent_dim')}, K={cfg.get('k')}, "
               f"{cfg.get('recipe', 'seed')} recipe")
    jobs = [(metric, doc, layers, positions, heading, out_dir) for metric in SITE_METRICS]
    return [path for paths in map_in_order(_site_heatmap, jobs, workers) for path in paths]


def plot_probe_heatmaps(probe_json: str | os.PathLike, dataset_json: str | os.PathLike,
                        out_dir: str | os.PathLike) -> list[Path]:
    """Layer x position heatmaps of the error-prediction AUROC (``heatmaps.PROBE_METRICS``), its
    spread over folds under each cell."""
    probe, dataset = load_json(probe_json, "sites", "settings"), load_json(dataset_json)
    sites = probe["sites"]
    layers = sorted({int(layer) for layer in sites} | set(dataset.get("layers", [])))
    positions = sorted({int(p) for by_pos in sites.values() for p in by_pos} | set(range(dataset.get("n_positions", 0))))
    heading = f"{dataset.get('model', 'model')} - error prediction, {probe['settings']['folds']}-fold CV"
    notes = unprobed(probe)
    empty = "No site was probed" + (": " + "; ".join(notes) if notes else "")
    paths = []
    for metric in PROBE_METRICS:
        model = metric.key.rsplit("_", 1)[1]

        def cell(layer: int, pos: int, model: str = model):
            auroc = sites.get(str(layer), {}).get(str(pos), {}).get("models", {}).get(model, {}).get("auroc", {})
            if auroc.get("mean") is None:
                return None
            return auroc["mean"], f"{auroc['mean']:.2f}\n\u00b1{auroc['std']:.2f}"

        paths += _heatmap(*_grid(layers, positions, cell), layers, positions, metric, metric.title, heading,
                          dataset.get("synthetic", False), Path(out_dir) / metric.key, empty=empty)
    return paths


OVERLAP = Metric("cross_layer", "Mean max cosine (directional, a -> b)", "viridis", "{:.2f}",
                 "higher: more of a reappears in b")


def plot_cross_layer(cross_json: str | os.PathLike, dataset_json: str | os.PathLike, out_png: str | os.PathLike,
                     out_svg: str | os.PathLike) -> None:
    """How much of each dictionary reappears at the next layer (left) and the next position (right),
    each cell beside the overlap of the two sites' initial dictionaries."""
    doc, dataset = load_json(cross_json, "across_layers", "across_positions", "chance"), load_json(dataset_json)

    def grid(outer: dict, outer_first: bool) -> tuple[np.ndarray, np.ndarray, list, list]:
        keys = sorted(outer, key=int)
        pairs = sorted({pair for by in outer.values() for pair in by}, key=lambda pair: int(pair.split("->")[0]))
        values = np.full((len(pairs), len(keys)) if outer_first else (len(keys), len(pairs)), np.nan)
        labels = np.full(values.shape, "", dtype=object)
        for j, key in enumerate(keys):
            for i, pair in enumerate(pairs):
                here = outer[key].get(pair, {})
                if here.get("mean_max_cosine") is None:
                    continue
                at = (i, j) if outer_first else (j, i)
                values[at] = here["mean_max_cosine"]
                labels[at] = f"{here['mean_max_cosine']:.2f}\nstart {here['initial_mean_max_cosine']:.2f}"
        names = [pair.replace("->", "\u2192") for pair in pairs]
        return (values, labels, names, keys) if outer_first else (values, labels, keys, names)

    layers_v, layers_l, layer_pairs, positions = grid(doc["across_layers"], True)
    pos_v, pos_l, layers, position_pairs = grid(doc["across_positions"], False)
    rows = max(len(layer_pairs), len(layers), 1)
    row_h = min(0.5, 17.0 / rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(11.0, 1.9 * (len(positions) + len(position_pairs)) + 5),
                                                      row_h * rows + 2.6), layout="constrained")
    font = max(5.0, min(9.0, row_h * 72 * 0.4))

    both = np.concatenate([layers_v.ravel(), pos_v.ravel()])
    both = both[np.isfinite(both)]
    scale = OVERLAP._replace(limits=(both.min(), both.max())) if both.size else OVERLAP  # one scale for both

    def panel(ax, values, labels, rows: list, cols: list, title: str, xlabel: str, ylabel: str, noun: str,
              n: int) -> None:
        # empty with one layer (or position), or no dictionary with a live latent: nothing to compare
        why = f"the data has one {noun}" if n == 1 else f"no two consecutive {noun}s with live latents in the results"
        _draw(ax, values, labels, rows, cols, scale, title, xlabel, ylabel, font, f"Nothing to compare: {why}")

    panel(left, layers_v, layers_l, layer_pairs, positions, "Layer to next layer, per position", "Thought position",
          "Layers", "layer", len(dataset.get("layers", ())))
    panel(right, pos_v, pos_l, layers, position_pairs, "Position to next position, per layer", "Positions", "Layer",
          "position", dataset.get("n_positions"))
    chance = doc["chance"]["mean_max_cosine"]
    heading = (f"{dataset.get('model', 'model')} - dictionary overlap (random directions: {chance:.2f}; "
               "under each cell, the two sites' initial dictionaries)")
    if doc.get("shared_start"):
        heading += ("\nEvery site started from the same weights (site_init: shared): these overlaps mostly "
                    "show how little training moved them, not shared features")
    _title(fig, heading, dataset.get("synthetic", False))
    _save(fig, out_png, out_svg)


PLANTED = Metric("planted", "Share of the planted features found (a decoder direction at cosine > 0.9)", "YlGn",
                 "{:.0%}", "higher is better", limits=(0.0, 1.0))


def plot_planted(cross_json: str | os.PathLike, dataset_json: str | os.PathLike,
                 out_dir: str | os.PathLike) -> list[Path]:
    """SYNTHETIC demo only: ``planted.png`` and ``.svg`` in ``out_dir``, per site the share of its
    layer's planted features that the SAE found, the mean best cosine under each cell
    (``crosslayer``'s ``planted``)."""
    doc, dataset = load_json(cross_json, "planted"), load_json(dataset_json)
    planted = doc["planted"]
    if not planted:
        raise InputError(f"{cross_json}: no planted dictionary compared (only the synthetic demo has one)")
    sites = planted["sites"]
    layers = sorted(int(layer) for layer in sites)
    positions = sorted({int(p) for by_pos in sites.values() for p in by_pos})

    def cell(layer: int, pos: int):
        here = sites[str(layer)].get(str(pos), {})
        if here.get("share_above_0_9") is None:
            return None
        return here["share_above_0_9"], f"{here['share_above_0_9']:.0%}\ncos {here['mean_max_cosine']:.2f}"

    heading = (f"{dataset.get('model', 'model')} - the SAEs against the demo's {planted['n_features']} planted "
               f"features per layer\n(mean best cosine of random directions: {planted['chance_mean_max_cosine']:.2f})")
    return _heatmap(*_grid(layers, positions, cell), layers, positions, PLANTED, PLANTED.title, heading, True,
                    Path(out_dir) / PLANTED.key)


def plot_positions(positions_json: str | os.PathLike, dataset_json: str | os.PathLike, out_png: str | os.PathLike,
                   out_svg: str | os.PathLike) -> None:
    """Per metric, its mean over odd and over even positions at each layer, with the test's verdict."""
    doc, dataset = load_json(positions_json, "metrics"), load_json(dataset_json)
    metrics = doc["metrics"]
    if not metrics:
        raise InputError(f"{positions_json}: no metrics to plot")
    cols = 2
    n_rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(12, 3.6 * n_rows), layout="constrained", squeeze=False)
    for ax, (name, result) in zip(axes.flat, metrics.items()):
        per_layer = sorted(result["per_layer"].items(), key=lambda kv: int(kv[0]))
        layers = [int(layer) for layer, _ in per_layer]
        if all(v[side] is None for _, v in per_layer for side in ("odd", "even")):
            _nothing(ax, name, result["verdict"])
            continue
        for side, color, marker in (("odd", SWEET_COLOR, "o"), ("even", "#3182bd", "s")):
            ax.plot(layers, [np.nan if v[side] is None else v[side] for _, v in per_layer], color=color,
                    marker=marker, label=f"{side} positions")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("Layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
        ax.text(0.0, -0.32, "\n".join(textwrap.wrap(result["verdict"], 90)), transform=ax.transAxes, fontsize=7.5,
                va="top")
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    heading = f"{dataset.get('model', 'model')} - odd against even thought positions, per layer"
    for caveat in doc.get("caveats", []):
        heading += "\n" + "\n".join(textwrap.wrap(f"Caveat: {caveat}", 130))
    _title(fig, heading, dataset.get("synthetic", False))
    _save(fig, out_png, out_svg)


def plot_sweep(summary_json: str | os.PathLike, dataset_json: str | os.PathLike, out_png: str | os.PathLike,
               out_svg: str | os.PathLike) -> None:
    """Both explained variances' views and the death rate of every sweep config (at its site, or
    its means over the sweep's sites), beside PCA-K and the mean-only model, best rank on top."""
    summary = load_json(summary_json, "sites", "selection_rule", "sweet_spot", "configs")
    if not summary["configs"]:
        raise InputError(f"{summary_json}: no configs to plot")
    _save(sweep_figure(summary, load_json(dataset_json)), out_png, out_svg)


def _floats(configs: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if c.get(key) is None else c[key] for c in configs], dtype=float)


def sweep_figure(summary: dict, dataset: dict):
    """The figure of ``plot_sweep``, from the analysis summary and the dataset description."""
    configs = sorted(summary["configs"], key=lambda c: c["rank"])
    is_best = [c["rank"] == 1 for c in configs]
    labels = [f"d={c['d']}, K={c['k']}, {c['recipe']}, {c['epochs']} ep" + ("  \u2605" if b else "")
              for c, b in zip(configs, is_best)]
    colors = [SWEET_COLOR if b else OTHER_COLOR for b in is_best]
    y = np.arange(len(configs))
    rule = summary["selection_rule"]
    metric, min_ev = rule.get("metric", "explained_variance"), rule["min_explained_variance"]
    # the threshold, on the panel of the selection metric (the standard EV is 1 - FVU)
    threshold = {"explained_variance": min_ev} if metric == "explained_variance" else {"fvu": 1 - min_ev}

    fig, axes = plt.subplots(1, 3, sharey=True, figsize=(15, 0.38 * len(configs) + 2.6), layout="constrained")
    panels = (
        ("explained_variance", "Explained variance, seed's definition\n(validation; higher is better)", "{:.3f}"),
        ("fvu", "FVU, standard definition = 1 - EV (std)\n(validation; lower is better)", "{:.3f}"),
        ("feature_death_rate", "Feature death rate\n(lower is better)", "{:.1%}"),
    )
    for ax, (key, title, fmt) in zip(axes, panels):
        values = _floats(configs, key)
        ax.barh(y, np.nan_to_num(values), color=colors, edgecolor="0.3", linewidth=0.5)
        marks = [_floats(configs, f"{base}_{key}") for base in ("pca", "mean_only")] if key != "feature_death_rate" else []
        for mark, style in zip(marks, ({"marker": "D", "color": "#31a354"}, {"marker": "x", "color": "0.1"})):
            ax.scatter(mark, y, s=28, zorder=3, **style)
        seen = np.concatenate([values, *marks, [threshold.get(key, 0.0)]])
        # The axis spans at least 0..0.01 (1%), so that all-zero values still get distinct ticks.
        high, low = max(np.nanmax(seen), 0.01), min(np.nanmin(seen) * 1.1, 0.0)
        pad = 0.015 * (high - low)
        for yi, v in zip(y, values):
            ax.text(max(np.nan_to_num(v), 0.0) + pad, yi, "n/a" if np.isnan(v) else fmt.format(v), va="center",
                    fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
        ax.set_xlim(low, high * 1.25)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        if key in threshold:
            ax.axvline(threshold[key], color="0.2", linestyle="--", linewidth=1.2)
    axes[2].xaxis.set_major_formatter(PercentFormatter(1.0))
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    axes[0].set_ylabel("TopK SAE config (by rank)")
    for tick, b in zip(axes[0].get_yticklabels(), is_best):
        if b:
            tick.set_fontweight("bold")
            tick.set_color(SWEET_COLOR)
    best = configs[0]
    fig.legend(handles=[Patch(color=SWEET_COLOR, label=f"\u2605 sweet spot (d={best['d']}, K={best['k']}, "
                                                         f"{best['recipe']})"),
                        Patch(color=OTHER_COLOR, label="other configs"),
                        Line2D([], [], color="#31a354", marker="D", linestyle="", label="PCA with the same K"),
                        Line2D([], [], color="0.1", marker="x", linestyle="", label="mean-only model"),
                        Line2D([], [], color="0.2", linestyle="--", label=f"threshold: {metric} >= {min_ev:g}")],
               loc="outside lower center", ncol=5, frameon=False)
    heading = f"{dataset.get('model', 'model')} - (d, K) sweep at {where(summary)}"
    if not summary.get("any_config_qualified", True):
        heading += f"\nno config reaches {metric} {min_ev:g}: the highest chosen"
    _title(fig, heading, dataset.get("synthetic", False))
    return fig

"""Figures: per-site heatmaps of the sweet-spot SAE, and the (d, K) sweep at one site.

Every figure is written as a PNG plus a vector SVG beside it, each atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from .atomic import atomic_path, read_json  # noqa: E402
from .errors import InputError  # noqa: E402
from .heatmaps import SITE_METRICS  # noqa: E402

DPI = 150
SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA - not real model activations"
SWEET_COLOR, OTHER_COLOR = "#e6550d", "#9ecae1"


def _load(path: str | os.PathLike, *keys: str) -> dict:
    """Read a JSON object that must have ``keys``; bad input raises InputError naming the file."""
    try:
        obj = read_json(path)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read JSON: {e}") from e
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
    return obj


def _title(fig, text: str, synthetic: bool) -> None:
    """Figure title, with a red SYNTHETIC DEMO DATA banner above it when the data is synthetic."""
    fig.suptitle(text, fontsize=12)
    if synthetic:
        fig.text(0.5, 1.0, SYNTHETIC_BANNER, ha="center", va="bottom", color="#b30000",
                 fontsize=12, fontweight="bold")


def _save(fig, png: str | os.PathLike, svg: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as PNG and SVG (text kept as text, no timestamp), atomically; close it."""
    try:
        with plt.rc_context({"svg.fonttype": "none"}):
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


def plot_site_heatmaps(metrics_all_json: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Layer x position heatmaps of ``heatmaps.SITE_METRICS``, with PCA-K's value under the SAE's
    where there is one to compare; returns the PNG+SVG paths."""
    doc = _load(metrics_all_json, "config", "results")
    layers, positions = _site_grid(doc)
    if not layers or not positions:
        raise InputError(f"{metrics_all_json}: no site results to plot")
    dataset, cfg = doc.get("dataset", {}), doc["config"]
    heading = (f"{dataset.get('model', 'model')} - TopK SAE d={cfg.get('latent_dim')}, K={cfg.get('k')}, "
               f"{cfg.get('recipe', 'seed')} recipe")

    def site(layer: int, pos: int) -> dict:
        """The site's metrics and its baselines (``compare.beside``) in one dict."""
        return {**doc.get("baselines", {}).get(str(layer), {}).get(str(pos), {}),
                **doc["results"].get(str(layer), {}).get(str(pos), {})}

    # Rows stay ~0.42 in tall up to 40 layers, then shrink so the figure stays under ~20 in.
    row_h = min(0.42, 17.0 / len(layers))
    col_w = 0.95
    font = max(5.0, min(10.0, row_h * 72 * 0.5))
    figsize = (max(5.5, col_w * len(positions) + 2.8), row_h * len(layers) + 2.0)
    paths = []
    for metric in SITE_METRICS:
        values = np.full((len(layers), len(positions)), np.nan)
        labels = np.full(values.shape, "", dtype=object)
        for i, layer in enumerate(layers):
            for j, pos in enumerate(positions):
                here = site(layer, pos)
                if here.get(metric.key) is None:
                    continue
                values[i, j] = here[metric.key]
                labels[i, j] = metric.fmt.format(here[metric.key])
                if metric.pca_key and here.get(metric.pca_key) is not None:
                    labels[i, j] += "\nPCA " + metric.fmt.format(here[metric.pca_key])
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        title = metric.title + ("; under each cell, PCA with the same K" if metric.pca_key else "")
        cbar_kws = {"label": f"{metric.title.split(' (')[0]} ({metric.better})", "shrink": 0.9}
        if metric.fmt.endswith("%}"):
            cbar_kws["format"] = PercentFormatter(1.0)
        sns.heatmap(values, ax=ax, cmap=metric.cmap, center=metric.center, annot=labels, fmt="",
                    annot_kws={"fontsize": font}, linewidths=0.5, linecolor="white",
                    xticklabels=positions, yticklabels=layers, cbar_kws=cbar_kws)
        ax.set_xlabel("Thought position")
        ax.set_ylabel("Layer")
        ax.tick_params(axis="y", labelrotation=0, labelsize=min(10.0, font + 1))
        ax.set_title(title, fontsize=10)
        _title(fig, heading, dataset.get("synthetic", False))
        out = Path(out_dir) / metric.key
        paths += _save(fig, out.with_suffix(".png"), out.with_suffix(".svg"))
    return paths


def plot_sweep(summary_json: str | os.PathLike, dataset_json: str | os.PathLike, out_png: str | os.PathLike,
               out_svg: str | os.PathLike) -> None:
    """Both explained variances' views and the death rate of every sweep config at one site, beside
    PCA-K and the mean-only model, best rank on top."""
    summary = _load(summary_json, "site", "selection_rule", "sweet_spot", "configs")
    if not summary["configs"]:
        raise InputError(f"{summary_json}: no configs to plot")
    _save(sweep_figure(summary, _load(dataset_json)), out_png, out_svg)


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
        sns.despine(ax=ax)
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
    site = summary["site"]
    heading = f"{dataset.get('model', 'model')} - (d, K) sweep at position {site['position']}, layer {site['layer']}"
    if not summary.get("any_config_qualified", True):
        heading += f"\nno config reaches {metric} {min_ev:g}: the highest chosen"
    _title(fig, heading, dataset.get("synthetic", False))
    return fig

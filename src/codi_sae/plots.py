"""Figures: per-site heatmaps of the sweet-spot SAE, and the (d, K) sweep at one site.

Every figure is written as a PNG plus a vector SVG beside it, each atomically.
"""

from __future__ import annotations

import json
import math
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
    """Layer x position heatmaps of loss, death rate and explained variance; returns the PNG+SVG paths."""
    doc = _load(metrics_all_json, "config", "results")
    layers, positions = _site_grid(doc)
    if not layers or not positions:
        raise InputError(f"{metrics_all_json}: no site results to plot")
    dataset, cfg = doc.get("dataset", {}), doc["config"]
    heading = f"{dataset.get('model', 'model')} - TopK SAE d={cfg.get('latent_dim')}, K={cfg.get('k')}"
    # Rows stay ~0.42 in tall up to 40 layers, then shrink so the figure stays under ~20 in.
    row_h = min(0.42, 17.0 / len(layers))
    col_w = 0.95
    font = max(5.0, min(10.0, row_h * 72 * 0.5))
    figsize = (max(5.5, col_w * len(positions) + 2.8), row_h * len(layers) + 2.0)
    paths = []
    for metric in SITE_METRICS:
        values = np.full((len(layers), len(positions)), np.nan)
        for i, layer in enumerate(layers):
            for j, pos in enumerate(positions):
                value = doc["results"].get(str(layer), {}).get(str(pos), {}).get(metric.key)
                if value is not None:
                    values[i, j] = value
        labels = [["" if math.isnan(v) else metric.fmt.format(v) for v in row] for row in values]
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        cbar_kws = {"label": f"{metric.title.split(' (')[0]} ({metric.better})", "shrink": 0.9}
        if metric.fmt.endswith("%}"):
            cbar_kws["format"] = PercentFormatter(1.0)
        sns.heatmap(values, ax=ax, cmap=metric.cmap, annot=np.array(labels), fmt="",
                    annot_kws={"fontsize": font}, linewidths=0.5, linecolor="white",
                    xticklabels=positions, yticklabels=layers, cbar_kws=cbar_kws)
        ax.set_xlabel("Thought position")
        ax.set_ylabel("Layer")
        ax.tick_params(axis="y", labelrotation=0, labelsize=min(10.0, font + 1))
        ax.set_title(metric.title, fontsize=11)
        _title(fig, heading, dataset.get("synthetic", False))
        out = Path(out_dir) / metric.key
        paths += _save(fig, out.with_suffix(".png"), out.with_suffix(".svg"))
    return paths


def plot_sweep(summary_json: str | os.PathLike, dataset_json: str | os.PathLike, out_png: str | os.PathLike,
               out_svg: str | os.PathLike) -> None:
    """Explained variance and feature death rate of every (d, K) config at one site, best rank on top."""
    summary = _load(summary_json, "site", "selection_rule", "sweet_spot", "configs")
    if not summary["configs"]:
        raise InputError(f"{summary_json}: no configs to plot")
    _save(sweep_figure(summary, _load(dataset_json)), out_png, out_svg)


def sweep_figure(summary: dict, dataset: dict):
    """The figure of ``plot_sweep``, from the analysis summary and the dataset description."""
    configs = sorted(summary["configs"], key=lambda c: c["rank"])
    best = (summary["sweet_spot"]["d"], summary["sweet_spot"]["k"])
    is_best = [(c["d"], c["k"]) == best for c in configs]
    labels = [f"d={c['d']}, K={c['k']}" + ("  \u2605 sweet spot" if b else "") for c, b in zip(configs, is_best)]
    colors = [SWEET_COLOR if b else OTHER_COLOR for b in is_best]
    y = np.arange(len(configs))
    min_ev = summary["selection_rule"]["min_explained_variance"]

    fig, (ax_ev, ax_dr) = plt.subplots(1, 2, sharey=True, figsize=(11, 0.38 * len(configs) + 2.4),
                                       layout="constrained")
    panels = (
        (ax_ev, "explained_variance", "Explained variance, seed's definition (validation)", "{:.3f}"),
        (ax_dr, "feature_death_rate", "Feature death rate (lower is better)", "{:.1%}"),
    )
    for ax, key, title, fmt in panels:
        values = np.array([c[key] for c in configs], dtype=float)
        ax.barh(y, values, color=colors, edgecolor="0.3", linewidth=0.5)
        # The axis spans at least 0..0.01 (1%), so that all-zero values still get distinct ticks.
        high = max(values.max(), min_ev if key == "explained_variance" else 0.0, 0.01)
        pad = 0.015 * (high - min(values.min(), 0.0))
        for yi, v in zip(y, values):
            ax.text(max(v, 0.0) + pad, yi, fmt.format(v), va="center", fontsize=8,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
        ax.set_xlim(min(values.min() * 1.1, 0.0), high * 1.22)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        sns.despine(ax=ax)
    ax_ev.axvline(min_ev, color="0.2", linestyle="--", linewidth=1.2)
    ax_dr.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax_ev.set_yticks(y, labels)
    ax_ev.invert_yaxis()
    ax_ev.set_ylabel("TopK SAE config (by rank)")
    for tick, b in zip(ax_ev.get_yticklabels(), is_best):
        if b:
            tick.set_fontweight("bold")
            tick.set_color(SWEET_COLOR)
    fig.legend(handles=[Patch(color=SWEET_COLOR, label=f"sweet spot (d={best[0]}, K={best[1]})"),
                        Patch(color=OTHER_COLOR, label="other configs"),
                        Line2D([], [], color="0.2", linestyle="--", label=f"EV threshold {min_ev:g}")],
               loc="outside lower center", ncol=3, frameon=False)
    site = summary["site"]
    heading = f"{dataset.get('model', 'model')} - (d, K) sweep at position {site['position']}, layer {site['layer']}"
    if not summary.get("any_config_qualified", True):
        heading += f"\nno config reaches EV {min_ev:g}: highest EV chosen"
    _title(fig, heading, dataset.get("synthetic", False))
    return fig

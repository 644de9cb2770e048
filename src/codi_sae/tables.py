"""Self-contained HTML pages of the sweep and per-site results, for the Snakemake report."""

from __future__ import annotations

import html
import os

from .atomic import read_json, write_text
from .selection import COLUMNS

STYLE = """<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } tr.chosen td { background: #fff3cd; font-weight: bold; }
.synthetic { background: #b00020; color: white; padding: 0.6em; font-weight: bold; }
</style>"""
SITE_COLUMNS = (  # (header, metric key, format)
    ("EV (seed)", "explained_variance", "{:.4f}"), ("EV (std)", "explained_variance_std", "{:.4f}"),
    ("MSE", "reconstruction_loss", "{:.4g}"), ("Cosine", "cosine_similarity", "{:.4f}"),
    ("Death rate", "feature_death_rate", "{:.1%}"), ("Dead", "num_dead_features", "{}"),
    ("L0", "l0_mean", "{:.1f}"),
)


def _page(title: str, dataset: dict, body: str) -> str:
    banner = ('<p class="synthetic">SYNTHETIC DEMO DATA: these are not real model activations.</p>'
              if dataset.get("synthetic") else "")
    source = html.escape(f"{dataset.get('model')} on {dataset.get('dataset')} ({dataset.get('source')})")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
            f"</head><body>{banner}<h1>{html.escape(title)}</h1><p>Data: {source}</p>{body}</body></html>\n")


def _table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr class='{c}'>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
        for row, c in zip(rows, classes or [""] * len(rows))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sweep_page(summary: dict, dataset: dict) -> str:
    """The sweet spot, why it was chosen, and every config's metrics, best first."""
    best = summary["sweet_spot"]
    site = summary["site"]
    rows = [[f.format(r[k]) for _, k, f in COLUMNS] for r in summary["configs"]]
    chosen = ["chosen" if (r["d"], r["k"]) == (best["d"], best["k"]) else "" for r in summary["configs"]]
    body = (f"<h2>Sweet spot: d={best['d']}, K={best['k']}</h2><p>{html.escape(summary['rationale'])}</p>"
            f"<p>Rule: {html.escape(summary['selection_rule']['rule'])}</p>"
            + _table([h for h, _, _ in COLUMNS], rows, chosen))
    return _page(f"(d, K) sweep at position {site['position']}, layer {site['layer']}", dataset, body)


def sites_page(metrics_all: dict) -> str:
    """Every site's metrics, and the mean, std and range over sites."""
    cfg = metrics_all["config"]
    rows = [
        [layer, pos] + [f.format(m[k]) for _, k, f in SITE_COLUMNS]
        for layer, by_pos in sorted(metrics_all["results"].items(), key=lambda kv: int(kv[0]))
        for pos, m in sorted(by_pos.items(), key=lambda kv: int(kv[0]))
    ]
    stats = [[key, *(f"{s[v]:.4g}" for v in ("mean", "std", "min", "max"))]
             for key, s in metrics_all["statistics"].items()]
    body = (f"<h2>Statistics over {metrics_all['n_sites']} sites</h2>"
            + _table(["Metric", "Mean", "Std", "Min", "Max"], stats)
            + "<h2>Per site (validation)</h2>"
            + _table(["Layer", "Position"] + [h for h, _, _ in SITE_COLUMNS], rows))
    return _page(f"TopK SAE d={cfg['latent_dim']}, K={cfg['k']} at every site", metrics_all["dataset"], body)


def write_report_tables(summary_json: str | os.PathLike, metrics_all_json: str | os.PathLike,
                        dataset_json: str | os.PathLike, sweep_html: str | os.PathLike,
                        sites_html: str | os.PathLike) -> None:
    summary, metrics_all, dataset = (read_json(p) for p in (summary_json, metrics_all_json, dataset_json))
    write_text(sweep_html, sweep_page(summary, dataset))
    write_text(sites_html, sites_page(metrics_all))

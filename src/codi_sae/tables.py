"""Self-contained HTML pages of the sweep and per-site results, for the Snakemake report."""

from __future__ import annotations

import html
import os

from .atomic import read_json, write_text
from .compare import unprobed
from .selection import COLUMNS, METRIC_COLUMNS, cell, where

STYLE = """<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } tr.chosen td { background: #fff3cd; font-weight: bold; }
.synthetic { background: #b00020; color: white; padding: 0.6em; font-weight: bold; }
.warning { background: #fff3cd; border-left: 0.4em solid #e6a700; padding: 0.4em 0.8em; }
</style>"""
SITE_COLUMNS = (*METRIC_COLUMNS, ("L0", "l0_mean", "{:.1f}"), ("Warning", "warning", "{}"))  # (header, key, format)
BASELINES_NOTE = ("Beside every SAE: PCA-K, the training data's first K principal directions (as many as the "
                  "SAE's active latents), and the mean-only model, which predicts every row as the training "
                  "mean; both fit on the training rows, scored on the validation rows. EV (seed) is the seed's "
                  "explained variance, 1 - var(x - r) / var(x) over all elements, which counts the spread of "
                  "the per-dimension means as explained; EV (std) = 1 - FVU removes each dimension's mean.")


def _warnings(warnings: list[str]) -> str:
    return "".join(f"<p class='warning'>WARNING {html.escape(w)}</p>" for w in warnings)


def _page(title: str, dataset: dict, body: str, head: str = "") -> str:
    """A whole page: ``head`` (e.g. a page's own style) after the common style, the synthetic banner
    when the data is synthetic, the title, the data's source, ``body``."""
    banner = ('<p class="synthetic">SYNTHETIC DEMO DATA: these are not real model activations.</p>'
              if dataset.get("synthetic") else "")
    source = html.escape(f"{dataset.get('model')} on {dataset.get('dataset')} ({dataset.get('source')})")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}{head}"
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
    rows = [[cell(f, r[k]) for _, k, f in COLUMNS] for r in summary["configs"]]
    chosen = ["chosen" if r["rank"] == 1 else "" for r in summary["configs"]]
    body = (f"<h2>Sweet spot: d={best['d']}, K={best['k']}, {html.escape(best['recipe'])} recipe</h2>"
            + _warnings(summary["warnings"])
            + f"<p>{html.escape(summary['rationale'])}</p>"
            f"<p>Rule: {html.escape(summary['selection_rule']['rule'])}</p><p>{html.escape(BASELINES_NOTE)}</p>"
            + _table([h for h, _, _ in COLUMNS], rows, chosen))
    return _page(f"(d, K) sweep at {where(summary)}", dataset, body)


def sites_page(metrics_all: dict) -> str:
    """Every site's metrics beside its baselines, and the mean, std and range over sites."""
    cfg = metrics_all["config"]
    rows = []
    for layer, by_pos in sorted(metrics_all["results"].items(), key=lambda kv: int(kv[0])):
        for pos, m in sorted(by_pos.items(), key=lambda kv: int(kv[0])):
            site = {**metrics_all["baselines"][layer][pos], **m}
            rows.append([layer, pos] + [cell(f, site[k]) for _, k, f in SITE_COLUMNS])
    stats = [[key, str(s["n"]), *(cell("{:.4g}", s[v]) for v in ("mean", "std", "min", "max"))]
             for key, s in metrics_all["statistics"].items()]
    body = (_warnings(metrics_all["warnings"])
            + f"<h2>Statistics over {metrics_all['n_sites']} sites</h2>"
            + _table(["Metric", "Sites", "Mean", "Std", "Min", "Max"], stats)
            + f"<h2>Per site (validation)</h2><p>{html.escape(BASELINES_NOTE)}</p>"
            + _table(["Layer", "Position"] + [h for h, _, _ in SITE_COLUMNS], rows))
    title = f"TopK SAE d={cfg['latent_dim']}, K={cfg['k']}, {cfg['recipe']} recipe, at every site"
    return _page(title, metrics_all["dataset"], body)


def write_report_tables(summary_json: str | os.PathLike, metrics_all_json: str | os.PathLike,
                        dataset_json: str | os.PathLike, sweep_html: str | os.PathLike,
                        sites_html: str | os.PathLike) -> None:
    summary, metrics_all, dataset = (read_json(p) for p in (summary_json, metrics_all_json, dataset_json))
    write_text(sweep_html, sweep_page(summary, dataset))
    write_text(sites_html, sites_page(metrics_all))


PROBE_MODELS = (("codes", "SAE codes"), ("raw", "raw activations"), ("pca", "PCA-K"), ("majority", "majority class"))
PROBE_GUIDE = ("Each site's L2 logistic regression predicts whether the model answered correctly, scored by "
               "stratified cross-validation over problems; AUROC 0.5 is chance, and the majority class is the "
               "accuracy to beat. If the SAE's codes predict as well as the raw activations, the sparse features "
               "keep what the activations know about errors; the latents with the largest coefficients, with "
               "their catalogue entries, say where to look.")


def _spread(stat: dict, fmt: str = "{:.3f}") -> str:
    """``mean ± std`` of a cross-validated metric; empty where it is undefined."""
    return "" if stat["mean"] is None else f"{fmt.format(stat['mean'])} \u00b1 {fmt.format(stat['std'])}"


def probe_page(probe: dict, catalogues: dict[tuple[int, int], dict], dataset: dict) -> str:
    """Every site's probe scores (mean ± std over folds), and its top latents with their
    catalogue entries (``catalogues[(position, layer)]``)."""
    headers = ["Layer", "Position", "Problems", "Correct", "Folds"]
    headers += [f"AUROC, {name}" for _, name in PROBE_MODELS] + [f"Bal. acc., {name}" for _, name in PROBE_MODELS]
    rows, details = [], []
    for layer, by_pos in sorted(probe["sites"].items(), key=lambda kv: int(kv[0])):
        for pos, site in sorted(by_pos.items(), key=lambda kv: int(kv[0])):
            models = site["models"]
            rows.append([layer, pos, str(site["n"]), cell("{}", site["positives"]), str(site["folds"])]
                        + [_spread(models[m]["auroc"]) for m, _ in PROBE_MODELS]
                        + [_spread(models[m]["balanced_accuracy"]) for m, _ in PROBE_MODELS])
            latents = catalogues[(int(pos), int(layer))]["latents"]
            top = []
            for entry in site["top_latents"]:
                info = latents[entry["latent"]]
                first = info["top_problems"][0] if info["top_problems"] else {}
                top.append([str(entry["latent"]), f"{entry['coef']:+.3f}", cell("{:.1%}", info["frequency"]),
                            cell("{:+.3f}", info["correlation_is_correct"]), cell("{:.3g}", info["mean_activation"]),
                            str(first.get("question") or "")])
            if not top:
                continue
            details.append(f"<details><summary>Position {html.escape(pos)}, layer {html.escape(layer)}</summary>"
                           + _table(["Latent", "Coefficient", "Frequency", "Corr. with is_correct",
                                     "Mean activation", "Its top problem"], top) + "</details>")
    settings = probe["settings"]
    warnings = []
    for note, sites in unprobed(probe).items():
        listed = ", ".join(sites[:6]) + (", ..." if len(sites) > 6 else "")
        warnings.append(f"No probe at {len(sites)} of {len(rows)} sites ({listed}; position:layer): {note}.")
    ungraded = max((site.get("ungraded", 0) for by_pos in probe["sites"].values() for site in by_pos.values()),
                   default=0)
    if ungraded:
        warnings.append(f"{ungraded} problem(s) are not graded (is_correct null or missing): the probes leave them "
                        "out, and 'Problems' counts the others.")
    body = (_warnings(warnings) + f"<p>{html.escape(PROBE_GUIDE)}</p><p>Settings: {settings['folds']} folds, "
            f"C = {settings['C']:g}, seed {settings['seed']}.</p>" + _table(headers, rows)
            + "<h2>Top latents per site (by |coefficient| of the codes probe, standardised)</h2>"
            + ("".join(details) or "<p>None: no site was probed.</p>"))
    return _page("Error prediction: is_correct from each site", dataset, body)


def write_probe_page(probe_json: str | os.PathLike, catalogue_files: list[str | os.PathLike],
                     dataset_json: str | os.PathLike, out: str | os.PathLike) -> None:
    catalogues = {}
    for path in catalogue_files:
        doc = read_json(path)
        catalogues[(doc["position"], doc["layer"])] = doc
    write_text(out, probe_page(read_json(probe_json), catalogues, read_json(dataset_json)))

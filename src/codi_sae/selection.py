"""Pick the sweet spot of a (d, K) sweep and write the analysis summary.

A sweep at several sites ranks each config by its means over the sites: one sweet spot for all.

Rule: among configs whose ``metric`` (the seed's explained variance by default, or the standard
one) reaches ``min_explained_variance``, the lowest feature death rate; ties go to the higher
metric, then the smaller d, then the smaller K. If no config qualifies, the highest metric wins
(ties: lower death rate, smaller d, smaller K) and the summary says that none qualified. A
config whose metric is not a number (a constant site) never qualifies and ranks last.
"""

from __future__ import annotations

import math
import os

from .atomic import load_json, write_json, write_text
from .compare import beside

METRIC_COLUMNS = (  # (header, key, format): an SAE's metrics beside its baselines, in every table of SAEs
    ("EV (seed)", "explained_variance", "{:.4f}"), ("PCA-K EV (seed)", "pca_explained_variance", "{:.4f}"),
    ("Mean-only EV (seed)", "mean_only_explained_variance", "{:.4f}"),
    ("EV (std)", "explained_variance_std", "{:.4f}"), ("PCA-K EV (std)", "pca_explained_variance_std", "{:.4f}"),
    ("FVU", "fvu", "{:.4f}"), ("PCA-K FVU", "pca_fvu", "{:.4f}"), ("Mean-only FVU", "mean_only_fvu", "{:.4f}"),
    ("FVU - PCA-K FVU", "fvu_minus_pca_fvu", "{:+.4f}"), ("MSE", "reconstruction_loss", "{:.4g}"),
    ("Cosine", "cosine_similarity", "{:.4f}"), ("Death rate", "feature_death_rate", "{:.1%}"),
    ("Dead", "num_dead_features", "{}"), ("Top dim. share", "top_dimension_share", "{:.1%}"),
)
COLUMNS = (  # (header, key in a row, format)
    ("Rank", "rank", "{}"), ("Recipe", "recipe", "{}"), ("d", "d", "{}"), ("K", "k", "{}"),
    ("K/d", "sparsity", "{:.1%}"), ("Epochs", "epochs", "{}"),
    *METRIC_COLUMNS, ("Train s", "train_time_sec", "{:.1f}"), ("Warning", "warning", "{}"),
)


def cell(fmt: str, value) -> str:
    """``value`` formatted for a table; an empty cell for None (no warning, undefined ratio)."""
    return "" if value is None else fmt.format(value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def rank_configs(rows: list[dict], min_ev: float, metric: str = "explained_variance") -> tuple[list[dict], bool]:
    """Rows sorted best first by the rule above, and whether the best one qualified."""
    value = lambda r: r[metric] if _number(r[metric]) else -math.inf  # noqa: E731
    qualified = [r for r in rows if value(r) >= min_ev]
    others = [r for r in rows if not value(r) >= min_ev]
    by_death = lambda r: (r["feature_death_rate"], -value(r), r["d"], r["k"])  # noqa: E731
    by_value = lambda r: (-value(r), r["feature_death_rate"], r["d"], r["k"])  # noqa: E731
    ranked = sorted(qualified, key=by_death) + sorted(others, key=by_value)
    return [{**r, "rank": i + 1} for i, r in enumerate(ranked)], bool(qualified)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(f, r[k]) for _, k, f in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def mean_over_sites(rows: list[dict]) -> dict:
    """One config's rows at several sites as one: a value that differs between sites is its
    mean (None if any site's is None), the warnings are joined with their sites."""
    if len(rows) == 1:
        return rows[0]
    out = {**rows[0], "position": None, "layer": None}
    for key, value in out.items():
        values = [r[key] for r in rows]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and any(v != value for v in values):
            out[key] = None if None in values else sum(values) / len(values)
    warnings = [f"position {r['position']}, layer {r['layer']}: {r['warning']}" for r in rows if r["warning"]]
    out["warning"] = "; ".join(warnings) or None
    return out


def where(summary: dict) -> str:
    """Where the sweep ran, for headings."""
    sites = summary["sites"]
    if len(sites) == 1:
        return f"position {sites[0]['position']}, layer {sites[0]['layer']}"
    return f"{len(sites)} sites (means over the sites)"


def analyze_sweep(metric_files: list[list[str | os.PathLike]], entries: list[dict], baselines_json: str | os.PathLike,
                  selection: dict, summary_out, table_out, choice_out) -> dict:
    """Rank the sweep entries (``entries[i]``'s metrics in the files ``metric_files[i]``, one per
    sweep site, the same sites for every entry) beside their baselines; write the summary, the
    table and the chosen entry (``{"d", "k", "recipe"}``, and ``epochs`` if the entry set them)."""
    metric, min_ev = selection["metric"], selection["min_explained_variance"]
    baselines = load_json(baselines_json, "sites")
    rows, per_site = [], []
    for paths, entry in zip(metric_files, entries):
        site_rows = []
        for path in paths:
            result = load_json(path, "config", "metrics")
            cfg, metrics = result["config"], result["metrics"]
            site_rows.append({"entry": entry, "recipe": cfg["recipe"], "d": cfg["latent_dim"], "k": cfg["k"],
                              "sparsity": cfg["k"] / cfg["latent_dim"], "position": cfg["position"],
                              "layer": cfg["layer"], **metrics,
                              **beside(metrics, cfg, baselines, str(baselines_json))})
        rows.append(mean_over_sites(site_rows))
        per_site.append(site_rows)
    ranked, qualified = rank_configs(rows, min_ev, metric)
    best = ranked[0]
    sites = [{"position": r["position"], "layer": r["layer"]} for r in per_site[0]]
    label = lambda r: f"d={r['d']}, K={r['k']} ({r['recipe']} recipe, {r['epochs']} epochs)"  # noqa: E731
    if qualified:
        n_ok = sum(_number(r[metric]) and r[metric] >= min_ev for r in ranked)
        rationale = (f"{n_ok} of {len(ranked)} configs reach {metric} >= {min_ev:g}; among them {label(best)} "
                     f"has the lowest feature death rate ({best['feature_death_rate']:.1%}) with {metric} "
                     f"{best[metric]:.4f}.")
    else:
        rationale = (f"No config reaches {metric} >= {min_ev:g}; {label(best)} is chosen for the highest "
                     f"{metric} ({cell('{:.4f}', best[metric]) or 'undefined'}).")
    warnings = [f"{label(r)}: {r['warning']}" for r in ranked if r["warning"]]
    if len(warnings) == len(ranked):
        rationale += " Every config has a warning: none reconstructs clearly better than the mean-only model."
    table = markdown_table(ranked)
    summary = {
        **({"site": sites[0]} if len(sites) == 1 else {}),
        "sites": sites,
        "selection_rule": {
            "metric": metric,
            "min_explained_variance": min_ev,
            "rule": __doc__.split("\n\n")[1].replace("\n", " "),
        },
        "sweet_spot": {"d": best["d"], "k": best["k"], "recipe": best["recipe"], "metrics": best},
        "any_config_qualified": qualified,
        "rationale": rationale,
        "warnings": warnings,
        "configs": ranked,
        "comparison_table_markdown": table,
    }
    if len(sites) > 1:  # each config at each site, in the order of ``configs``
        summary["per_site"] = [next(s for s in per_site if s[0]["entry"] == r["entry"]) for r in ranked]
    write_json(summary_out, summary)
    heading = f"# Sweep at {where(summary)}\n\n"
    notes = "".join(f"- WARNING {w}\n" for w in warnings)
    write_text(table_out, f"{heading}{rationale}\n\n{table}" + (f"\n{notes}" if notes else ""))
    write_json(choice_out, best["entry"])
    return summary

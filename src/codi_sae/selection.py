"""Pick the sweet spot of a (d, K) sweep and write the analysis summary.

Rule: among configs with explained variance (the seed's definition) >= ``min_explained_variance``,
the lowest feature death rate; ties go to the higher explained variance, then the smaller d,
then the smaller K. If no config qualifies, the highest explained variance wins (ties: lower
death rate, smaller d, smaller K) and the summary says that none qualified.
"""

from __future__ import annotations

import os

from .atomic import read_json, write_json, write_text

COLUMNS = (  # (header, key in a row, format)
    ("Rank", "rank", "{}"), ("d", "d", "{}"), ("K", "k", "{}"), ("Sparsity K/d", "sparsity", "{:.1%}"),
    ("EV (seed)", "explained_variance", "{:.4f}"), ("EV (std)", "explained_variance_std", "{:.4f}"),
    ("FVU", "fvu", "{:.4f}"), ("MSE", "reconstruction_loss", "{:.4g}"),
    ("Cosine", "cosine_similarity", "{:.4f}"), ("Death rate", "feature_death_rate", "{:.1%}"),
    ("Dead", "num_dead_features", "{}"), ("Train s", "train_time_sec", "{:.1f}"),
)


def chosen_config(fixed: dict | None, choice_json: str | os.PathLike | None) -> dict:
    """``{"d", "k"}`` of the sites: the fixed ``sites.config`` if given, else the sweep's choice."""
    if fixed:
        return {"d": fixed["d"], "k": fixed["k"]}
    return read_json(choice_json)


def rank_configs(rows: list[dict], min_ev: float) -> tuple[list[dict], bool]:
    """Rows sorted best first by the rule above, and whether the best one qualified."""
    qualified = [r for r in rows if r["explained_variance"] >= min_ev]
    others = [r for r in rows if r["explained_variance"] < min_ev]
    by_death = lambda r: (r["feature_death_rate"], -r["explained_variance"], r["d"], r["k"])  # noqa: E731
    by_ev = lambda r: (-r["explained_variance"], r["feature_death_rate"], r["d"], r["k"])  # noqa: E731
    ranked = sorted(qualified, key=by_death) + sorted(others, key=by_ev)
    return [{**r, "rank": i + 1} for i, r in enumerate(ranked)], bool(qualified)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(f.format(r[k]) for _, k, f in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def analyze_sweep(metric_files: list[str | os.PathLike], min_ev: float, summary_out, table_out,
                  choice_out) -> dict:
    """Read each config's metrics JSON, rank them, write the summary, table and chosen {d, k}."""
    rows = []
    for path in metric_files:
        result = read_json(path)
        cfg, metrics = result["config"], result["metrics"]
        rows.append({"d": cfg["latent_dim"], "k": cfg["k"], "sparsity": cfg["k"] / cfg["latent_dim"], **metrics})
    ranked, qualified = rank_configs(rows, min_ev)
    best = ranked[0]
    site = {"position": result["config"]["position"], "layer": result["config"]["layer"]}
    if qualified:
        n_ok = sum(r["explained_variance"] >= min_ev for r in ranked)
        rationale = (f"{n_ok} of {len(ranked)} configs reach explained variance >= {min_ev:g}; among them "
                     f"d={best['d']}, K={best['k']} has the lowest feature death rate "
                     f"({best['feature_death_rate']:.1%}) with explained variance {best['explained_variance']:.4f}.")
    else:
        rationale = (f"No config reaches explained variance >= {min_ev:g}; d={best['d']}, K={best['k']} is "
                     f"chosen for the highest explained variance ({best['explained_variance']:.4f}).")
    table = markdown_table(ranked)
    summary = {
        "site": site,
        "selection_rule": {
            "min_explained_variance": min_ev,
            "rule": __doc__.split("\n\n")[1].replace("\n", " "),
        },
        "sweet_spot": {"d": best["d"], "k": best["k"], "metrics": best},
        "any_config_qualified": qualified,
        "rationale": rationale,
        "configs": ranked,
        "comparison_table_markdown": table,
    }
    write_json(summary_out, summary)
    heading = f"# Sweep at position {site['position']}, layer {site['layer']}\n\n"
    write_text(table_out, f"{heading}{rationale}\n\n{table}")
    write_json(choice_out, {"d": best["d"], "k": best["k"]})
    return summary

"""The sweet spot at every site: which config, and every site's metrics in one file."""

from __future__ import annotations

import os
import statistics

from .atomic import read_json, write_json

SUMMARY_METRICS = ("explained_variance", "explained_variance_std", "feature_death_rate", "reconstruction_loss")


def sweet_spot_config(fixed: dict | None, choice_json: str | os.PathLike | None) -> dict:
    """``{"d", "k"}``: the fixed ``sites.config`` if given, else the sweep's choice."""
    if fixed:
        return {"d": fixed["d"], "k": fixed["k"]}
    return read_json(choice_json)


def collect_site_metrics(json_files: list[str | os.PathLike], dataset_json: str | os.PathLike,
                         out: str | os.PathLike) -> dict:
    """``{"config", "dataset", "results": {"<layer>": {"<pos>": metrics}}, "statistics"}``."""
    results: dict[str, dict[str, dict]] = {}
    config = None
    for path in json_files:
        site = read_json(path)
        cfg = site["config"]
        results.setdefault(str(cfg["layer"]), {})[str(cfg["position"])] = site["metrics"]
        config = {k: v for k, v in cfg.items() if k not in ("position", "layer")}
    dataset = read_json(dataset_json)
    everything = [m for by_pos in results.values() for m in by_pos.values()]
    stats = {}
    for key in SUMMARY_METRICS:
        values = [m[key] for m in everything]
        stats[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }
    summary = {"config": config, "dataset": dataset, "n_sites": len(everything), "results": results,
               "statistics": stats}
    write_json(out, summary)
    return summary

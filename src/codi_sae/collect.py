"""Every site's metrics in one file, with statistics over the sites."""

from __future__ import annotations

import os
import statistics

from .atomic import read_json, write_json
from .errors import InputError

SUMMARY_METRICS = ("explained_variance", "explained_variance_std", "feature_death_rate", "reconstruction_loss")
SAME_SAE = ("input_dim", "latent_dim", "k", "recipe")  # config keys that must agree across sites


def collect_site_metrics(json_files: list[str | os.PathLike], dataset_json: str | os.PathLike,
                         out: str | os.PathLike) -> dict:
    """``{"config", "dataset", "n_sites", "results": {"<layer>": {"<pos>": metrics}}, "statistics"}``.

    ``config`` holds the settings every site shares; one that differs between sites (such as
    ``sites_trained_together`` when the last batch is smaller) is null there and stays in each
    site's own file. Sites of different SAEs (d, K, input dim, recipe) are refused.
    """
    results: dict[str, dict[str, dict]] = {}
    config: dict = {}
    for i, path in enumerate(json_files):
        site = read_json(path)
        cfg = {k: v for k, v in site["config"].items() if k not in ("position", "layer")}
        if i == 0:
            config, first = cfg, path
        for key in SAME_SAE:
            if cfg.get(key) != config.get(key):
                raise InputError(f"{path}: {key}={cfg.get(key)!r}, but {first} has {config.get(key)!r}")
        config.update({key: None for key, value in config.items() if cfg.get(key) != value})
        results.setdefault(str(site["config"]["layer"]), {})[str(site["config"]["position"])] = site["metrics"]
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

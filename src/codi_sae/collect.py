"""Every site's metrics in one file, beside the baselines, with statistics over the sites."""

from __future__ import annotations

import os
import statistics

from .atomic import load_json, read_json, write_json
from .compare import beside
from .errors import InputError

SUMMARY_METRICS = ("explained_variance", "explained_variance_std", "fvu", "feature_death_rate",
                   "reconstruction_loss")
BASELINE_SUMMARY = ("pca_fvu", "mean_only_fvu", "fvu_minus_pca_fvu")
SAME_SAE = ("input_dim", "latent_dim", "k", "recipe")  # config keys that must agree across sites


def collect_site_metrics(json_files: list[str | os.PathLike], dataset_json: str | os.PathLike,
                         baselines_json: str | os.PathLike, out: str | os.PathLike) -> dict:
    """``{"config", "dataset", "n_sites", "results": {"<layer>": {"<pos>": metrics}}, "baselines":
    {"<layer>": {"<pos>": compare.beside(...)}}, "warnings", "statistics"}``.

    ``config`` holds the settings every site shares; one that differs between sites (such as
    ``sites_trained_together`` when the last batch is smaller) is null there and stays in each
    site's own file. Sites of different SAEs (d, K, input dim, recipe) are refused. Statistics
    are over the sites where the metric is defined (``n``).
    """
    results: dict[str, dict[str, dict]] = {}
    compared: dict[str, dict[str, dict]] = {}
    config: dict = {}
    baselines = load_json(baselines_json, "sites")
    warnings = []
    for i, path in enumerate(json_files):
        site = load_json(path, "config", "metrics")
        cfg = {k: v for k, v in site["config"].items() if k not in ("position", "layer")}
        if i == 0:
            config, first = cfg, path
        for key in SAME_SAE:
            if cfg.get(key) != config.get(key):
                raise InputError(f"{path}: {key}={cfg.get(key)!r}, but {first} has {config.get(key)!r}")
        config.update({key: None for key, value in config.items() if cfg.get(key) != value})
        position, layer = site["config"]["position"], site["config"]["layer"]
        results.setdefault(str(layer), {})[str(position)] = site["metrics"]
        base = beside(site["metrics"], site["config"], baselines, str(baselines_json))
        compared.setdefault(str(layer), {})[str(position)] = base
        if base["warning"]:
            warnings.append(f"position {position}, layer {layer}: {base['warning']}")
    dataset = read_json(dataset_json)
    sites = [(layer, pos) for layer, by_pos in results.items() for pos in by_pos]
    stats = {}
    for key in SUMMARY_METRICS + BASELINE_SUMMARY:
        source = results if key in SUMMARY_METRICS else compared
        values = [source[layer][pos][key] for layer, pos in sites if source[layer][pos][key] is not None]
        stats[key] = {
            "n": len(values),
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values, default=None),
            "max": max(values, default=None),
        }
    summary = {"config": config, "dataset": dataset, "n_sites": len(sites), "results": results,
               "baselines": compared, "warnings": warnings, "statistics": stats}
    write_json(out, summary)
    return summary

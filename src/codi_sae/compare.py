"""Every SAE's numbers beside its baselines (the mean-only model, PCA with the same K), and a
warning where the SAE learned little beyond the mean.

Light on imports: the analysis, collection and table jobs use it.
"""

from __future__ import annotations

import math
import os
import re

from .atomic import read_json
from .errors import InputError

BASELINE_METRICS = ("explained_variance", "explained_variance_std", "fvu", "reconstruction_loss")
LEARNED_LITTLE_FVU = 0.99  # an FVU above this explains under 1% of the variance around the mean
# Fewer optimiser steps than this, in an SAE that learned little: the warning suggests more epochs.
# On the demo's sweep site the seed recipe's FVU went 1.07, 0.75, 0.69 after 100, 400, 1000 steps
# (mean-only 1.007, PCA-150 0.349).
FEW_STEPS = 1000
DOMINANT_SHARE = 0.5  # a site whose top dimension holds more of its variance: FVU mostly measures that one


def beside(metrics: dict, config: dict, baselines: dict, source: str = "the baselines") -> dict:
    """The baselines of the SAE of ``metrics`` and ``config`` (its checkpoint's: position, layer,
    k, recipe, epochs, batch_size, n_train) at its site of ``baselines`` (the baselines job's JSON,
    read from ``source``), flat: ``mean_only_<metric>``, ``top_dimension_share``, ``pca_k``,
    ``pca_n_components``, ``pca_<metric>``, ``fvu_minus_pca_fvu``, and ``warning`` (null when all
    is well). Baselines without this site or K raise an InputError."""
    position, layer, k = config["position"], config["layer"], config["k"]
    try:
        site = baselines["sites"][str(layer)][str(position)]
        pca = site["pca"][str(k)]
    except (KeyError, TypeError):
        raise InputError(f"{source}: no PCA-{k} baseline at position {position}, layer {layer} (it has K in "
                         f"{baselines.get('ks')}): made for another sweep or sweet spot? Rerun its rule "
                         "(snakemake -R baselines)") from None
    out = {f"mean_only_{m}": site["mean_only"][m] for m in BASELINE_METRICS}
    out["top_dimension_share"] = site.get("top_dimension_share")  # None in an older version's file
    out.update({"pca_k": k, "pca_n_components": pca["n_components"]})
    out.update({f"pca_{m}": pca[m] for m in BASELINE_METRICS})
    fvu = metrics["fvu"]
    out["fvu_minus_pca_fvu"] = None if fvu is None or pca["fvu"] is None else fvu - pca["fvu"]
    out["warning"] = warning(fvu, out["mean_only_fvu"], config.get("recipe"), optimiser_steps(config))
    return out


def optimiser_steps(config: dict) -> int | None:
    """The optimiser steps an SAE took in all (epochs x batches per epoch), from its checkpoint's
    config; None where it does not say (an older version's file)."""
    if not all(isinstance(config.get(key), int) for key in ("epochs", "batch_size", "n_train")):
        return None
    return config["epochs"] * math.ceil(config["n_train"] / config["batch_size"])


def learned_little(fvu: float | None) -> bool:
    """Whether an SAE of this FVU gets a ``warning``: no variance to explain, or under 1% of it explained."""
    return fvu is None or fvu > LEARNED_LITTLE_FVU


def warning(fvu: float | None, mean_only_fvu: float | None, recipe: str | None = None,
            steps: int | None = None) -> str | None:
    """Why this SAE's reconstruction should not be trusted, or None; for the seed recipe, and for
    an SAE that took under ``FEW_STEPS`` optimiser ``steps``, what to try."""
    if not learned_little(fvu):
        return None
    if fvu is None:
        return "the activations here do not vary: there is no variance to explain"
    if mean_only_fvu is not None and fvu > mean_only_fvu:
        why = (f"FVU {fvu:.3f} > {LEARNED_LITTLE_FVU}, above the mean-only model's {mean_only_fvu:.3f}: the SAE "
               "reconstructs the data worse than predicting every row as the training mean")
    else:
        why = (f"FVU {fvu:.3f} > {LEARNED_LITTLE_FVU}: the SAE explains under 1% of the variance around the "
               "per-dimension mean, which the mean-only model predicts"
               + ("" if mean_only_fvu is None else f" (FVU {mean_only_fvu:.3f})"))
    if recipe == "seed":
        why += ("; the seed recipe (decoder bias not started at the training mean, unscaled inputs) often ends "
                "here when the activations' means are far from zero: try sae.recipe: topk")
    if steps is not None and steps < FEW_STEPS:
        why += (f"; it took only {steps} optimiser steps (epochs x batches of train.batch_size rows): more "
                "epochs (train.epochs) often help")
    return why


def unprobed(probe: dict) -> dict[str, list[str]]:
    """The probe file's notes (why a site has no scores, e.g. every problem in one class), each
    with its sites as ``"position:layer"``."""
    out: dict[str, list[str]] = {}
    for layer, by_pos in sorted(probe.get("sites", {}).items(), key=lambda kv: int(kv[0])):
        for pos, site in sorted(by_pos.items(), key=lambda kv: int(kv[0])):
            if site.get("note"):
                out.setdefault(site["note"], []).append(f"{pos}:{layer}")
    return out


def _quoted_fvu(text: str) -> float:
    """The highest SAE FVU a warning (``warning``'s text, after its place) quotes; -inf for none."""
    return max((float(v) for v in re.findall(r"FVU (\d+\.\d+) >", text)), default=-math.inf)


def run_notes(sweep_summary: str | os.PathLike, sites_summary: str | os.PathLike,
              cross_layer: str | os.PathLike | None = None, probe: str | os.PathLike | None = None) -> list[str]:
    """For the end of a run, from the sweep's ``analysis_summary.json``, the sites'
    ``metrics_all.json``, ``cross_layer.json`` and the probe's ``metrics.json`` (each where it exists
    yet): a WARNING line counting the SAEs with a warning, with the worst one (highest FVU) and the
    files that list them all; a NOTE line counting the SAEs that PCA with the same K reconstructs
    better, and by how much; a NOTE line counting the sites where one dimension holds most of the
    variance; on the synthetic demo a NOTE line with the share of its planted features the
    sites' SAEs found; and a NOTE line for the sites that could not be probed, and why. No line
    where there is nothing to say. A file of an older version, without some of these keys, counts
    as having none."""
    warned, beaten, gaps, files, flagged, top_shares = [], [], [], [], [], []
    for path, what in ((sweep_summary, "sweep configs"), (sites_summary, "sites")):
        if not os.path.exists(path):
            continue
        doc = read_json(path)
        if what == "sites":
            rows = [row for by_pos in doc.get("baselines", {}).values() for row in by_pos.values()]
            total = doc["n_sites"]
            top_shares = [s for s in (row.get("top_dimension_share") for row in rows) if s is not None]
        else:
            rows, total = doc["configs"], len(doc["configs"])
        if doc.get("warnings"):
            warned.append(f"{len(doc['warnings'])} of {total} {what}")
            files.append(str(path))
            flagged += doc["warnings"]
        worse = [gap for gap in (row.get("fvu_minus_pca_fvu") for row in rows) if (gap or 0) > 0]
        if worse:
            beaten.append(f"{len(worse)} of {total} {what}")
            gaps += worse
    notes = []
    if warned:
        notes.append(f"WARNING: {' and '.join(warned)} have an SAE that learned little beyond the per-dimension "
                     f"mean. The worst: {max(flagged, key=_quoted_fvu)}. All: {', '.join(files)}")
    if beaten:
        notes.append(f"NOTE: PCA with the same K reconstructs the validation rows better than the SAE for "
                     f"{' and '.join(beaten)} (FVU lower by {min(gaps):.3f} to {max(gaps):.3f}; the tables' "
                     "'FVU - PCA-K FVU' column). It can, most of all with few training rows per site: README, 'Where "
                     "PCA-K still reconstructs better'")
    dominated = [s for s in top_shares if s > DOMINANT_SHARE]
    if dominated:
        notes.append(f"NOTE: at {len(dominated)} of {len(top_shares)} sites one dimension holds over "
                     f"{DOMINANT_SHARE:.0%} of the variance (up to {max(dominated):.1%}; the tables' 'Top dim. share'"
                     "): FVU and EV there mostly measure how well that dimension is reconstructed. README, "
                     "'Baselines and warnings'")
    planted = read_json(cross_layer).get("planted") if cross_layer and os.path.exists(cross_layer) else None
    shares = [site["share_above_0_9"] for by_pos in (planted or {}).get("sites", {}).values()
              for site in by_pos.values() if site.get("share_above_0_9") is not None]
    if shares:
        found = f"{min(shares):.0%}" + (f" to {max(shares):.0%}" if max(shares) > min(shares) else "")
        notes.append(f"NOTE: SYNTHETIC demo: the sites' SAEs found {found} of the "
                     f"demo's {planted['n_features']} planted features per layer (a decoder direction at cosine "
                     "> 0.9; results/plots/planted.png). A low FVU does not mean they were found: README, "
                     "'Which recipe when'")
    probed = read_json(probe) if probe and os.path.exists(probe) else {}
    n_sites = sum(map(len, probed.get("sites", {}).values()))
    for why, where in unprobed(probed).items():
        notes.append(f"NOTE: no error prediction at {len(where)} of {n_sites} sites: {why} ({probe})")
    return notes

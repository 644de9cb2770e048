"""The seed's claim "odd positions (1, 3, 5) are easier to reconstruct than even ones (0, 2, 4)", tested per layer.

Definitions, for each metric (the per-site ``explained_variance``, ``explained_variance_std``,
``fvu`` and ``feature_death_rate`` of ``metrics_all.json``, and ``probe_auroc_codes``, the
probe file's ``sites[layer][position].models.codes.auroc.mean``, when a probe file is given):

- odd / even positions: the data's positions p with p odd / even (position 0 is even).
- per layer: ``odd``, the mean of the metric over the layer's odd positions; ``even``, over its
  even positions; None values (a constant site, a site the probe file lacks) are skipped, and a
  mean over no value is None. ``difference = odd - even`` where both are defined, else None.
- ``n_layers``: the layers with a difference. ``odd_better_layers``: those where odd is better:
  difference > 0 for metrics where higher is better (the EVs, AUROC), < 0 where lower is
  better (FVU, death rate).
- ``p_value``: two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, its defaults:
  zero differences dropped; p exact for small samples, by all sign permutations when
  differences tie) of the per-layer differences against 0, paired by layer. None, with a
  ``note`` saying why, when ``n_layers`` < 2 or every difference is zero, or when no site has a
  value (for the probe AUROC, with the probe's own note, e.g. every problem in one class).
- ``verdict``: supporting when p < 0.05 and the signed-rank sum favours odd positions;
  contradicting when p < 0.05 and it favours even ones; otherwise not supporting. FVU and EV
  (std) are one quantity (EV (std) = 1 - FVU), so their tests agree. The death rate and the
  probe AUROC are not reconstruction metrics: their verdicts say which positions do better,
  not whether the claim holds.
- ``favours``: ``odd`` or ``even`` where the test finds a difference at the 5% level, else None.
- ``caveats``: what a reader must know before trusting the verdicts: the sites where the SAE
  learned little beyond the per-dimension mean (``compare.learned_little``: the sites
  ``metrics_all.json`` warns about), and a seed's explained variance
  that favours other positions than the standard one (it counts the spread between the
  per-dimension means as explained).
"""

from __future__ import annotations

import html
import os
import statistics

from scipy.stats import rankdata, wilcoxon

from .atomic import read_json, write_json, write_text
from .compare import LEARNED_LITTLE_FVU, learned_little, unprobed
from .errors import InputError
from .selection import cell
from .tables import _page, _table

CLAIM = "odd positions are easier to reconstruct (seed)"
TEST = "Wilcoxon signed-rank, two-sided, paired by layer"
ALPHA = 0.05
SITE_METRICS = ("explained_variance", "explained_variance_std", "fvu", "feature_death_rate")
PROBE_METRIC = "probe_auroc_codes"
# metric -> (higher is better, what "better" means, whether it measures reconstruction)
METRICS = {
    "explained_variance": (True, "higher explained variance", True),
    "explained_variance_std": (True, "higher EV (std)", True),
    "fvu": (False, "lower FVU", True),
    "feature_death_rate": (False, "lower feature death rate", False),
    PROBE_METRIC: (True, "higher codes-probe AUROC", False),
}


def _site_values(metrics_all: dict, probe: dict | None, source: str, probe_source: str) -> dict:
    """``{metric: {layer: {position: value or None}}}`` with int layers and positions."""
    if "results" not in metrics_all:
        raise InputError(f"{source}: no 'results'")
    values: dict[str, dict[int, dict[int, float | None]]] = {name: {} for name in SITE_METRICS}
    for layer, by_pos in metrics_all["results"].items():
        for pos, metrics in by_pos.items():
            for name in SITE_METRICS:
                if name not in metrics:
                    raise InputError(f"{source}: results -> {layer} -> {pos} has no {name!r}")
                values[name].setdefault(int(layer), {})[int(pos)] = metrics[name]
    if probe is not None:
        if "sites" not in probe:
            raise InputError(f"{probe_source}: no 'sites'")
        values[PROBE_METRIC] = {layer: {} for layer in values["fvu"]}
        for layer, by_pos in probe["sites"].items():
            for pos, site in by_pos.items():
                try:
                    auroc = site["models"]["codes"]["auroc"]["mean"]
                except (KeyError, TypeError):
                    raise InputError(f"{probe_source}: sites -> {layer} -> {pos} has no models -> codes -> auroc "
                                     "-> mean") from None
                values[PROBE_METRIC].setdefault(int(layer), {})[int(pos)] = auroc
    return values


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def _compare(by_layer: dict[int, dict[int, float | None]], odd: list[int], even: list[int], name: str,
             why_none: str | None = None) -> dict:
    """One metric's per-layer odd and even means and the paired test (see the module); ``why_none``
    says why a metric has no value at any site, where that is known."""
    higher, better, reconstruction = METRICS[name]
    per_layer, diffs = {}, []
    for layer in sorted(by_layer):
        site = by_layer[layer]
        o, e = _mean([site.get(p) for p in odd]), _mean([site.get(p) for p in even])
        difference = o - e if o is not None and e is not None else None
        per_layer[str(layer)] = {"odd": o, "even": e, "difference": difference}
        if difference is not None:
            diffs.append(difference if higher else -difference)  # > 0: odd is better
    n, odd_better = len(diffs), sum(d > 0 for d in diffs)
    result = {"per_layer": per_layer, "n_layers": n, "odd_better_layers": odd_better, "p_value": None, "test": TEST,
              "note": None, "favours": None}
    if not odd or not even:
        result["note"] = "no even/odd comparison: the data have " + ("no odd" if not odd else "no even") + " position"
        result["verdict"] = f"No even/odd comparison: the data have positions {sorted(odd + even)} only."
        return result
    if all(v is None for site in by_layer.values() for v in site.values()):
        result["note"] = "no site has a value" + (f": {why_none}" if why_none else "")
        result["verdict"] = f"No even/odd comparison: {result['note']}."
        return result
    counts = f"Odd positions are better ({better}) at {odd_better} of {n} layers"
    if n < 2 or not any(diffs):
        result["note"] = ("fewer than 2 layers have both an odd and an even mean" if n < 2
                          else "every per-layer difference is zero")
        cannot = ": the data cannot test the seed's claim" if reconstruction else ""
        result["verdict"] = f"{counts}; no Wilcoxon test ({result['note']}){cannot}."
        return result
    p = float(wilcoxon(diffs).pvalue)
    nonzero = [d for d in diffs if d != 0]
    signed_ranks = sum(r if d > 0 else -r for d, r in zip(nonzero, rankdata([abs(d) for d in nonzero])))
    smallest = 2 / 2 ** len(nonzero)  # every difference of one sign: the exact test's smallest p
    significant = p < ALPHA and smallest < ALPHA
    if smallest >= ALPHA:
        result["note"] = (f"with {len(nonzero)} layers the test cannot reach the 5% level: its smallest possible "
                          f"p is {smallest:.3g}")
        conclusion = result["note"] + (": the data cannot test the seed's claim" if reconstruction else "")
    elif reconstruction:
        conclusion = ("the data do not support the seed's claim at the 5% level" if not significant
                      else "the data support the seed's claim at the 5% level" if signed_ranks > 0
                      else "the data contradict the seed's claim: even positions are better at the 5% level")
    else:
        conclusion = ("no significant odd/even difference at the 5% level" if not significant
                      else f"{'odd' if signed_ranks > 0 else 'even'} positions are better at the 5% level")
        conclusion += " (not a reconstruction metric: it does not test the claim directly)"
    result["p_value"] = p
    result["favours"] = ("odd" if signed_ranks > 0 else "even") if significant else None
    result["verdict"] = f"{counts}; Wilcoxon p = {p:.3g}: {conclusion}."
    return result


def _caveats(fvu: dict[int, dict[int, float | None]], metrics: dict) -> list[str]:
    """The module's ``caveats``, from every site's FVU and the metrics' results."""
    sites = [v for by_pos in fvu.values() for v in by_pos.values()]
    little = sum(map(learned_little, sites))
    caveats = []
    if little:
        caveats.append(f"At {little} of {len(sites)} sites the SAE learned little beyond the per-dimension mean "
                       f"(FVU above {LEARNED_LITTLE_FVU}, or no variance; see the warnings of metrics_all.json): "
                       "there, the reconstruction metrics compare SAEs that did not learn the data.")
    seed, std = metrics["explained_variance"]["favours"], metrics["fvu"]["favours"]
    if seed != std:
        def finding(side):
            return f"{side} positions better" if side else "no difference at the 5% level"

        caveats.append(f"The seed's explained variance finds {finding(seed)}, the standard one (1 - FVU) "
                       f"{finding(std)}: the seed's definition counts the spread between the per-dimension means "
                       "as explained. Read FVU.")
    return caveats


def position_specialisation(metrics_all: dict, probe: dict | None, *, source: str = "metrics_all",
                            probe_source: str = "probe") -> dict:
    """Odd against even positions per layer, for each metric, with a paired test across layers (see the module).

    ``source`` and ``probe_source`` name the inputs in error messages. Returns ``{"metrics":
    {name: {"per_layer", "n_layers", "odd_better_layers", "p_value", "test", "note", "favours", "verdict"}},
    "claim", "positions": {"odd", "even"}, "caveats"}``.
    """
    values = _site_values(metrics_all, probe, source, probe_source)
    positions = sorted({p for by_pos in values["fvu"].values() for p in by_pos})
    odd, even = [p for p in positions if p % 2], [p for p in positions if p % 2 == 0]
    why_none = {PROBE_METRIC: "; ".join(unprobed(probe or {})) or None}
    metrics = {name: _compare(by_layer, odd, even, name, why_none.get(name)) for name, by_layer in values.items()}
    return {"metrics": metrics, "claim": CLAIM, "positions": {"odd": odd, "even": even},
            "caveats": _caveats(values["fvu"], metrics)}


def write_positions(metrics_all_json: str | os.PathLike, probe_json: str | os.PathLike | None,
                    out_json: str | os.PathLike, dataset_json: str | os.PathLike | None = None,
                    page_html: str | os.PathLike | None = None) -> dict:
    """``position_specialisation`` of the files (no probe file: None), written to ``out_json``; with
    ``page_html``, also the tables as a report page on the data of ``dataset_json``."""
    probe = read_json(probe_json) if probe_json is not None else None
    result = position_specialisation(read_json(metrics_all_json), probe, source=str(metrics_all_json),
                                     probe_source=str(probe_json))
    write_json(out_json, result)
    if page_html is not None:
        dataset = read_json(dataset_json) if dataset_json is not None else {}
        write_text(page_html, _page("Odd against even thought positions", dataset, positions_table_html(result)))
    return result


def positions_table_html(result: dict) -> str:
    """An HTML body fragment: per metric, the verdict and a table of layer x (odd, even, odd - even)."""
    pos = result["positions"]
    parts = [f"<p>Claim: {html.escape(result['claim'])}. "
             f"Odd positions: {html.escape(', '.join(map(str, pos['odd'])) or 'none')}; "
             f"even positions: {html.escape(', '.join(map(str, pos['even'])) or 'none')}.</p>"]
    parts += [f"<p><strong>Caveat:</strong> {html.escape(caveat)}</p>" for caveat in result["caveats"]]
    for name, m in result["metrics"].items():
        rows = [[layer, cell("{:.4f}", r["odd"]), cell("{:.4f}", r["even"]), cell("{:+.4f}", r["difference"])]
                for layer, r in m["per_layer"].items()]
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(m['verdict'])} "
                     f"Test: {html.escape(m['test'])}.</p>"
                     + _table(["Layer", "Odd mean", "Even mean", "Odd - even"], rows))
    return "".join(parts)

"""Rows benchmark: how each recipe's validation FVU and found features at d=512 change with the training rows.

    python benchmarks/rows.py [--sites 3:8,4:11] [--rows 800,1600,3200,6400,12800] [--ks 150,20,40]
                              [--val-rows 2000] [--epochs 25] [--quick] [--results PATH]

The demo data hold 800 training rows per site (the seed's 1000 problems, split 80/20), too few
for the topk recipe to beat PCA-150 there (README, "Recipe comparison"). This measures whether
rows, not the recipe, are what it lacks: it draws SYNTHETIC rows of demo sites (default: the
sweep site, position 3, layer 8, and the last layer's position 4, an even position with more
features and noise, of the default 12 x 6 x 768 demo; ``codi_sae.synthetic.site_sample``: the
same dictionary, site means and noise as the demo file), and at each site trains the seed recipe, the topk recipe
and the topk recipe with signed codes and lr 0.003 (``config/signed_topk.yaml``) at d=512 and each
K (default: the seed's 150, and 20 and 40, about the demo's features per row at the two sites) on the first N
of one draw of training rows (nested sets), for the same number of epochs at every N (so more
rows mean more Adam steps), and scores them, the mean-only model and PCA-K (fit on the same
rows) on one separate draw of validation rows. Beside each FVU: how much of the demo's ground-truth
dictionary of that layer each model found (``crosslayer.dictionary_overlap`` of the true directions
in the decoder's, or in PCA's components: the share of true features with a direction at cosine
> 0.9, |cosine| for signed codes and PCA). Writes a Markdown report (default
benchmarks/ROWS.md) and prints it; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from run_benchmark import machine

from codi_sae.baselines import fit_pca, site_baselines
from codi_sae.crosslayer import dictionary_overlap
from codi_sae.saeconfig import make_recipe
from codi_sae.synthetic import layer_dictionary, site_sample
from codi_sae.train import TrainSettings, evaluate_bank, fit_bank

HERE = Path(__file__).resolve().parent
D = 512
THREADS = 2
RECIPES = {  # label: (recipe, switch overrides, learning rate)
    "seed": ("seed", {}, 1e-3),
    "topk": ("topk", {}, 1e-3),
    "topk, signed codes, lr 0.003": ("topk", {"activation": "signed_topk"}, 3e-3),
}
QUICK = {"sites": [(3, 8)], "rows": [100, 200], "val_rows": 100, "epochs": 2, "shape": {"n_layers": 9, "n_positions": 4,
                                                                       "hidden_dim": 32}, "d": 16, "ks": [4]}


def measure(position: int, layer: int, rows: list[int], val_rows: int, epochs: int, shape: dict, d: int,
            ks: list[int]) -> list[dict]:
    """One result per (training rows, K, recipe) at a site: validation and training FVU, death rate,
    share of the true features found, seconds, with the mean-only model's and PCA-K's validation
    FVU and PCA-K's share found at those rows."""
    truth = torch.from_numpy(layer_dictionary(layer, **shape)).T  # [H, features]
    draw = torch.from_numpy(site_sample(max(rows), position, layer, **shape, sample_seed=1))
    val = torch.from_numpy(site_sample(val_rows, position, layer, **shape, sample_seed=2))
    results = []
    for n in rows:
        train = draw[:n]
        base = site_baselines(train, val, ks)  # one PCA fit, its first K components for each K
        components = torch.from_numpy(fit_pca(train.numpy(), min(max(ks), *train.shape)).components_)
        for k in ks:
            pca_found = dictionary_overlap(truth, components[:k].T, True)["share_above_0_9"]
            results += _measure_k((position, layer), train, val, truth, epochs, d, k, base, pca_found)
    return results


def _measure_k(site: tuple[int, int], train: torch.Tensor, val: torch.Tensor, truth: torch.Tensor, epochs: int,
               d: int, k: int, base: dict, pca_found: float) -> list[dict]:
    """``measure``'s results for one training set and K, beside its baselines ``base`` and PCA-K's share found."""
    device, results = torch.device("cpu"), []
    for label, (name, overrides, lr) in RECIPES.items():
        bank, seconds = fit_bank(train[None], d, k, TrainSettings(epochs=epochs, lr=lr), device,
                                 make_recipe(name, overrides), sites=[site])
        on_val = evaluate_bank(bank, val[None], device).results()[0]
        on_train = evaluate_bank(bank, train[None], device).results()[0]
        found = dictionary_overlap(truth, bank.dec_wt[0].T, bank.recipe.activation == "signed_topk")
        results.append({"position": site[0], "layer": site[1], "rows": len(train), "k": k, "recipe": label,
                        "fvu": on_val["fvu"], "train_fvu": on_train["fvu"],
                        "death_rate": on_val["feature_death_rate"], "seconds": seconds,
                        "found": found["share_above_0_9"], "found_cosine": found["mean_max_cosine"],
                        "pca_found": pca_found, "pca_fvu": base["pca"][str(k)]["fvu"],
                        "pca_components": base["pca"][str(k)]["n_components"],
                        "mean_only_fvu": base["mean_only"]["fvu"]})
        print(f"position {site[0]}, layer {site[1]}, {len(train)} rows, K={k}, {label}: FVU {on_val['fvu']:.3f} "
              f"(train {on_train['fvu']:.3f}), PCA-{k} {base['pca'][str(k)]['fvu']:.3f}, "
              f"true features found {found['share_above_0_9']:.1%}, {seconds:.1f} s", flush=True)
    return results


def report(results: list[dict], args: dict) -> str:
    m = machine()
    lines = [
        "# Rows benchmark: validation FVU against training rows per site (SYNTHETIC demo sites)",
        "",
        f"- Date: {datetime.now().isoformat(timespec='seconds')}",
        f"- Command: `python benchmarks/rows.py{' --quick' if args['quick'] else ''}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores; torch {m['torch']}, {THREADS} threads",
        f"- Data: SYNTHETIC rows of demo sites "
        f"({args['shape']['n_layers']} layers x {args['shape']['n_positions']} positions x "
        f"{args['shape']['hidden_dim']} dims, demo seed 0), drawn by `codi_sae.synthetic.site_sample`; "
        f"training sets nested (the first N rows of one draw), {args['val_rows']} validation rows of "
        "another draw",
        f"- SAEs: d={args['d']}, K in {args['ks']}, {args['epochs']} epochs at every N (batch 256: more rows, "
        "more steps), seed 42",
        "",
        "Validation FVU (lower is better; about 1: no better than the per-dimension training mean). PCA-K and "
        "the mean-only model are fit on the same training rows. The demo data have 800 training rows per site. "
        "Found: the share of the layer's ground-truth features (the demo's dictionary) with a decoder direction "
        "(for PCA, a component) at cosine > 0.9 (|cosine| for signed codes and PCA); mean max cosine beside it.",
        "",
        "| site | training rows | K | recipe | FVU | FVU on its training rows | PCA-K FVU | mean-only FVU "
        "| FVU - PCA FVU | death rate | found (mean max cos) | PCA found | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["position"], r["layer"], -r["k"], r["rows"])):
        lines.append(f"| position {r['position']}, layer {r['layer']} | {r['rows']} | {r['k']} | {r['recipe']} | "
                     f"{r['fvu']:.3f} | "
                     f"{r['train_fvu']:.3f} | {r['pca_fvu']:.3f} | "
                     f"{r['mean_only_fvu']:.3f} | {r['fvu'] - r['pca_fvu']:+.3f} | {r['death_rate']:.1%} | "
                     f"{r['found']:.1%} ({r['found_cosine']:.2f}) | {r['pca_found']:.1%} | "
                     f"{r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", default="3:8,4:11", help="position:layer pairs, comma-separated")
    parser.add_argument("--rows", default="800,1600,3200,6400,12800", help="training rows, comma-separated")
    parser.add_argument("--ks", default="150,20,40", help="K of the SAEs and of PCA, comma-separated")
    parser.add_argument("--val-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny shape, 2 epochs")
    parser.add_argument("--results", type=Path, default=HERE / "ROWS.md")
    a = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    args = {"quick": a.quick, "sites": [tuple(map(int, s.split(":"))) for s in a.sites.split(",")],
            "rows": [int(n) for n in a.rows.split(",")], "val_rows": a.val_rows,
            "epochs": a.epochs, "shape": {"n_layers": 12, "n_positions": 6, "hidden_dim": 768}, "d": D,
            "ks": [int(k) for k in a.ks.split(",")]}
    if a.quick:
        args.update(QUICK)
    start = time.perf_counter()
    results = [r for position, layer in args["sites"]
               for r in measure(position, layer, args["rows"], args["val_rows"], args["epochs"], args["shape"],
                                args["d"], args["ks"])]
    text = report(results, args) + f"\nTotal time: {time.perf_counter() - start:.0f} s.\n"
    a.results.write_text(text)
    a.results.with_suffix(".json").write_text(json.dumps({"args": args, "results": results}, indent=2))
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

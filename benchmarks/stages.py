"""One benchmark stage per process: ``python benchmarks/stages.py NAME KWARGS_JSON RESULT_JSON``.

run_benchmark.py starts every stage this way, so each one's wall time and peak memory are
its own; the stage's return value is written to RESULT_JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import partial
from pathlib import Path

import torch

import seed_baseline
from codi_sae.convert import convert_raw_json
from codi_sae.saeconfig import make_recipe
from codi_sae.train import TrainSettings, train_saes


def ours_sites(data_dir: str, out_dir: str, d: int, k: int, epochs: int, threads: int, sites_per_batch: int,
               device: str = "cpu", recipe: str = "seed") -> dict:
    """Every site of the dataset, batched as the workflow's ``train_sites`` job does it, with ``recipe``."""
    info = json.loads((Path(data_dir) / "dataset.json").read_text())
    sites = [(p, layer) for layer in info["layers"] for p in range(info["n_positions"])]
    outputs = [(f"{out_dir}/pos{p}_layer{layer}.pt", f"{out_dir}/pos{p}_layer{layer}.json") for p, layer in sites]
    train_saes(f"{data_dir}/train.pt", f"{data_dir}/val.pt", sites, outputs, latent_dim=d, k=k,
                settings=TrainSettings(epochs=epochs, device=device), sites_per_batch=sites_per_batch,
                recipe=make_recipe(recipe), threads=threads)
    return {"n_sites": len(sites)}


def ours_convert(raw_json: str, out_dir: str, workers: int) -> dict:
    """The workflow's streaming conversion, with as many workers as the rule's threads."""
    out = Path(out_dir)
    return convert_raw_json(raw_json, out / "train.pt", out / "val.pt", out / "dataset.json", workers=workers)


def _gflops(a: torch.Tensor, b: torch.Tensor, repeats: int, min_seconds: float = 0.5) -> float:
    """Best-of rate of ``a @ b`` (batched or not) in GFLOP/s."""
    flop = 2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.shape[0] if a.dim() == 3 else 1)
    torch.matmul(a, b)  # warm-up
    best, spent, n = float("inf"), 0.0, 0
    while n < repeats or spent < min_seconds:
        start = time.perf_counter()
        torch.matmul(a, b)
        seconds = time.perf_counter() - start
        best, spent, n = min(best, seconds), spent + seconds, n + 1
    return flop / best / 1e9


def matmul_rate(n_sites: int, batch: int, hidden: int, latent: int, threads: int, repeats: int = 5) -> dict:
    """fp32 matmul rate of the training shapes on ``threads`` threads; whether CUDA is there."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return {
        "bmm_gflops": _gflops(rand(n_sites, batch, hidden), rand(n_sites, hidden, latent), repeats),
        "mm_gflops": _gflops(rand(batch, hidden), rand(hidden, latent), repeats),
        "threads": threads,
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


STAGES = {
    "seed-convert": seed_baseline.convert,
    "seed-sweep": seed_baseline.sweep,
    "seed-sites": seed_baseline.sites,
    "seed-plots": seed_baseline.plots,
    "ours-convert": ours_convert,
    "ours-sites": ours_sites,
    "ours-sites-topk": partial(ours_sites, recipe="topk"),
    "ours-sites-cuda": partial(ours_sites, device="cuda"),
    "matmul-rate": matmul_rate,
}

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    name, kwargs, result = sys.argv[1:]
    Path(result).write_text(json.dumps(STAGES[name](**json.loads(kwargs)), indent=2))

"""The seed experiment's method, re-implemented as the benchmark's baseline.

The seed loads the whole raw JSON with ``json.load``, builds one tensor per thought vector,
and trains every SAE on its own: each (d, K) config of the sweep and each of the 72 sites
in turn, reloading both split files every time, with autograd and ``torch.optim.Adam``. The
split, metrics and initial weights are the package's; the TopK is the usual ``torch.topk``
one (``SeedSAE``), not the package's faster selection.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from codi_sae.metrics import BankStats
from codi_sae.sae import TopKAutoencoder
from codi_sae.selection import rank_configs
from codi_sae.split import train_val_indices

TRAIN_PT, VAL_PT = "data/train_activations.pt", "data/val_activations.pt"
HEATMAPS = ("reconstruction_loss", "feature_death_rate")


def convert(raw_json: str, out_dir: str, train_fraction: float = 0.8, seed: int = 42) -> dict:
    """``json.load`` the raw JSON, stack its vectors, save the train/val splits under ``out_dir``."""
    with open(raw_json) as f:
        data = json.load(f)
    meta, samples = data["metadata"], data["samples"]
    vectors, problem_ids, layers, positions = [], [], [], []
    for sample in samples:
        for layer in meta["layers"]:
            for position, vector in enumerate(sample["thoughts"][f"layer_{layer}"]):
                vectors.append(torch.tensor(vector, dtype=torch.float32))
                problem_ids.append(sample["id"])
                layers.append(layer)
                positions.append(position)
    activations = torch.stack(vectors)
    per_problem = len(meta["layers"]) * meta["n_tokens"]
    train_idx, val_idx = train_val_indices(len(samples), train_fraction, seed)
    for name, idx, path in (("train", train_idx, TRAIN_PT), ("val", val_idx, VAL_PT)):
        rows = (idx[:, None] * per_problem + np.arange(per_problem)).ravel()
        out = Path(out_dir) / path
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({
            "activations": activations[torch.from_numpy(rows)],
            "metadata": {key: [values[r] for r in rows] for key, values in
                         (("problem_ids", problem_ids), ("layers", layers), ("positions", positions))},
            "config": {"split": name, "train_fraction": train_fraction, "split_seed": seed},
        }, out)
    return {"n_problems": len(samples), "n_train": len(train_idx), "n_val": len(val_idx)}


class SeedSAE(TopKAutoencoder):
    """The package's model with TopK as the seed computes it: ``torch.topk``, gather, scatter."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.encoder(x)
        idx = pre.abs().topk(self.k, dim=-1, sorted=False).indices
        return torch.zeros_like(pre).scatter(-1, idx, pre.gather(-1, idx))


def _site(split: dict, position: int, layer: int) -> torch.Tensor:
    meta = split["metadata"]
    mask = (torch.tensor(meta["layers"]) == layer) & (torch.tensor(meta["positions"]) == position)
    return split["activations"][mask]


@torch.no_grad()
def _evaluate(model: SeedSAE, x_val: torch.Tensor, x_train: torch.Tensor) -> dict:
    """The workflow's validation metrics (a feature is dead if it never fires on train or val)."""
    def stats(x):
        recon, features, _ = model(x)
        s = BankStats(1, model.latent_dim)
        s.update(x[None], recon[None], features[None])
        return s

    return stats(x_val).results(fired_elsewhere=stats(x_train).fired)[0]


def train_site(data_dir: str, position: int, layer: int, d: int, k: int, *, epochs: int = 25,
               batch_size: int = 256, lr: float = 1e-3, seed: int = 42) -> tuple[SeedSAE, dict]:
    """Load both splits, train one TopK SAE on one site, return it and its validation metrics."""
    train = torch.load(Path(data_dir) / TRAIN_PT, weights_only=True)
    val = torch.load(Path(data_dir) / VAL_PT, weights_only=True)
    x_train, x_val = _site(train, position, layer), _site(val, position, layer)
    torch.manual_seed(seed)
    model = SeedSAE(x_train.shape[1], d, k)
    loader = DataLoader(TensorDataset(x_train), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(epochs):
        for (xb,) in loader:
            recon, _, _ = model(xb)
            loss = torch.nn.functional.mse_loss(recon, xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    metrics = {**_evaluate(model.eval(), x_val, x_train), "train_time_sec": time.perf_counter() - start}
    return model, metrics


def _train_and_save(out: Path, data_dir: str, position: int, layer: int, d: int, k: int, epochs: int) -> dict:
    model, metrics = train_site(data_dir, position, layer, d, k, epochs=epochs)
    config = {"input_dim": model.input_dim, "latent_dim": d, "k": k, "position": position, "layer": layer}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": model.state_dict(), "config": config, "metrics": metrics}, out)
    out.with_suffix(".json").write_text(json.dumps({"config": config, "metrics": metrics}, indent=2))
    return metrics


def sweep(data_dir: str, out_dir: str, position: int, layer: int, configs: list[list[int]],
          epochs: int = 25, min_ev: float = 0.7) -> dict:
    """Train each (d, K) config at one site, one after another; rank them; return the best."""
    rows = []
    for i, (d, k) in enumerate(configs):
        out = Path(out_dir) / f"pos{position}_layer{layer}_config{i}.pt"
        rows.append({"d": d, "k": k, **_train_and_save(out, data_dir, position, layer, d, k, epochs)})
    ranked, _ = rank_configs(rows, min_ev)
    (Path(out_dir) / "analysis_summary.json").write_text(json.dumps(ranked, indent=2))
    return {"d": ranked[0]["d"], "k": ranked[0]["k"]}


def sites(data_dir: str, out_dir: str, d: int, k: int, epochs: int = 25) -> dict:
    """Train (d, K) at every (position, layer) site, one after another; write all metrics."""
    meta = torch.load(Path(data_dir) / VAL_PT, weights_only=True)["metadata"]
    results: dict[str, dict[str, dict]] = {}
    for layer in sorted(set(meta["layers"])):
        for position in sorted(set(meta["positions"])):
            out = Path(out_dir) / f"pos{position}_layer{layer}.pt"
            results.setdefault(str(layer), {})[str(position)] = _train_and_save(
                out, data_dir, position, layer, d, k, epochs)
    (Path(out_dir) / "metrics_all.json").write_text(json.dumps({"results": results}, indent=2))
    return {"n_sites": sum(len(by_pos) for by_pos in results.values())}


def plots(metrics_all: str, out_dir: str) -> dict:
    """Layer x position heatmaps of reconstruction loss and death rate, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    results = json.loads(Path(metrics_all).read_text())["results"]
    layers = sorted(results, key=int)
    positions = sorted(results[layers[0]], key=int)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for key in HEATMAPS:
        grid = np.array([[results[layer][pos][key] for pos in positions] for layer in layers])
        fig, ax = plt.subplots(figsize=(8, 10))
        sns.heatmap(grid, annot=True, fmt=".3f", cmap="YlOrRd", xticklabels=positions,
                    yticklabels=layers, ax=ax)
        ax.set(xlabel="Position", ylabel="Layer", title=key.replace("_", " ").capitalize())
        fig.savefig(Path(out_dir) / f"{key}.png", dpi=150, bbox_inches="tight")
        plt.close(fig)
    return {"plots": len(HEATMAPS)}

"""Train TopK SAEs at one or many (position, layer) sites, batched, and save each one."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import torch

from .backprop import BankStep
from .checkpoint import provenance, save_sae
from .data import load_splits, site_rows
from .devices import pick_device
from .errors import InputError
from .metrics import BankStats
from .parallel import run_in_threads
from .sae import SAEBank
from .saeconfig import Recipe

log = logging.getLogger(__name__)
EVAL_ROWS = 256  # rows per evaluation chunk, for every SAE of a bank at once


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 25
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 42
    device: str = "auto"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_bank(x: torch.Tensor, latent_dim: int, k: int, settings: TrainSettings, device: torch.device,
             recipe: Recipe = Recipe(), names: list[str] | None = None,
             sites: list[tuple[int, int]] | None = None) -> tuple[SAEBank, float]:
    """Train one SAE per leading slice of ``x`` [n, N, H] (at ``sites``, which ``site_init:
    per_site`` needs); returns the bank, folded to take raw inputs, and the seconds taken. A loss
    that is not finite stops it with an InputError that names the member (``names[s]``, e.g. its
    site) and the epoch."""
    n, N, H = x.shape
    _sync(device)
    start = time.perf_counter()
    bank = SAEBank(n, H, latent_dim, k, settings.seed, recipe, sites).to(device)
    x = bank.fit_inputs(x.to(device))
    order = torch.Generator().manual_seed(settings.seed)
    step = BankStep(bank, lr=settings.lr)
    who = f"d={latent_dim}, K={k}, {recipe.name} recipe"  # for the log, where batches interleave
    if sites:
        who += f", position {sites[0][0]}, layer {sites[0][1]}" + (f" and {n - 1} more site(s)" if n > 1 else "")
    for epoch in range(settings.epochs):
        perm = torch.randperm(N, generator=order).to(device)
        total = torch.zeros(n, device=device)
        for i in range(0, N, settings.batch_size):
            rows = perm[i : i + settings.batch_size]
            total += step(x, rows) * len(rows)  # no .item() here: it would wait for a GPU
        finite = torch.isfinite(total)
        if not bool(finite.all()):
            s = int((~finite).nonzero()[0])
            raise InputError(f"{names[s] if names else f'SAE {s}'}: the training loss is not finite at epoch "
                             f"{epoch + 1} (inputs too large for float32, or train.lr={settings.lr:g} too high?)")
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == settings.epochs:
            log.info("%s: epoch %d/%d: mean train MSE %.6g", who, epoch + 1, settings.epochs, total.sum().item() / N / n)
    bank.fold_()
    _sync(device)
    return bank, time.perf_counter() - start


def _forward_chunks(bank: SAEBank, x: torch.Tensor, device: torch.device):
    """``(rows, reconstruction, features)`` of every member for each chunk of rows of ``x`` [n, N, H]."""
    for i in range(0, x.shape[1], EVAL_ROWS):
        xb = x[:, i : i + EVAL_ROWS].to(device)
        yield xb, *bank(xb)


@torch.no_grad()
def evaluate_bank(bank: SAEBank, x: torch.Tensor, device: torch.device) -> BankStats:
    """Every metric's sums, for every member, over the rows of ``x`` [n, N, H]."""
    stats = BankStats(x.shape[0], bank.latent_dim)
    for xb, recon, z in _forward_chunks(bank, x, device):
        stats.update(xb, recon, z)
    return stats


@torch.no_grad()
def fired_and_mse(bank: SAEBank, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Which features fire on any row of ``x`` [n, N, H] ([n, d]), and each member's MSE ([n])."""
    fired = torch.zeros(x.shape[0], bank.latent_dim, dtype=torch.bool, device=device)
    sse = torch.zeros(x.shape[0], dtype=torch.float64, device=device)
    for xb, recon, z in _forward_chunks(bank, x, device):
        fired |= (z != 0).any(1)
        sse += (recon - xb).pow(2).sum((1, 2), dtype=torch.float64)
    return fired.cpu(), (sse / (x.shape[1] * x.shape[2])).cpu()


@dataclass(frozen=True)
class GridJob:
    """SAEs of one (``latent_dim``, ``k``, ``recipe``, ``settings``), one at each of ``sites``,
    written to ``outputs[i] = (pt, json)``."""

    sites: list[tuple[int, int]]
    outputs: list[tuple[str, str]]
    latent_dim: int
    k: int
    settings: TrainSettings
    recipe: Recipe = Recipe()


def train_grid(train_pt: str, val_pt: str, jobs: list[GridJob], *, sites_per_batch: int,
               threads: int | None = None) -> None:
    """Train every SAE of ``jobs`` and write each one's checkpoint and metrics.

    A job's sites are trained ``sites_per_batch`` at a time as one batched model, each from its
    own site's initialisation and the same batches, so a site's result does not depend on which
    sites share its batch, nor on which other jobs train in the same process. On the CPU the
    batches of all jobs train side by side on ``threads`` worker threads, each running its ops
    on one core: small matmuls scale better that way than split across cores. On CUDA, one
    after another. The process's torch thread count is restored on return.
    """
    train, val = load_splits(train_pt, val_pt)
    made_by = provenance(train_split=train_pt, val_split=val_pt)
    H = train["activations"].shape[1]
    batches = [(job, job.sites[b : b + sites_per_batch], job.outputs[b : b + sites_per_batch])
               for job in jobs for b in range(0, len(job.sites), sites_per_batch)]
    devices = {id(job): pick_device(job.settings.device) for job in jobs}
    threads_before = torch.get_num_threads()
    threads = threads or threads_before
    on_cuda = any(device.type == "cuda" for device in devices.values())
    workers = 1 if on_cuda else max(1, min(threads, len(batches)))
    per_worker = max(1, threads // workers)
    log.info("training %d SAE(s) of %d config(s): %d batch(es), %d worker(s) of %d thread(s)",
             sum(len(job.sites) for job in jobs), len(jobs), len(batches), workers, per_worker)

    def train_batch(item: tuple[GridJob, list[tuple[int, int]], list[tuple[str, str]]]) -> None:
        # in this thread: a new thread's OpenMP and MKL start at the machine's core count, and
        # torch applies its setting only at the thread's first op large enough to run in parallel;
        # small matmuls before it then ran on a varying number of threads, rounding differently
        torch.set_num_threads(per_worker)
        job, batch, outs = item
        device, settings, recipe = devices[id(job)], job.settings, job.recipe
        x_train, x_val = site_rows(train, train_pt, batch), site_rows(val, val_pt, batch)
        names = [f"{train_pt}: position {p}, layer {layer}" for p, layer in batch]
        bank, seconds = fit_bank(x_train, job.latent_dim, job.k, settings, device, recipe, names, batch)
        fired_train, train_loss = fired_and_mse(bank, x_train, device)
        results = evaluate_bank(bank, x_val, device).results(fired_elsewhere=fired_train)
        for s, ((position, layer), (pt, js)) in enumerate(zip(batch, outs)):
            config = {
                "input_dim": H, "latent_dim": job.latent_dim, "k": job.k, "position": position, "layer": layer,
                **asdict(settings), "device": str(device), **recipe.as_dict(),
                "k_aux": recipe.k_aux or H // 2, "input_scale": float(bank.scale[s]), "init_seed": bank.seeds[s],
                "n_train": x_train.shape[1], "n_val": x_val.shape[1], "sites_trained_together": len(batch),
            }
            metrics = {
                **results[s],
                "train_reconstruction_loss": float(train_loss[s]),
                "train_time_sec": seconds / len(batch),
                "batch_train_time_sec": seconds,
                "epochs": settings.epochs,
            }
            save_sae(pt, js, bank.member_state(s), config, metrics, made_by)
            log.info("pos %d layer %d, d=%d, k=%d, %s recipe: FVU %s, death rate %.3f -> %s", position, layer,
                     job.latent_dim, job.k, recipe.name, metrics["fvu"], metrics["feature_death_rate"], pt)

    try:
        run_in_threads(train_batch, batches, workers)
    finally:  # the workers' setting is the process's too
        torch.set_num_threads(threads_before)


def train_saes(train_pt: str, val_pt: str, sites: list[tuple[int, int]], outputs: list[tuple[str, str]],
               *, latent_dim: int, k: int, settings: TrainSettings, sites_per_batch: int,
               recipe: Recipe = Recipe(), threads: int | None = None) -> None:
    """Train one SAE (``latent_dim``, ``k``, ``recipe``) at each site; write ``outputs[i] = (pt, json)``
    (``train_grid`` with one job)."""
    train_grid(train_pt, val_pt, [GridJob(sites, outputs, latent_dim, k, settings, recipe)],
               sites_per_batch=sites_per_batch, threads=threads)

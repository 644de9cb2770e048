"""The baselines beside every SAE, per site: the mean-only model and PCA with K components.

Both are fit on the training rows and scored on the validation rows with the SAE's metric
definitions (``metrics.ReconStats``): the mean-only model predicts every row as the training
mean; PCA-K (scikit-learn) reconstructs a row from its projection on the training data's first
K principal directions, around the training mean. A K above min(rows, H) is capped there, and
``n_components`` says so.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from sklearn.decomposition import PCA

from .atomic import write_json
from .data import load_worker_splits, site_rows, worker_splits
from .metrics import ReconStats
from .parallel import map_in_order

log = logging.getLogger(__name__)


def _scores(x: torch.Tensor, recon: torch.Tensor) -> dict:
    stats = ReconStats(1)
    stats.update(x.unsqueeze(0), recon.unsqueeze(0))
    return {k: v for k, v in stats.results()[0].items() if k != "cosine_similarity"}


def fit_pca(rows: np.ndarray, n_components: int) -> PCA:
    """Exact PCA of ``rows`` [N, H] by the faster of scikit-learn's exact solvers for the shape:
    the H x H covariance's eigendecomposition when N >= H, else the SVD of the rows (with fewer
    rows than dimensions, 5x faster at 800 x 2048; equal at 800 x 768, measured here). In float64:
    the covariance is X'X - N m m', which in float32 cancels away the spread of dimensions whose
    mean is thousands of times their spread (as residual streams' massive dimensions are)."""
    solver = "covariance_eigh" if rows.shape[0] >= rows.shape[1] else "full"
    return PCA(n_components=n_components, svd_solver=solver).fit(np.asarray(rows, dtype=np.float64))


def top_dimension_share(x: torch.Tensor) -> float | None:
    """The share of the variance of rows ``x`` [N, H] (around each dimension's mean, as FVU counts it)
    in their most varying dimension; None where nothing varies. Near 1, FVU and EV there mostly
    measure that one dimension."""
    variance = x.double().var(0, correction=0)
    total = float(variance.sum())
    return float(variance.max()) / total if total > 0 else None


def site_baselines(x_train: torch.Tensor, x_val: torch.Tensor, ks: list[int]) -> dict:
    """``{"mean_only": metrics, "pca": {"<K>": {"n_components", metrics}}, "top_dimension_share"}``
    for one site's rows [N, H] (the share: ``top_dimension_share`` of the validation rows)."""
    mean = x_train.mean(0)
    out = {"mean_only": _scores(x_val, mean.expand_as(x_val)), "pca": {},
           "top_dimension_share": top_dimension_share(x_val)}
    most = min(max(ks), *x_train.shape)
    with np.errstate(all="ignore"):  # a constant site: scikit-learn divides 0 by 0 in its ratios
        pca = fit_pca(x_train.numpy(), most)
    directions = torch.from_numpy(pca.components_).to(x_val.dtype)
    centred = x_val - torch.from_numpy(pca.mean_).to(x_val.dtype)
    for k in ks:
        top = directions[: min(k, most)]
        recon = centred @ top.T @ top + torch.from_numpy(pca.mean_).to(x_val.dtype)
        out["pca"][str(k)] = {"n_components": len(top), **_scores(x_val, recon)}
    return out


def _site_job(job: tuple) -> tuple[int, int, dict]:
    """One site's training and validation row counts and ``site_baselines`` (in a worker process, when
    there are several)."""
    (position, layer), ks = job
    (train, train_pt), (val, val_pt) = worker_splits()
    x_train, x_val = site_rows(train, train_pt, [(position, layer)])[0], site_rows(val, val_pt, [(position, layer)])[0]
    return x_train.shape[0], x_val.shape[0], site_baselines(x_train, x_val, ks)


def write_baselines(train_pt: str | os.PathLike, val_pt: str | os.PathLike, sites: list[tuple[int, int]],
                    ks: list[int], out: str | os.PathLike, workers: int = 1) -> dict:
    """Both baselines at every site, for every K in ``ks``, ``workers`` processes sharing the sites:
    ``{"ks", "n_train", "n_val", "sites": {"<layer>": {"<pos>": site_baselines(...)}}}``."""
    doc = {"ks": sorted(ks), "sites": {}}
    jobs = [(site, doc["ks"]) for site in sites]
    results = map_in_order(_site_job, jobs, workers, load_worker_splits, (train_pt, val_pt, workers))
    for ((position, layer), _), (n_train, n_val, result) in zip(jobs, results):
        doc["sites"].setdefault(str(layer), {})[str(position)] = result
        doc.update(n_train=n_train, n_val=n_val)
    log.info("baselines at %d site(s) for K in %s", len(sites), doc["ks"])
    write_json(out, doc)
    return doc

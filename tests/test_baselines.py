import json

import numpy as np
import pytest
import torch

from sklearn.decomposition import PCA

from codi_sae.baselines import fit_pca, site_baselines, write_baselines
from codi_sae.convert import convert_raw_json
from codi_sae.data import load_splits, site_rows
from codi_sae.errors import InputError


def low_rank_rows(n=100, H=12, rank=4, seed=0):
    """[80, H] training and [n - 80, H] validation rows near one rank-4 subspace, around 3."""
    g = torch.Generator().manual_seed(seed)
    x = 3 + torch.randn(n, rank, generator=g) @ torch.randn(rank, H, generator=g) + 0.01 * torch.randn(n, H, generator=g)
    return x[:80], x[80:]


def test_mean_only_and_pca_by_definition():
    train, val = low_rank_rows()
    out = site_baselines(train, val, [1, 4, 12, 50])
    mean = train.mean(0)
    sst = (val - val.mean(0)).pow(2).sum()
    assert out["mean_only"]["fvu"] == pytest.approx(float((val - mean).pow(2).sum() / sst), rel=1e-5)
    assert out["mean_only"]["reconstruction_loss"] == pytest.approx(float((val - mean).pow(2).mean()), rel=1e-5)
    fvus = [out["pca"][k]["fvu"] for k in ("1", "4", "12")]
    assert fvus[0] > fvus[1] > fvus[2] and fvus[1] < 0.01 and fvus[2] < 1e-6  # rank 4 data: 4 components suffice
    assert out["pca"]["50"]["n_components"] == 12 and out["pca"]["4"]["n_components"] == 4  # capped at H
    for scores in (out["mean_only"], *out["pca"].values()):
        assert scores["explained_variance_std"] == pytest.approx(1 - scores["fvu"])


def test_pca_is_fit_on_the_training_rows_only():
    train, val = low_rank_rows()
    shifted = site_baselines(train, val + 5.0, [4])  # the validation rows moved away from the training mean
    assert shifted["pca"]["4"]["fvu"] > 1 and shifted["mean_only"]["fvu"] > 1


@pytest.mark.parametrize("n, H, offset", [(30, 64, 0), (64, 64, 0), (200, 16, 0), (800, 128, 3000)],
                         ids=["wide", "square", "tall", "massive dimensions"])
def test_pca_solver_chosen_for_the_shape_reconstructs_as_the_full_svd(n, H, offset):
    """Also where a few dimensions' means are thousands of times the data's spread (float32's
    covariance loses the spread there)."""
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((n, 12)) * np.linspace(3, 0.3, 12) @ rng.standard_normal((12, H)) / 8
    rows = (rows + 0.05 * rng.standard_normal((n, H)) + offset * (np.arange(H) < 8)).astype(np.float32)
    fast, reference = fit_pca(rows, 8), PCA(8, svd_solver="full").fit(rows.astype(np.float64))
    assert fast.svd_solver == ("full" if n < H else "covariance_eigh")
    reconstruct = lambda pca: pca.inverse_transform(pca.transform(rows.astype(np.float64)))  # noqa: E731
    np.testing.assert_allclose(reconstruct(fast), reconstruct(reference), atol=1e-4)


def test_write_baselines_at_every_site_in_one_or_two_processes(tmp_path, raw_file):
    raw, _ = raw_file
    train_pt, val_pt = tmp_path / "train.pt", tmp_path / "val.pt"
    convert_raw_json(raw, train_pt, val_pt, tmp_path / "info.json")
    sites = [(0, 1), (3, 2), (2, 0)]
    doc = write_baselines(train_pt, val_pt, sites, [3, 2], tmp_path / "one.json")
    assert json.loads((tmp_path / "one.json").read_text()) == doc
    assert (doc["ks"], doc["n_train"], doc["n_val"]) == ([2, 3], 8, 2)
    train, val = load_splits(train_pt, val_pt)
    for position, layer in sites:
        rows = [site_rows(split, path, [(position, layer)])[0] for split, path in ((train, train_pt), (val, val_pt))]
        assert doc["sites"][str(layer)][str(position)] == site_baselines(*rows, [2, 3])
    two = write_baselines(train_pt, val_pt, sites, [3, 2], tmp_path / "two.json", workers=2)
    assert two.keys() == doc.keys() and two["sites"].keys() == doc["sites"].keys()
    for layer, by_pos in doc["sites"].items():
        for position, site in by_pos.items():  # one BLAS thread per process: the same up to rounding
            other = two["sites"][layer][position]
            assert other["mean_only"] == pytest.approx(site["mean_only"], rel=1e-9, abs=1e-12)
            for k, pca in site["pca"].items():
                assert other["pca"][k] == pytest.approx(pca, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_split_is_named_whatever_the_workers(tmp_path, raw_file, workers):
    raw, _ = raw_file
    train_pt, val_pt = tmp_path / "train.pt", tmp_path / "val.pt"
    convert_raw_json(raw, train_pt, val_pt, tmp_path / "info.json")
    payload = torch.load(train_pt, weights_only=True)
    del payload["problems"]
    torch.save(payload, train_pt)
    with pytest.raises(InputError, match=r"train\.pt: split file has no 'problems' key"):
        write_baselines(train_pt, val_pt, [(0, 1), (1, 1), (2, 0)], [2], tmp_path / "out.json", workers=workers)
    assert not (tmp_path / "out.json").exists()


def test_top_dimension_share_is_the_largest_dimensions_share_of_the_validation_variance():
    rng = np.random.default_rng(4)
    x_val = torch.from_numpy(rng.standard_normal((50, 6)).astype(np.float32))
    x_val[:, 2] = x_val[:, 2] * 30 + 2000  # a massive dimension: its mean does not count, its spread does
    variance = x_val.double().numpy().var(0)
    out = site_baselines(torch.from_numpy(rng.standard_normal((80, 6)).astype(np.float32)), x_val, [2])
    assert out["top_dimension_share"] == pytest.approx(variance[2] / variance.sum())
    assert out["top_dimension_share"] > 0.99
    assert site_baselines(x_val, torch.ones(5, 6), [2])["top_dimension_share"] is None  # nothing varies

import numpy as np
import pytest
import torch

from sklearn.decomposition import PCA

from codi_sae.baselines import fit_pca, site_baselines


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


@pytest.mark.parametrize("n, H", [(30, 64), (64, 64), (200, 16)], ids=["wide", "square", "tall"])
def test_pca_solver_chosen_for_the_shape_reconstructs_as_the_covariance_one(n, H):
    rows = np.random.default_rng(0).standard_normal((n, H)).astype(np.float32)
    fast, reference = fit_pca(rows, 8), PCA(8, svd_solver="covariance_eigh").fit(rows)
    assert fast.svd_solver == ("full" if n < H else "covariance_eigh")
    reconstruct = lambda pca: pca.inverse_transform(pca.transform(rows))  # noqa: E731
    np.testing.assert_allclose(reconstruct(fast), reconstruct(reference), atol=1e-4)

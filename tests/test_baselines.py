import pytest
import torch

from codi_sae.baselines import site_baselines


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

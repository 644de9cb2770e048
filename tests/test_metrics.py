import math

import pytest
import torch

from codi_sae.metrics import BankStats

X = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # one SAE, two rows, two dims
R = torch.tensor([[[1.0, 1.0], [3.0, 5.0]]])  # residual [[0, 1], [0, -1]]
Z = torch.tensor([[[0.0, 2.0, 0.0, 0.0], [-3.0, 0.0, 1.0, 0.0]]])  # feature 3 never fires


def metrics(chunks=1, fired_elsewhere=None):
    stats = BankStats(1, 4)
    rows = X.shape[1] // chunks
    for i in range(0, X.shape[1], rows):
        stats.update(X[:, i : i + rows], R[:, i : i + rows], Z[:, i : i + rows])
    return stats.results(fired_elsewhere)[0]


def test_reconstruction_metrics_by_hand():
    m = metrics()
    assert m["reconstruction_loss"] == pytest.approx(0.5)  # (0 + 1 + 0 + 1) / 4
    # seed: var of all residual elements [0,1,0,-1] = 2/3, of all x [1,2,3,4] = 5/3
    assert m["explained_variance"] == pytest.approx(1 - 2 / 5)
    # standard: SSE 2 over per-dim sums of squares ((1-2)^2+(3-2)^2) + ((2-3)^2+(4-3)^2) = 4
    assert m["fvu"] == pytest.approx(0.5)
    assert m["explained_variance_std"] == pytest.approx(0.5)
    cos = (3 / math.sqrt(5 * 2) + 29 / (5 * math.sqrt(34))) / 2
    assert m["cosine_similarity"] == pytest.approx(cos, rel=1e-6)


def test_sparsity_and_activation_metrics_by_hand():
    m = metrics()
    assert m["l0_mean"] == pytest.approx(1.5)
    assert m["l0_std"] == pytest.approx(math.sqrt(0.5))  # Bessel-corrected std of [1, 2]
    assert m["mean_activation"] == pytest.approx(2.0)  # |z| of active: 2, 3, 1
    assert m["median_activation"] == pytest.approx(2.0)
    assert m["max_activation"] == pytest.approx(3.0)


def test_dead_features_count_train_and_validation():
    m = metrics()
    assert (m["num_dead_features"], m["num_active_features"], m["feature_death_rate"]) == (1, 3, 0.25)
    seen_in_train = torch.tensor([[False, False, False, True]])
    assert metrics(fired_elsewhere=seen_in_train)["num_dead_features"] == 0


def test_chunking_does_not_change_results():
    assert metrics(chunks=2) == pytest.approx(metrics(chunks=1))


def test_perfect_reconstruction():
    stats = BankStats(1, 4)
    stats.update(X, X.clone(), Z)
    m = stats.results()[0]
    assert m["explained_variance"] == 1.0 and m["fvu"] == 0.0 and m["reconstruction_loss"] == 0.0
    assert m["cosine_similarity"] == pytest.approx(1.0)

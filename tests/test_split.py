import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from codi_sae.errors import InputError
from codi_sae.split import train_val_indices


@pytest.mark.parametrize("n", [5, 10, 11, 100, 999, 1000])
@pytest.mark.parametrize("fraction, seed", [(0.8, 42), (0.75, 0), (0.5, 7)])
def test_same_split_as_scikit_learn(n, fraction, seed):
    train, val = train_test_split(range(n), train_size=fraction, random_state=seed, shuffle=True)
    ours_train, ours_val = train_val_indices(n, fraction, seed)
    assert list(ours_train) == list(train)
    assert list(ours_val) == list(val)


def test_split_is_a_partition():
    train, val = train_val_indices(1000, 0.8, 42)
    assert len(train) == 800 and len(val) == 200
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(1000))


@pytest.mark.parametrize("n, fraction, empty", [(1, 0.8, "training"), (10, 0.05, "training"), (10, 1.0, "validation")])
def test_empty_side_is_refused(n, fraction, empty):
    with pytest.raises(InputError, match=f"leaves the {empty} split empty"):
        train_val_indices(n, fraction, 42)

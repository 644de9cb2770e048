"""Tests for the synthetic demo extraction (codi_sae.synthetic)."""

import json

import numpy as np
import pytest
import torch

from codi_sae import synthetic
from codi_sae.errors import InputError
from codi_sae.synthetic import write_demo

SMALL = {"n_problems": 10, "n_layers": 3, "n_positions": 4, "hidden_dim": 16}
METADATA_KEYS = ["model", "checkpoint", "n_samples", "n_correct", "n_incorrect", "accuracy",
                 "layers", "n_layers", "n_tokens", "hidden_dim", "extraction_date", "dataset",
                 "synthetic", "description", "generator"]
SAMPLE_KEYS = ["id", "question", "ground_truth", "ground_truth_text", "prediction",
               "prediction_text", "is_correct", "thoughts"]


def _write(tmp_path, name="demo", **kwargs):
    """Write a demo into tmp_path; return (json text, json path, truth path)."""
    json_path, truth_path = tmp_path / f"{name}.json", tmp_path / f"{name}.pt"
    write_demo(json_path, truth_path, **{**SMALL, **kwargs})
    return json_path.read_text(encoding="utf-8"), json_path, truth_path


def test_text_is_exactly_what_json_dump_writes(tmp_path):
    text, json_path, _ = _write(tmp_path)
    with open(json_path, encoding="utf-8") as f:
        obj = json.load(f)
    assert text == json.dumps(obj, indent=2)
    assert '\\"' in text  # some question needs escaping
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json", "demo.pt"]  # no temp file


def test_same_arguments_give_same_bytes_and_seed_matters(tmp_path):
    first, _, first_truth = _write(tmp_path, "a", workers=1)
    second, _, second_truth = _write(tmp_path, "b", workers=2)
    other, _, _ = _write(tmp_path, "c", seed=1)
    assert first == second
    assert other != first
    assert first_truth.read_bytes() == second_truth.read_bytes()


@pytest.mark.parametrize("shape, model", [
    (SMALL, "synthetic demo, {n_layers} layers x {n_positions} positions x {hidden_dim} dims"),
    ({"n_problems": 12, "n_layers": 7, "n_positions": 6, "hidden_dim": 24}, "synthetic demo, 7 layers x 6 positions x 24 dims"),
    ({"n_problems": 12, "n_layers": 1, "n_positions": 1, "hidden_dim": 8}, "synthetic demo, 1 layer x 1 position x 8 dims"),
])
def test_layout_and_metadata(tmp_path, shape, model):
    text, _, _ = _write(tmp_path, **shape)
    obj = json.loads(text)
    assert list(obj) == ["metadata", "samples"]
    meta, samples = obj["metadata"], obj["samples"]
    assert list(meta) == METADATA_KEYS
    n, n_layers, n_positions, hidden = (shape[k] for k in
                                        ("n_problems", "n_layers", "n_positions", "hidden_dim"))
    assert (meta["n_samples"], meta["n_layers"], meta["n_tokens"], meta["hidden_dim"]) == (
        n, n_layers, n_positions, hidden)
    assert meta["layers"] == list(range(n_layers))
    assert meta["synthetic"] is True and "SYNTHETIC" in meta["description"]
    assert meta["generator"]["seed"] == 0
    assert meta["model"] == model.format(**shape)

    assert len(samples) == n
    n_correct = 0
    for i, sample in enumerate(samples):
        assert list(sample) == SAMPLE_KEYS
        assert sample["id"] == i and sample["question"].startswith(f"Synthetic problem {i}: ")
        assert (sample["prediction"] == sample["ground_truth"]) == sample["is_correct"]
        assert sample["ground_truth_text"] == str(sample["ground_truth"])
        assert list(sample["thoughts"]) == [f"layer_{layer}" for layer in range(n_layers)]
        for vectors in sample["thoughts"].values():
            assert len(vectors) == n_positions
            assert all(len(v) == hidden and all(isinstance(x, float) for x in v) for v in vectors)
        n_correct += sample["is_correct"]
    assert (meta["n_correct"], meta["n_incorrect"]) == (n_correct, n - n_correct)
    assert meta["accuracy"] == n_correct / n


def test_ground_truth(tmp_path):
    text, _, truth_path = _write(tmp_path, n_features=10)
    meta = json.loads(text)["metadata"]
    truth = torch.load(truth_path, weights_only=True)
    assert truth["synthetic"] is True
    assert truth["directions"].shape == (3, 10, 16) and truth["directions"].dtype == torch.float32
    assert torch.allclose(truth["directions"].norm(dim=2), torch.ones(3, 10))
    assert truth["site_means"].shape == (3, 4, 16) and truth["site_means"].dtype == torch.float32
    features = truth["correctness_features"]
    assert features.dtype == torch.int64 and len(set(features.tolist())) == 3
    assert truth["is_correct"].dtype == torch.bool
    assert truth["is_correct"].sum().item() == meta["n_correct"]
    assert truth["active_counts"].shape == (10, 3, 4)
    assert truth["config"] == meta["generator"]


def test_accuracy_near_target_and_later_layers_busier(tmp_path):
    _, _, truth_path = _write(tmp_path, n_problems=400, n_layers=4, n_positions=2, hidden_dim=128)
    truth = torch.load(truth_path, weights_only=True)
    assert 0.35 < truth["is_correct"].float().mean().item() < 0.55
    counts = truth["active_counts"].float().mean(dim=0)  # [L, T]
    assert (counts[-1] > counts[0]).all()
    assert (counts[:, 0] > counts[:, 1]).all()  # even positions have more active features


def test_site_sample_draws_new_rows_of_a_demo_site(tmp_path):
    shape = {"n_layers": 2, "n_positions": 2, "hidden_dim": 16}
    text, _, _ = _write(tmp_path, n_problems=400, **shape)
    written = np.array([s["thoughts"]["layer_1"][1] for s in json.loads(text)["samples"]])
    fresh = synthetic.site_sample(4000, 1, 1, **shape)
    assert fresh.shape == (4000, 16) and fresh.dtype == np.float32
    assert np.array_equal(fresh, synthetic.site_sample(4000, 1, 1, **shape))
    assert not np.array_equal(fresh, synthetic.site_sample(4000, 1, 1, **shape, sample_seed=2))
    # Same distribution as the file's rows at that site (within 4 standard errors of the mean),
    # unlike another site's or another seed's.
    se = written.std(0) / np.sqrt(len(written))
    assert (np.abs(fresh.mean(0) - written.mean(0)) < 4 * se).all()
    assert np.allclose(fresh.std(0), written.std(0), rtol=0.15)
    for other in (synthetic.site_sample(4000, 0, 1, **shape), synthetic.site_sample(4000, 1, 1, **shape, seed=1)):
        assert (np.abs(other.mean(0) - written.mean(0)) > 4 * se).any()
    with pytest.raises(InputError, match="no site at position 2, layer 0"):
        synthetic.site_sample(10, 2, 0, **shape)


def test_layer_dictionary_is_the_truth_files(tmp_path):
    shape = {"n_layers": 3, "n_positions": 2, "hidden_dim": 16}
    _, _, truth_path = _write(tmp_path, n_problems=5, **shape)
    truth = torch.load(truth_path, weights_only=True)["directions"]
    for layer in range(3):
        assert np.array_equal(synthetic.layer_dictionary(layer, **shape), truth[layer].numpy())
    assert not np.array_equal(synthetic.layer_dictionary(1, **shape, seed=1), truth[1].numpy())
    with pytest.raises(InputError, match="layer 3"):
        synthetic.layer_dictionary(3, **shape)


def test_bad_size_is_rejected(tmp_path):
    with pytest.raises(InputError, match="n_layers"):
        _write(tmp_path, n_layers=0)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing_sample_text(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real_sample_text(*args)

    real_sample_text = synthetic._sample_text
    monkeypatch.setattr(synthetic, "_sample_text", failing_sample_text)
    with pytest.raises(RuntimeError, match="boom"):
        _write(tmp_path, workers=1)
    assert list(tmp_path.iterdir()) == []

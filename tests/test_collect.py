import json

import numpy as np
import pytest

from codi_sae.collect import SUMMARY_METRICS, collect_site_metrics
from codi_sae.errors import InputError


def site_file(tmp_path, position, layer, batch, rng, **overrides):
    config = {"input_dim": 16, "latent_dim": 8, "k": 2, "position": position, "layer": layer, "epochs": 3,
              "recipe": "seed-topk", "sites_trained_together": batch, **overrides}
    metrics = {key: float(rng.uniform()) for key in SUMMARY_METRICS}
    path = tmp_path / f"pos{position}_layer{layer}.json"
    path.write_text(json.dumps({"config": config, "metrics": metrics}))
    return path


def test_statistics_and_shared_config(tmp_path):
    rng = np.random.default_rng(0)
    sites = [(p, layer) for layer in (0, 1) for p in range(3)]
    batches = [4, 4, 4, 4, 2, 2]  # six sites, four per batch
    files = [site_file(tmp_path, p, layer, b, rng) for (p, layer), b in zip(sites, batches)]
    (tmp_path / "dataset.json").write_text('{"model": "m"}')
    out = collect_site_metrics(files, tmp_path / "dataset.json", tmp_path / "all.json")
    assert out == json.loads((tmp_path / "all.json").read_text())
    assert out["config"] == {"input_dim": 16, "latent_dim": 8, "k": 2, "epochs": 3, "recipe": "seed-topk",
                             "sites_trained_together": None}
    assert out["n_sites"] == 6 and out["dataset"] == {"model": "m"}
    for key in SUMMARY_METRICS:
        values = np.array([out["results"][str(layer)][str(p)][key] for p, layer in sites])
        expected = {"mean": values.mean(), "std": values.std(ddof=1), "min": values.min(), "max": values.max()}
        assert out["statistics"][key] == pytest.approx(expected, rel=1e-12), key


def test_one_batch_keeps_its_size(tmp_path):
    rng = np.random.default_rng(1)
    files = [site_file(tmp_path, p, 0, 2, rng) for p in range(2)]
    (tmp_path / "dataset.json").write_text("{}")
    out = collect_site_metrics(files, tmp_path / "dataset.json", tmp_path / "all.json")
    assert out["config"]["sites_trained_together"] == 2


def test_sites_of_different_saes_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    files = [site_file(tmp_path, 0, 0, 2, rng), site_file(tmp_path, 1, 0, 2, rng, latent_dim=16)]
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(InputError, match="latent_dim=16, but .*pos0_layer0.json has 8"):
        collect_site_metrics(files, tmp_path / "dataset.json", tmp_path / "all.json")
    assert not (tmp_path / "all.json").exists()

"""Each checkpoint's metrics are what its saved model scores on its own site's rows."""

import json

import pytest
import torch
from conftest import raw_dict, write_raw

from codi_sae.checkpoint import load_sae
from codi_sae.convert import convert_raw_json
from codi_sae.data import load_splits, site_rows
from codi_sae.saeconfig import make_recipe
from codi_sae.train import TrainSettings, train_saes

SITES = [(0, 0), (2, 1), (3, 2), (1, 1)]  # trained as one batch
D = 32


@pytest.mark.parametrize("recipe", ["seed", "topk"])
def test_metrics_are_the_saved_models_scores(tmp_path, recipe):
    raw = write_raw(tmp_path / "raw.json", raw_dict(n=20))
    paths = (tmp_path / "train.pt", tmp_path / "val.pt")
    convert_raw_json(raw, *paths, tmp_path / "info.json", train_fraction=0.5)
    outputs = [(tmp_path / f"{s}.pt", tmp_path / f"{s}.json") for s in range(len(SITES))]
    train_saes(*paths, SITES, outputs, latent_dim=D, k=2, settings=TrainSettings(epochs=3, batch_size=4),
               sites_per_batch=len(SITES), recipe=make_recipe(recipe))
    splits = load_splits(*paths)
    for site, (pt, js) in zip(SITES, outputs):
        model, _ = load_sae(pt)
        metrics = json.loads(js.read_text())["metrics"]
        x_train, x_val = (site_rows(split, path, [site])[0] for split, path in zip(splits, paths))
        with torch.no_grad():
            (r_train, z_train, _), (r_val, z_val, _) = model(x_train), model(x_val)
        assert metrics["reconstruction_loss"] == pytest.approx(float((r_val - x_val).pow(2).mean()), rel=1e-5)
        assert metrics["train_reconstruction_loss"] == pytest.approx(float((r_train - x_train).pow(2).mean()), rel=1e-5)
        # dead: never non-zero on any row of train and validation (metrics.py)
        silent_train, silent_val = (z_train == 0).all(0), (z_val == 0).all(0)
        dead = int((silent_train & silent_val).sum())
        assert (metrics["num_dead_features"], metrics["num_active_features"]) == (dead, D - dead)
        assert metrics["feature_death_rate"] == dead / D
        assert 0 < dead < min(int(silent_train.sum()), int(silent_val.sum())), \
            "test premise: some latents dead, some fire on one split only"

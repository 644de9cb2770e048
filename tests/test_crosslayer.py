import json

import pytest
import torch

from codi_sae.convert import convert_raw_json
from codi_sae.crosslayer import chance_level, cross_layer, dictionary_overlap, write_cross_layer
from codi_sae.errors import InputError
from codi_sae.saeconfig import make_recipe
from codi_sae.train import TrainSettings, train_saes

LAYERS, POSITIONS = (0, 1, 2), (0, 1, 2, 3)


def random_dictionary(H, d, seed):
    return torch.randn(H, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("signed", [True, False])
def test_a_dictionary_with_itself(signed):
    a = random_dictionary(16, 24, 0) * torch.rand(24, generator=torch.Generator().manual_seed(1))  # any column norms
    overlap = dictionary_overlap(a, a, signed)
    assert overlap["mean_max_cosine"] == pytest.approx(1, abs=1e-6)
    assert overlap["share_above_0_9"] == 1 and overlap["n_latents"] == 24
    assert overlap["same_index_cosine"] == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("signed", [True, False])
def test_a_random_dictionary_is_at_the_chance_level(signed):
    # Seeded, so the result is fixed; across seeds it varies with sd ~0.008, so 0.05 holds for any seed.
    H, d = 32, 64
    overlap = dictionary_overlap(random_dictionary(H, d, 2), random_dictionary(H, d, 3), signed)
    chance = chance_level(H, d, d, signed)
    assert overlap["mean_max_cosine"] == pytest.approx(chance, abs=0.05)
    assert 0.2 < chance < 0.9 and overlap["share_above_0_9"] == 0
    assert chance_level(H, d, d, signed) == chance  # seeded
    if signed:
        assert chance > chance_level(H, d, d, False)  # |cos| never lower than cos


def test_a_permuted_sign_flipped_copy_is_the_same_dictionary_only_when_signed():
    a = torch.linalg.qr(random_dictionary(32, 16, 4)).Q  # orthonormal columns: other latents are at cos 0
    flip = torch.tensor([1.0, -1.0] * 8)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    b = (a * flip)[:, perm]
    signed, plain = dictionary_overlap(a, b, True), dictionary_overlap(a, b, False)
    assert signed["mean_max_cosine"] == pytest.approx(1, abs=1e-6) and signed["share_above_0_9"] == 1
    # a flipped latent finds only its negation (-1) and orthogonal latents (0): its max is 0
    assert plain["mean_max_cosine"] == pytest.approx(0.5, abs=1e-5) and plain["share_above_0_9"] == 0.5
    assert signed["same_index_cosine"] < 0.5  # the permutation moved the latents


def test_zero_columns_are_left_out():
    e = torch.eye(4)[0]
    a = torch.stack([e, torch.zeros(4), 2 * e], dim=1)
    b = torch.stack([-e, torch.zeros(4), -3 * e], dim=1)  # every non-zero pair at cos -1
    plain = dictionary_overlap(a, b, False)
    assert plain["n_latents"] == 2 and plain["mean_max_cosine"] == pytest.approx(-1)  # not the zero column's 0
    assert plain["same_index_cosine"] == pytest.approx(-1)
    assert dictionary_overlap(torch.zeros(4, 3), b, True)["mean_max_cosine"] is None
    assert dictionary_overlap(a, torch.zeros(4, 3), True)["share_above_0_9"] is None
    assert dictionary_overlap(a, b[:, :2], True)["same_index_cosine"] is None  # different latent dims
    with pytest.raises(InputError, match="different input dims"):
        dictionary_overlap(a, torch.ones(5, 3), True)


def train_sites(tmp_path, raw_file, recipe):
    raw, _ = raw_file
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    sites = [(p, layer) for layer in LAYERS for p in POSITIONS]
    outputs = [(tmp_path / f"pos{p}_layer{layer}.pt", tmp_path / f"pos{p}_layer{layer}.json") for p, layer in sites]
    train_saes(data / "train.pt", data / "val.pt", sites, outputs, latent_dim=12, k=3,
               settings=TrainSettings(epochs=2, batch_size=4), sites_per_batch=6, recipe=make_recipe(recipe))
    return sites, [pt for pt, _ in outputs]


@pytest.mark.parametrize("recipe, activation", [("seed", "signed_topk"), ("topk", "relu_topk")])
def test_cross_layer_json_on_trained_checkpoints(tmp_path, raw_file, recipe, activation):
    sites, paths = train_sites(tmp_path, raw_file, recipe)
    out = tmp_path / "crosslayer.json"
    result = write_cross_layer(sites, paths, out)
    assert json.loads(out.read_text()) == result
    assert result["activation"] == activation
    assert set(result["across_layers"]) == {"0", "1", "2", "3"}
    assert set(result["across_positions"]) == {"0", "1", "2"}
    assert all(set(by) == {"0->1", "1->2"} for by in result["across_layers"].values())
    assert all(set(by) == {"0->1", "1->2", "2->3"} for by in result["across_positions"].values())
    decoder = {site: torch.load(path, weights_only=True)["model_state_dict"]["decoder.weight"]
               for site, path in zip(sites, paths)}
    signed = activation == "signed_topk"
    pair = result["across_layers"]["3"]["1->2"]
    assert {k: v for k, v in pair.items() if k != "initial_mean_max_cosine"} == dictionary_overlap(
        decoder[(3, 1)], decoder[(3, 2)], signed)
    pair = result["across_positions"]["2"]["0->1"]
    assert {k: v for k, v in pair.items() if k != "initial_mean_max_cosine"} == dictionary_overlap(
        decoder[(0, 2)], decoder[(1, 2)], signed)
    # the seed recipe starts every site from the same weights; topk from each site's own
    assert result["shared_start"] is (recipe == "seed")
    start = pair["initial_mean_max_cosine"]
    assert start == pytest.approx(1.0) if recipe == "seed" else start < 0.9
    assert result["chance"] == {"mean_max_cosine": chance_level(8, 12, 12, signed), "input_dim": 8, "latent_dim": 12,
                                "signed": signed, "draws": 8, "seed": 0}
    assert result["planted"] is None  # no ground truth given


def test_cross_layer_refuses_missing_and_mislabelled_checkpoints(tmp_path, raw_file):
    sites, paths = train_sites(tmp_path, raw_file, "seed")
    checkpoints = dict(zip(sites, paths))
    with pytest.raises(InputError, match="no checkpoint for position 4, layer 0"):
        cross_layer(checkpoints, list(LAYERS), [*POSITIONS, 4])
    checkpoints[(0, 0)] = paths[1]
    with pytest.raises(InputError, match=f"{paths[1]}: holds position 1, layer 0, not position 0, layer 0"):
        cross_layer(checkpoints, list(LAYERS), list(POSITIONS))
    with pytest.raises(InputError, match="12 sites but 11 checkpoints"):
        write_cross_layer(sites, paths[:-1], tmp_path / "out.json")


def test_planted_features_found_against_a_ground_truth_file(tmp_path, raw_file):
    sites, paths = train_sites(tmp_path, raw_file, "topk")
    decoder = {site: torch.load(path, weights_only=True)["model_state_dict"]["decoder.weight"]
               for site, path in zip(sites, paths)}
    directions = torch.randn(len(LAYERS), 5, 8, generator=torch.Generator().manual_seed(6))
    directions[1, :3] = 2 * decoder[(2, 1)][:, [4, 0, 7]].T  # three of layer 1's five planted at position 2's SAE
    truth = tmp_path / "truth.pt"
    torch.save({"synthetic": True, "directions": directions}, truth)
    result = write_cross_layer(sites, paths, tmp_path / "out.json", truth)
    planted = result["planted"]
    assert planted["n_features"] == 5 and planted["threshold"] == 0.9
    assert planted["chance_mean_max_cosine"] == chance_level(8, 5, 12, False)
    assert set(planted["sites"]) == {"0", "1", "2"} and all(set(by) == {"0", "1", "2", "3"}
                                                            for by in planted["sites"].values())
    for (p, layer) in sites:
        assert planted["sites"][str(layer)][str(p)] == dictionary_overlap(directions[layer].T, decoder[(p, layer)],
                                                                          False)
    assert planted["sites"]["1"]["2"]["share_above_0_9"] >= 0.6  # the three planted there are found


def test_planted_ground_truth_that_does_not_fit_is_refused(tmp_path, raw_file):
    sites, paths = train_sites(tmp_path, raw_file, "seed")
    checkpoints = dict(zip(sites, paths))
    for name, content, message in (
            ("wrong_h.pt", {"directions": torch.randn(3, 5, 9)},
             r"shape \[3, 5, 9\] do not fit the data \(layers 0..2, H=8\)"),
            ("few_layers.pt", {"directions": torch.randn(2, 5, 8)}, "do not fit the data"),
            ("no_directions.pt", {"is_correct": torch.ones(3)}, "no 'directions' tensor")):
        torch.save(content, tmp_path / name)
        with pytest.raises(InputError, match=f"{name}: .*{message}"):
            cross_layer(checkpoints, list(LAYERS), list(POSITIONS), tmp_path / name)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="text.pt: cannot read the demo's ground truth"):
        cross_layer(checkpoints, list(LAYERS), list(POSITIONS), tmp_path / "text.pt")

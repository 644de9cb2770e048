"""The topk recipe's switches: presets, gradients, folding, AuxK, scaling; the seed recipe untouched."""

import json

import pytest
import torch

from codi_sae.backprop import BankStep
from codi_sae.checkpoint import load_sae
from codi_sae.convert import convert_raw_json
from codi_sae.data import load_split
from codi_sae.errors import InputError
from codi_sae.sae import SAEBank, TopKAutoencoder, site_seed, sparsify, topk_mask
from codi_sae.saeconfig import RECIPES, Recipe, entry_name, entry_train, make_recipe, sae_job
from codi_sae.train import TrainSettings, fit_bank, train_saes

TOPK = make_recipe("topk")


def test_presets_and_overrides():
    assert make_recipe("seed") == Recipe()
    assert make_recipe("topk").as_dict() == {"recipe": "topk", **RECIPES["topk"]}
    mixed = make_recipe("topk", {"recipe": "topk", "activation": "signed_topk", "auxk_coef": 0.0})
    assert (mixed.activation, mixed.auxk_coef, mixed.decoder_norm) == ("signed_topk", 0.0, "every_step")
    with pytest.raises(InputError, match="sae.activation must be one of signed_topk, relu_topk, not 'relu'"):
        make_recipe("seed", {"activation": "relu"})
    with pytest.raises(InputError, match="unknown recipe 'gated'"):
        make_recipe("gated")


def test_training_jobs_carry_every_switch_of_their_recipe():
    sae = {"recipe": "seed", "activation": "relu_topk"}
    job = sae_job({"d": 64, "k": 8, "recipe": "topk", "epochs": 100}, sae)
    assert job == {"d": 64, "k": 8, "recipe": {**RECIPES["topk"], "recipe": "topk"}}
    assert Recipe.from_dict(sae_job({"d": 64, "k": 8}, sae)["recipe"]) == make_recipe("seed", sae)
    assert make_recipe("seed", sae).activation == "relu_topk"
    assert entry_train({"d": 64, "k": 8, "epochs": 100}) == {"epochs": 100} and entry_train({"d": 64, "k": 8}) == {}


def test_entry_names():
    assert entry_name({"d": 512, "k": 150}, {"recipe": "seed"}) == "d512_k150"
    assert entry_name({"d": 512, "k": 150}, {"recipe": "topk"}) == "d512_k150_topk"
    assert entry_name({"d": 512, "k": 150, "recipe": "seed"}, {"recipe": "topk"}) == "d512_k150"
    assert entry_name({"d": 64, "k": 8, "recipe": "topk", "epochs": 100}, {}) == "d64_k8_topk_e100"


def test_relu_topk_keeps_the_k_largest_positive_entries():
    pre = torch.tensor([[0.1, -3.0, 2.0, -0.5, 1.0], [-4.0, 0.3, -4.5, -0.2, -0.1]])
    assert torch.equal(sparsify(pre, 2, "relu_topk"), torch.tensor([[0.0, 0.0, 2.0, 0.0, 1.0],
                                                                    [0.0, 0.3, 0.0, 0.0, 0.0]]))
    mag = torch.tensor([[0.0, 0.0, 0.0, 2.0], [3.0, 3.0, 3.0, 1.0]])
    assert torch.equal(topk_mask(mag, 2, positive=True).sum(-1), torch.tensor([1.0, 2.0]))


def test_topk_initialisation_and_input_scaling():
    torch.manual_seed(0)
    x = 5 + 3 * torch.randn(2, 40, 6)
    bank = SAEBank(2, 6, 10, 3, seed=1, recipe=TOPK, sites=[(0, 0), (1, 0)])
    assert torch.equal(bank.enc_wt, bank.dec_wt.transpose(1, 2)) and not bank.enc_b.any()
    scaled = bank.fit_inputs(x)
    centred = scaled - scaled.mean(1, keepdim=True)
    assert torch.allclose(centred.pow(2).sum(2).mean(1), torch.tensor([6.0, 6.0]))
    assert torch.allclose(bank.dec_b, scaled.mean(1), atol=1e-5)
    constant = SAEBank(1, 6, 10, 3, seed=1, recipe=TOPK, sites=[(0, 0)])
    assert torch.equal(constant.fit_inputs(torch.ones(1, 5, 6)), torch.ones(1, 5, 6))  # scale 1, no NaN


def autograd_loss(bank: SAEBank, xb: torch.Tensor, dead: torch.Tensor | None, k_aux: int) -> torch.Tensor:
    """The recipe's loss, summed over members, written plainly for autograd."""
    b, H = xb.shape[1:]
    centre = bank.dec_b.unsqueeze(1) if bank.pre_bias else 0.0
    pre = (xb - centre) @ bank.enc_wt + bank.enc_b.unsqueeze(1)
    z = sparsify(pre, bank.k, bank.recipe.activation)
    r = z @ bank.dec_wt + bank.dec_b.unsqueeze(1)
    loss = (r - xb).pow(2).sum() / (b * H)
    if dead is None:
        return loss
    n_dead = dead.sum(1)
    k_a = min(k_aux, int(n_dead.max()))
    mag = (pre.abs() if bank.recipe.activation == "signed_topk" else pre.clamp_min(0)) * dead.unsqueeze(1)
    z_a = pre * topk_mask(mag.detach(), k_a, positive=True)
    e = (xb - r).detach()
    per_member = (z_a @ bank.dec_wt - e).pow(2).sum((1, 2)) / (b * H)
    return loss + (bank.recipe.auxk_coef * (n_dead / k_aux).clamp(max=1) * per_member).sum()


def test_site_init_per_site_draws_each_sites_own_start():
    sites = [(0, 0), (1, 0), (0, 1)]
    shared = SAEBank(3, 6, 10, 3, seed=1, recipe=make_recipe("topk", {"site_init": "shared"}), sites=sites)
    own = SAEBank(3, 6, 10, 3, seed=1, recipe=TOPK, sites=sites)
    assert torch.equal(shared.dec_wt[0], shared.dec_wt[2]) and not torch.equal(own.dec_wt[0], own.dec_wt[2])
    alone = SAEBank(1, 6, 10, 3, seed=1, recipe=TOPK, sites=[(0, 1)])
    assert torch.equal(alone.dec_wt[0], own.dec_wt[2]) and torch.equal(alone.enc_wt[0], own.enc_wt[2])
    assert own.seeds == [site_seed(1, p, layer) for p, layer in sites] and len(set(own.seeds)) == 3
    with pytest.raises(ValueError, match="per_site needs"):
        SAEBank(2, 6, 10, 3, seed=1, recipe=TOPK)
    torch.manual_seed(0)
    x = torch.randn(3, 40, 6)
    settings = TrainSettings(epochs=2, batch_size=8, lr=1e-2, seed=5)
    together, _ = fit_bank(x, 10, 3, settings, torch.device("cpu"), TOPK, sites=sites)
    for s in range(3):
        lone, _ = fit_bank(x[s : s + 1], 10, 3, settings, torch.device("cpu"), TOPK, sites=[sites[s]])
        for name, value in lone.member_state(0).items():
            assert torch.allclose(value, together.member_state(s)[name], atol=1e-5), name


@pytest.mark.parametrize("recipe", [
    TOPK,
    make_recipe("topk", {"dead_after_rows": 1, "k_aux": 5}),
    make_recipe("topk", {"dead_after_rows": 1, "activation": "signed_topk", "decoder_norm": "init"}),
    make_recipe("seed", {"decoder_bias": "mean", "input_scaling": "unit_variance"}),
], ids=["topk", "topk with AuxK", "signed with AuxK", "seed with mean bias"])
def test_bank_step_gradients_are_autograds(recipe):
    torch.manual_seed(0)
    x, rows = 2 + torch.randn(3, 14, 10), torch.tensor([0, 5, 2, 7, 11, 3, 9, 1])
    bank, reference = (SAEBank(3, 10, 16, 4, seed=2, recipe=recipe, sites=[(p, 0) for p in range(3)]) for _ in range(2))
    x = bank.fit_inputs(x)
    reference.fit_inputs(x)
    step = BankStep(bank, lr=1e-3)
    loss = step(x, rows)  # the buffers keep the gradients it stepped with
    dead = step.rows_since_fired >= recipe.dead_after_rows
    assert bool(dead.any()) == (recipe.dead_after_rows == 1), "test premise: dead latents with AuxK only"
    dead = dead if recipe.auxk_coef > 0 and dead.any() else None
    expected = autograd_loss(reference, x[:, rows], dead, step.k_aux)
    expected.backward()
    grads = [p.grad for p in (reference.enc_wt, reference.enc_b, reference.dec_wt, reference.dec_b)]
    if recipe.decoder_norm == "every_step":
        wd = reference.dec_wt.detach()
        grads[2] = grads[2] - (grads[2] * wd).sum(-1, keepdim=True) * wd
    assert loss.shape == (3,)
    for name, grad, ref in zip(("We", "be", "Wd", "bd"), step.grads, grads):
        assert torch.allclose(grad, ref, atol=1e-6, rtol=1e-4), name


def sparse_data(rows=400, H=16, features=48, seed=0) -> torch.Tensor:
    """[1, rows, H]: about 3 of ``features`` random directions per row, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(features, H, generator=g), dim=1)
    codes = (torch.rand(rows, features, generator=g) < 3 / features) * torch.rand(rows, features, generator=g) * 3
    return (codes @ directions + 0.05 * torch.randn(rows, H, generator=g)).unsqueeze(0)


def test_auxk_trains_only_dead_latents_and_revives_some():
    x = sparse_data()
    recipe = make_recipe("topk", {"dead_after_rows": 40})
    grads = {}
    for coef in (0.0, 1 / 32):
        bank = SAEBank(1, 16, 96, 3, seed=1, recipe=make_recipe("topk", {"dead_after_rows": 40, "auxk_coef": coef}),
                       sites=[(0, 0)])
        step = BankStep(bank, lr=1e-2)
        step(bank.fit_inputs(x), torch.arange(40))
        grads[coef] = [g.clone() for g in step.grads]
    dead = step.rows_since_fired[0] >= recipe.dead_after_rows
    assert 0 < int(dead.sum()) < 96, "test premise: some latents dead, some alive"
    we, be, wd = (grads[1 / 32][i] - grads[0.0][i] for i in range(3))
    assert not we[0][:, ~dead].any() and not be[0][~dead].any() and not wd[0][~dead].any()
    assert we[0][:, dead].any() and wd[0][dead].any()
    # with a random encoder many latents die; AuxK brings some back (and lowers the error)
    settings = TrainSettings(epochs=30, batch_size=40, lr=1e-2, seed=1)
    results = {}
    for coef in (0.0, 1 / 32):
        recipe = make_recipe("topk", {"auxk_coef": coef, "dead_after_rows": 200, "encoder_init": "linear"})
        bank, _ = fit_bank(x, 96, 3, settings, torch.device("cpu"), recipe, sites=[(0, 0)])
        assert torch.allclose(bank.dec_wt.norm(dim=-1), torch.ones(1, 96), atol=1e-5)  # every_step
        with torch.no_grad():
            recon, z = bank(x)
        results[coef] = (int((z == 0).all(1).sum()), float((recon - x).pow(2).sum()))
    assert results[1 / 32][0] < results[0.0][0] and results[1 / 32][1] < results[0.0][1], results


@pytest.mark.parametrize("recipe", [TOPK, make_recipe("topk", {"activation": "signed_topk"})], ids=["relu", "signed"])
def test_folded_weights_reproduce_training_reconstructions_from_raw_inputs(recipe):
    x = 40 + 7 * sparse_data()  # far from unit scale, far from zero mean
    bank = SAEBank(1, 16, 24, 4, seed=3, recipe=recipe, sites=[(0, 0)])
    scaled = bank.fit_inputs(x)
    step = BankStep(bank, lr=1e-2)
    for _ in range(20):
        step(scaled, torch.randperm(400)[:64])
    with torch.no_grad():
        recon_scaled, z_scaled = bank(scaled)
        bank.fold_()
        recon, z = bank(x)
    scale = float(bank.scale[0])
    assert scale < 0.5 and torch.allclose(recon, recon_scaled / scale, rtol=1e-4, atol=1e-3)
    assert torch.allclose(z, z_scaled / scale, rtol=1e-4, atol=1e-5)
    sae = TopKAutoencoder(16, 24, 4, recipe.activation)
    sae.load_state_dict(bank.member_state(0))
    assert torch.allclose(sae(x[0])[0], recon[0], atol=1e-4)


def test_checkpoint_of_a_topk_sae(tmp_path, raw_file):
    raw, _ = raw_file
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    outputs = [(tmp_path / "s.pt", tmp_path / "s.json")]
    train_saes(data / "train.pt", data / "val.pt", [(1, 2)], outputs, latent_dim=12, k=3,
               settings=TrainSettings(epochs=3, batch_size=4), sites_per_batch=1, recipe=TOPK)
    model, ckpt = load_sae(outputs[0][0])
    cfg = ckpt["config"]
    assert {key: cfg[key] for key in RECIPES["topk"] if key != "k_aux"} == {
        key: value for key, value in RECIPES["topk"].items() if key != "k_aux"}
    assert (cfg["recipe"], cfg["k_aux"], model.activation) == ("topk", 4, "relu_topk") and cfg["input_scale"] != 1
    assert json.loads(outputs[0][1].read_text())["config"] == cfg
    x = load_split(data / "val.pt")["activations"][:20]
    _, z, _ = model(x)
    assert (z >= 0).all() and ((z > 0).sum(-1) <= 3).all()

import torch

from codi_sae.optim import Adam
from codi_sae.sae import SAEBank, TopKAutoencoder, init_state, topk_sparsify
from codi_sae.train import TrainSettings, fit_bank


def test_topk_keeps_k_largest_magnitudes_with_signs():
    pre = torch.tensor([[0.1, -3.0, 2.0, -0.5, 1.0], [4.0, 0.0, -4.5, 0.2, -0.1]])
    z = topk_sparsify(pre, 2)
    assert torch.equal(z, torch.tensor([[0.0, -3.0, 2.0, 0.0, 0.0], [4.0, 0.0, -4.5, 0.0, 0.0]]))


def test_exactly_k_active_per_row_and_shapes():
    torch.manual_seed(0)
    sae = TopKAutoencoder(input_dim=12, latent_dim=20, k=5)
    x = torch.randn(7, 12)
    recon, z, stats = sae(x)
    assert recon.shape == (7, 12) and z.shape == (7, 20)
    assert ((z != 0).sum(-1) == 5).all()
    assert stats["l0_mean"] == 5.0
    assert sae.encoder.weight.shape == (20, 12) and sae.decoder.weight.shape == (12, 20)
    pre = sae.encoder(x)
    kept = z != 0
    assert torch.equal(z[kept], pre[kept])  # values and signs of the kept pre-activations


def test_decoder_columns_unit_norm_at_init():
    sae = TopKAutoencoder(16, 24, 4)
    assert torch.allclose(sae.decoder.weight.norm(dim=0), torch.ones(24), atol=1e-6)
    state = init_state(16, 24, torch.Generator().manual_seed(1))
    assert torch.allclose(state["decoder.weight"].norm(dim=0), torch.ones(24), atol=1e-6)
    bank = SAEBank(3, 16, 24, 4, seed=1)
    assert torch.allclose(bank.dec_wt.norm(dim=2), torch.ones(3, 24), atol=1e-6)


def test_bank_member_is_a_plain_topk_autoencoder():
    bank = SAEBank(3, 10, 16, 4, seed=3)
    x = torch.randn(3, 6, 10)
    recon, z = bank(x)
    for s in range(3):
        sae = TopKAutoencoder(10, 16, 4)
        sae.load_state_dict(bank.member_state(s))
        r, f, _ = sae(x[s])
        assert torch.allclose(r, recon[s], atol=1e-5) and torch.allclose(f, z[s], atol=1e-5)


def test_member_state_is_standalone():
    bank = SAEBank(4, 10, 16, 4, seed=3)
    w = bank.member_state(2)["encoder.weight"]
    assert w.untyped_storage().nbytes() == w.numel() * 4  # not a view of the whole bank


def test_batched_training_equals_one_by_one():
    torch.manual_seed(0)
    x = torch.randn(3, 50, 10)
    settings = TrainSettings(epochs=3, batch_size=16, lr=1e-2, seed=5)
    together, _ = fit_bank(x, 12, 3, settings, torch.device("cpu"))
    for s in range(3):
        alone, _ = fit_bank(x[s : s + 1], 12, 3, settings, torch.device("cpu"))
        for name, value in alone.member_state(0).items():
            assert torch.allclose(value, together.member_state(s)[name], atol=1e-5), name


def test_training_is_reproducible_and_learns():
    torch.manual_seed(0)
    x = torch.randn(1, 200, 8) @ torch.randn(8, 8)
    settings = TrainSettings(epochs=20, batch_size=32, lr=1e-2, seed=1)
    a, _ = fit_bank(x, 16, 8, settings, torch.device("cpu"))
    b, _ = fit_bank(x, 16, 8, settings, torch.device("cpu"))
    assert all(torch.equal(a.member_state(0)[k], b.member_state(0)[k]) for k in a.member_state(0))
    untrained = SAEBank(1, 8, 16, 8, seed=1)
    with torch.no_grad():
        err = lambda bank: (bank(x)[0] - x).pow(2).mean()  # noqa: E731
        assert err(a) < 0.5 * err(untrained)


def test_adam_matches_torch_adam():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(4, 5))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = Adam([a], lr=1e-2), torch.optim.Adam([b], lr=1e-2)
    for _ in range(5):
        for p, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            (p.sin() * torch.arange(5.0)).sum().backward()
            opt.step()
    assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_bank_weights_and_gradients_are_contiguous():
    bank = SAEBank(3, 16, 8, 2, seed=0)
    x = torch.randn(3, 5, 16)
    bank(x)[0].pow(2).sum().backward()
    assert all(p.is_contiguous() and p.grad.is_contiguous() for p in bank.parameters())

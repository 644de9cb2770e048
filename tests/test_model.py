import ctypes
import json
import os
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import codi_sae.train

from codi_sae.backprop import BankStep
from codi_sae.convert import convert_raw_json
from codi_sae.devices import pick_device
from codi_sae.errors import InputError
from codi_sae.optim import Adam
from codi_sae.parallel import run_in_threads
from codi_sae.sae import SAEBank, TopKAutoencoder, init_state, sparsify, topk_mask
from codi_sae.saeconfig import make_recipe
from codi_sae.train import TrainSettings, fit_bank, train_saes


def test_topk_keeps_k_largest_magnitudes_with_signs():
    pre = torch.tensor([[0.1, -3.0, 2.0, -0.5, 1.0], [4.0, 0.0, -4.5, 0.2, -0.1]])
    z = sparsify(pre, 2)
    assert torch.equal(z, torch.tensor([[0.0, -3.0, 2.0, 0.0, 0.0], [4.0, 0.0, -4.5, 0.0, 0.0]]))


def test_topk_mask_is_torch_topks_choice():
    torch.manual_seed(0)
    mag = torch.randn(3, 50, 64).abs()
    expected = torch.zeros_like(mag).scatter_(-1, mag.topk(20, dim=-1).indices, 1.0)
    assert torch.equal(topk_mask(mag, 20), expected)
    assert torch.equal(topk_mask(mag, 64), torch.ones_like(mag))


def test_topk_mask_keeps_exactly_k_when_values_tie():
    mag = torch.tensor([[5.0, 1.0, 2.0, 2.0, 2.0, 0.5], [3.0, 3.0, 3.0, 3.0, 3.0, 3.0], [1.0, 4.0, 3.0, 2.0, 0.0, 5.0]])
    mask = topk_mask(mag, 3)
    assert torch.equal(mask.sum(-1), torch.tensor([3.0, 3.0, 3.0]))
    assert mask[0, 0] == 1 and mask[0, 1] == 0 and mask[0, 5] == 0 and mask[0, 2:5].sum() == 2
    assert torch.equal(mask[2], torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0]))


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


@pytest.mark.parametrize("model", [lambda d, k: TopKAutoencoder(8, d, k), lambda d, k: SAEBank(2, 8, d, k, seed=0)])
def test_k_must_be_between_1_and_d(model):
    with pytest.raises(InputError, match="k=5 is larger than d=4"):
        model(4, 5)
    with pytest.raises(InputError, match="k=0 must be at least 1"):
        model(4, 0)
    assert model(4, 4).k == 4


def test_decoder_columns_unit_norm_at_init():
    sae = TopKAutoencoder(16, 24, 4)
    assert torch.allclose(sae.decoder.weight.norm(dim=0), torch.ones(24), atol=1e-6)
    state = init_state(16, 24, torch.Generator().manual_seed(1))
    assert torch.allclose(state["decoder.weight"].norm(dim=0), torch.ones(24), atol=1e-6)
    bank = SAEBank(3, 16, 24, 4, seed=1)
    assert torch.allclose(bank.dec_wt.norm(dim=2), torch.ones(3, 24), atol=1e-6)


def test_bank_members_start_where_the_seeds_model_starts():
    torch.manual_seed(7)
    seeds_model = TopKAutoencoder(10, 16, 4)  # the seed: torch.manual_seed, then the model
    bank = SAEBank(2, 10, 16, 4, seed=7)
    for name, value in seeds_model.state_dict().items():
        assert torch.equal(value, bank.member_state(1)[name]), name


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


def _other_signature(params, grads):
    raise TypeError("_fused_adam_() takes 2 positional arguments")


BROKEN_KERNELS = {"missing": None, "other signature": _other_signature, "does nothing": lambda *a, **kw: None}


@pytest.mark.parametrize("kernel", ["private kernel", *BROKEN_KERNELS])
def test_adam_matches_torch_adam(monkeypatch, kernel):
    if kernel == "missing":
        monkeypatch.delattr(torch, "_fused_adam_")
    elif kernel in BROKEN_KERNELS:
        monkeypatch.setattr(torch, "_fused_adam_", BROKEN_KERNELS[kernel])
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(4, 5))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = Adam([a], lr=1e-2), torch.optim.Adam([b], lr=1e-2)
    assert (ours.fallback is None) == (kernel == "private kernel")
    for _ in range(5):
        for p in (a, b):
            p.grad = None
            (p.sin() * torch.arange(5.0)).sum().backward()
        ours.step([a.grad])
        theirs.step()
    assert torch.allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rows", [[0, 5, 2, 7, 11, 3, 9, 1], [13, 4, 6]], ids=["full", "partial"])
def test_bank_step_gradients_are_autograds(rows):
    torch.manual_seed(0)
    x, rows = torch.randn(3, 14, 10), torch.tensor(rows)
    bank, reference = SAEBank(3, 10, 16, 4, seed=2), SAEBank(3, 10, 16, 4, seed=2)
    step = BankStep(bank, lr=1e-3)
    loss = step(x, rows)  # the buffers keep the gradients it stepped with
    xb = x[:, rows]
    expected = F.mse_loss(reference(xb)[0], xb, reduction="sum") / (len(rows) * 10)
    expected.backward()
    assert loss.shape == (3,) and torch.allclose(loss.sum(), expected, rtol=1e-6)
    for grad, p in zip(step.grads, [reference.enc_wt, reference.enc_b, reference.dec_wt, reference.dec_b]):
        assert grad.shape == p.shape and torch.allclose(grad, p.grad, atol=1e-7, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("recipe", ["seed", "topk"])
def test_bank_step_on_cuda_matches_the_cpu(recipe):
    torch.manual_seed(0)
    x, rows = 2 + torch.randn(3, 40, 10), torch.randperm(40)[:16]
    sites = [(p, 0) for p in range(3)]
    banks = {device: SAEBank(3, 10, 16, 4, seed=2, recipe=make_recipe(recipe), sites=sites).to(device)
             for device in ("cpu", "cuda")}
    inputs = {device: bank.fit_inputs(x.to(device)) for device, bank in banks.items()}  # the recipe's scale and bias
    steps = {device: BankStep(bank, lr=1e-2) for device, bank in banks.items()}
    for _ in range(3):
        losses = {device: step(inputs[device], rows.to(device)) for device, step in steps.items()}
    assert torch.allclose(losses["cuda"].cpu(), losses["cpu"], rtol=1e-4)
    for name, value in banks["cpu"].member_state(1).items():
        assert torch.allclose(banks["cuda"].member_state(1)[name], value, atol=1e-4), name


def test_cuda_is_refused_where_no_gpu_is_seen(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="probe.device is 'cuda' but this job sees no CUDA device"):
        pick_device("cuda", "probe.device")
    assert pick_device("auto") == torch.device("cpu")


def test_worker_threads_do_not_change_results(tmp_path, raw_file):
    raw, _ = raw_file
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    sites = [(p, layer) for layer in (0, 1, 2) for p in (0, 1)]
    states = {}
    threads_before = torch.get_num_threads()
    for threads in (1, 2):
        outputs = [(tmp_path / f"t{threads}_{s}.pt", tmp_path / f"t{threads}_{s}.json") for s in range(len(sites))]
        train_saes(data / "train.pt", data / "val.pt", sites, outputs, latent_dim=12, k=3,
                    settings=TrainSettings(epochs=3, batch_size=4), sites_per_batch=2, threads=threads)
        states[threads] = [torch.load(pt, weights_only=True)["model_state_dict"] for pt, _ in outputs]
        assert torch.get_num_threads() == threads_before  # the process's setting is restored
    for one, two in zip(states[1], states[2]):
        assert all(torch.equal(one[name], two[name]) for name in one)


def test_each_worker_thread_runs_its_ops_on_its_share_of_the_threads(tmp_path, raw_file, monkeypatch):
    """OpenMP's and MKL's own counts, as the matmuls see them, in each worker from its first op:
    a new thread starts at the core count, whatever torch.set_num_threads said elsewhere."""
    lib = Path(torch.__file__).parent / "lib"
    counters = {}
    for path, name in ((lib / "libgomp.so.1", "omp_get_max_threads"), (lib / "libtorch_cpu.so", "mkl_get_max_threads")):
        if path.exists() and hasattr(loaded := ctypes.CDLL(str(path)), name):
            counters[name] = getattr(loaded, name)
    if not counters or (os.cpu_count() or 1) < 2:
        pytest.skip("needs torch's own OpenMP or MKL, and 2 cores (where a new thread starts at 2)")
    raw, _ = raw_file
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    seen = []

    def counting_fit_bank(*args, **kwargs):
        seen.append({name: count() for name, count in counters.items()})
        return fit_bank(*args, **kwargs)

    monkeypatch.setattr(codi_sae.train, "fit_bank", counting_fit_bank)
    outputs = [(tmp_path / f"{s}.pt", tmp_path / f"{s}.json") for s in range(4)]
    train_saes(data / "train.pt", data / "val.pt", [(0, 0), (1, 0), (2, 0), (3, 0)], outputs, latent_dim=12, k=3,
               settings=TrainSettings(epochs=1, batch_size=4), sites_per_batch=1, threads=2)
    assert seen == [dict.fromkeys(counters, 1)] * 4  # 2 threads, 2 workers: one thread each


def test_run_in_threads_raises_the_first_failure_and_cancels_the_rest():
    done = []

    def job(i):
        if i == 1:
            raise ValueError("bad job")
        time.sleep(0.02)
        done.append(i)

    with pytest.raises(ValueError, match="bad job"):
        run_in_threads(job, range(50), workers=1)
    assert 0 in done and len(done) < 10  # the jobs queued behind the failure never ran


def test_a_loss_that_is_not_finite_names_the_site_and_epoch(tmp_path):
    from conftest import raw_dict, write_raw

    obj = raw_dict()
    for sample in obj["samples"]:  # position 1 of layer 2 holds values whose squares overflow float32
        sample["thoughts"]["layer_2"][1] = [v * 1e20 for v in sample["thoughts"]["layer_2"][1]]
    raw = write_raw(tmp_path / "raw.json", obj)
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    outputs = [(tmp_path / f"{s}.pt", tmp_path / f"{s}.json") for s in range(2)]
    with pytest.raises(InputError, match=r"train.pt: position 1, layer 2: the training loss is not finite at "
                                         r"epoch 1 \(inputs too large for float32, or train.lr=0.001 too high\?\)"):
        train_saes(data / "train.pt", data / "val.pt", [(0, 2), (1, 2)], outputs, latent_dim=12, k=3,
                   settings=TrainSettings(epochs=2, batch_size=4), sites_per_batch=2)
    assert not any(pt.exists() or js.exists() for pt, js in outputs)


def test_a_constant_site_gets_null_ratios_not_nan(tmp_path):
    from conftest import raw_dict, write_raw
    from codi_sae.baselines import site_baselines

    obj = raw_dict()
    for sample in obj["samples"]:
        sample["thoughts"]["layer_1"][2] = [0.5 * h for h in range(8)]  # the same vector in every problem
    raw = write_raw(tmp_path / "raw.json", obj)
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    outputs = [(tmp_path / f"{s}.pt", tmp_path / f"{s}.json") for s in range(2)]
    train_saes(data / "train.pt", data / "val.pt", [(2, 1), (1, 1)], outputs, latent_dim=12, k=3,
               settings=TrainSettings(epochs=2, batch_size=4), sites_per_batch=2)
    constant, varying = (json.loads(js.read_text())["metrics"] for _, js in outputs)
    assert constant["fvu"] is None and constant["explained_variance_std"] is None
    assert constant["explained_variance"] is not None  # the seed's: variance over all elements, not per dim
    assert all(v is not None for v in varying.values())
    assert "NaN" not in outputs[0][1].read_text()
    x = torch.full((6, 8), 0.5)
    base = site_baselines(x, x, [3])
    assert base["mean_only"]["fvu"] is None and base["pca"]["3"]["fvu"] is None

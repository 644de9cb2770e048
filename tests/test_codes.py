import numpy as np
import pytest
import torch

from codi_sae.atomic import save_torch
from codi_sae.checkpoint import load_sae
from codi_sae.codes import codes_dense, codes_sparse, encode, load_codes, write_site_codes
from codi_sae.convert import convert_raw_json
from codi_sae.data import load_split, site_rows
from codi_sae.errors import InputError
from codi_sae.sae import TopKAutoencoder
from codi_sae.saeconfig import make_recipe
from codi_sae.train import TrainSettings, train_saes


def test_encode_keeps_the_active_latents_largest_first():
    torch.manual_seed(0)
    for activation in ("signed_topk", "relu_topk"):
        model = TopKAutoencoder(8, 16, 12, activation)
        x = torch.randn(30, 8)
        indices, values = encode(model, x, chunk=7)
        z = model.encode(x).detach()
        assert indices.dtype == torch.int32 and indices.shape == values.shape == (30, 12)
        codes = {"indices": indices, "values": values, "latent_dim": 16}
        assert torch.equal(codes_dense(codes), z)
        assert torch.equal(codes_sparse(codes).to_dense(), z)
        assert (values.abs().diff(dim=1) <= 0).all()  # largest magnitude first
        assert torch.equal(indices == -1, values == 0)
    assert (indices == -1).any(), "test premise: relu_topk leaves some rows with fewer than K active"


def test_site_codes_file(tmp_path, raw_file):
    raw, _ = raw_file
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    sites = [(1, 2), (3, 0)]
    ckpts = [(tmp_path / f"{p}_{l}.pt", tmp_path / f"{p}_{l}.json") for p, l in sites]
    train_saes(data / "train.pt", data / "val.pt", sites, ckpts, latent_dim=12, k=3,
               settings=TrainSettings(epochs=2, batch_size=4), sites_per_batch=2, recipe=make_recipe("topk"))
    outs = [tmp_path / f"codes_{i}.pt" for i in range(2)]
    with pytest.raises(InputError, match=r"3_0.pt: holds position 3, layer 0, not position 1, layer 2"):
        write_site_codes(data / "train.pt", data / "val.pt", sites, [pt for pt, _ in ckpts[::-1]], outs)
    other = TopKAutoencoder(6, 12, 3)
    save_torch(tmp_path / "h6.pt", {"config": {"input_dim": 6, "latent_dim": 12, "k": 3, "position": 1, "layer": 2},
                                    "model_state_dict": other.state_dict()})
    with pytest.raises(InputError, match="h6.pt: takes inputs of 6 dims, but the activations have 8"):
        write_site_codes(data / "train.pt", data / "val.pt", sites[:1], [tmp_path / "h6.pt"], outs[:1])
    assert not any(out.exists() for out in outs)
    write_site_codes(data / "train.pt", data / "val.pt", sites, [pt for pt, _ in ckpts], outs)
    train, val = load_split(data / "train.pt"), load_split(data / "val.pt")
    for (position, layer), (pt, _), out in zip(sites, ckpts, outs):
        codes = load_codes(out)
        assert codes["problem_ids"] == train["problems"]["ids"] + val["problems"]["ids"]
        assert codes["split"] == ["train"] * 8 + ["val"] * 2
        assert (codes["config"]["position"], codes["config"]["layer"], codes["latent_dim"]) == (position, layer, 12)
        model = TopKAutoencoder(8, 12, 3, "relu_topk")
        model.load_state_dict(torch.load(pt, weights_only=True)["model_state_dict"])
        x = torch.cat([site_rows(train, "t", [(position, layer)])[0], site_rows(val, "v", [(position, layer)])[0]])
        assert torch.allclose(codes_dense(codes), model.encode(x).detach())


def test_encode_takes_arrays_and_doubles_and_refuses_what_it_cannot_encode():
    torch.manual_seed(1)
    model = TopKAutoencoder(8, 16, 4)
    x = torch.randn(5, 8)
    expected = encode(model, x)
    for same in (x.numpy(), x.double()):
        assert all(torch.equal(a, b) for a, b in zip(encode(model, same), expected))
    for bad, message in ((torch.randn(5, 6), r"shape \[N, 8\], not torch.float32 \[5, 6\]"),
                         (torch.randn(8), r"not torch.float32 \[8\]"),
                         (np.ones((2, 8), dtype=np.int64), r"not torch.int64 \[2, 8\]")):
        with pytest.raises(InputError, match=message):
            encode(model, bad)
    x[3, 2] = float("nan")
    with pytest.raises(InputError, match="row 3 of the activations is not finite"):
        encode(model, x)


def test_files_that_are_not_codes_or_of_an_unknown_activation_are_refused(tmp_path):
    save_torch(tmp_path / "tensor.pt", torch.zeros(3))
    save_torch(tmp_path / "partial.pt", {"indices": torch.zeros(1, 2), "values": torch.zeros(1, 2)})
    with pytest.raises(InputError, match="tensor.pt: not a codes file of this workflow: no indices, values"):
        load_codes(tmp_path / "tensor.pt")
    with pytest.raises(InputError, match="partial.pt: not a codes file of this workflow: no problem_ids, split, "
                                         "latent_dim, config$"):
        load_codes(tmp_path / "partial.pt")
    model = TopKAutoencoder(8, 16, 4)
    save_torch(tmp_path / "sae.pt", {"config": {"input_dim": 8, "latent_dim": 16, "k": 4, "activation": "topk"},
                                     "model_state_dict": model.state_dict()})
    with pytest.raises(InputError, match=r"sae.pt: not an SAE checkpoint .*activation 'topk' is none of "
                                         r"signed_topk, relu_topk"):
        load_sae(tmp_path / "sae.pt")

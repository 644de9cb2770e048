import torch

from codi_sae.codes import codes_dense, codes_sparse, encode, load_codes, write_site_codes
from codi_sae.convert import convert_raw_json
from codi_sae.data import load_split, site_rows
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

import json

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from codi_sae.atomic import write_json
from codi_sae.codes import codes_dense, load_codes, write_site_codes
from codi_sae.convert import convert_raw_json
from codi_sae.data import load_split, site_rows
from codi_sae.errors import InputError
from codi_sae.probe import METRICS, MODELS, ProbeSettings, probe_site, write_probes
from codi_sae.train import TrainSettings, train_saes
from conftest import raw_dict, write_raw


def sparse_codes(rng, n, d, active):
    """[n, d] codes with ``active`` random latents per row, values in (0.5, 2)."""
    codes = np.zeros((n, d), np.float32)
    for row in codes:
        row[rng.choice(d, active, replace=False)] = rng.uniform(0.5, 2, active)
    return codes


def site(n=200, d=32, H=16, seed=0, latent=7):
    """Codes with dead latents 0-2, raw activations of noise, and labels: is ``latent`` active."""
    rng = np.random.default_rng(seed)
    codes = sparse_codes(rng, n, d, 6)
    codes[:, :3] = 0
    raw = rng.normal(size=(n, H)).astype(np.float32)
    return codes, raw, codes[:, latent] > 0


def folds_of(labels, settings=ProbeSettings()):
    """The held-out rows of each fold, as probe_site draws them."""
    folds = min(settings.folds, labels.sum(), (~labels).sum())
    return [test for _, test in StratifiedKFold(folds, shuffle=True, random_state=settings.seed).split(labels, labels)]


def test_the_codes_probe_finds_the_latent_that_decides():
    codes, raw, labels = site()
    out = probe_site(codes, raw, labels, 4, ProbeSettings())
    models = out["models"]
    assert (out["n"], out["positives"], out["folds"], out["pca_components"]) == (200, int(labels.sum()), 5, 4)
    assert models["codes"]["auroc"]["mean"] > 0.9
    assert models["codes"]["balanced_accuracy"]["mean"] > models["majority"]["balanced_accuracy"]["mean"] + 0.3
    assert models["codes"]["accuracy"]["mean"] > models["majority"]["accuracy"]["mean"] + 0.1
    assert models["raw"]["auroc"]["mean"] < 0.7  # the raw activations are noise here
    assert out["top_latents"][0]["latent"] == 7 and out["top_latents"][0]["coef"] > 0
    assert len(out["top_latents"]) == 10
    everything = probe_site(codes, raw, labels, 4, ProbeSettings(top_latents=32))["top_latents"]
    assert {e["latent"]: e["coef"] for e in everything}.keys() == set(range(32))
    assert all(e["coef"] == 0.0 for e in everything if e["latent"] < 3)  # dead latents: coefficient 0


def test_a_latent_constant_on_a_folds_training_rows_breaks_nothing():
    codes, raw, labels = site(n=100)
    held_out = folds_of(labels)[0]
    codes[:, 5] = 0
    codes[held_out[:2], 5] = 50.0  # fires only on two held-out problems of the first fold
    out = probe_site(codes, raw, labels, 4, ProbeSettings())
    assert out["models"]["codes"]["auroc"]["mean"] > 0.9
    json.dumps(out, allow_nan=False)


def test_noise_labels_give_chance_auroc():
    rng = np.random.default_rng(1)
    codes, raw = sparse_codes(rng, 1000, 32, 6), rng.normal(size=(1000, 16)).astype(np.float32)
    labels = rng.random(1000) < 0.45
    out = probe_site(codes, raw, labels, 4, ProbeSettings())
    for model in ("codes", "raw", "pca"):
        assert out["models"][model]["auroc"]["mean"] == pytest.approx(0.5, abs=0.08), model
    assert out["models"]["majority"]["auroc"] == {"mean": 0.5, "std": 0.0, "folds": [0.5] * 5}


@pytest.mark.parametrize("right", [0, 1, 39, 40])
def test_too_few_problems_in_the_rarer_class_gives_no_folds(tmp_path, right):
    codes, raw, _ = site(n=40)
    labels = np.arange(40) < right
    out = probe_site(codes, raw, labels, 4, ProbeSettings())
    assert (out["n"], out["positives"], out["folds"], out["top_latents"]) == (40, right, 0, [])
    assert set(out["models"]) == set(MODELS)
    for model in MODELS:
        assert out["models"][model] == {m: {"mean": None, "std": None, "folds": []} for m in METRICS}
    assert "at least 2" in out["note"] and ("right" if right < 20 else "wrong") in out["note"]
    write_json(tmp_path / "out.json", out)  # no NaN


def test_folds_are_stratified_and_capped_by_the_rarer_class():
    codes, raw, _ = site(n=60)
    labels = np.arange(60) % 20 == 0  # 3 right: 3 folds, each holding out 1 right and 19 wrong
    out = probe_site(codes, raw, labels, 4, ProbeSettings())
    assert out["folds"] == 3
    assert out["models"]["majority"]["accuracy"]["folds"] == pytest.approx([19 / 20] * 3)
    assert all(len(out["models"][m]["auroc"]["folds"]) == 3 for m in MODELS)


def test_majority_accuracy_is_the_majority_share():
    codes, raw, _ = site(n=100)
    labels = np.zeros(100, dtype=bool)
    labels[::5] = labels[1::5] = True  # 40 right: every held-out fold is 8 right of 20
    majority = probe_site(codes, raw, labels, 4, ProbeSettings())["models"]["majority"]
    assert majority["accuracy"]["folds"] == [0.6] * 5 and majority["accuracy"]["mean"] == pytest.approx(0.6)
    assert majority["balanced_accuracy"]["folds"] == [0.5] * 5 and majority["auroc"]["mean"] == 0.5


def test_majority_is_dummy_classifiers_most_frequent():
    rng = np.random.default_rng(3)
    codes, raw = sparse_codes(rng, 57, 16, 4), rng.normal(size=(57, 8)).astype(np.float32)
    labels = rng.random(57) < 0.5
    majority = probe_site(codes, raw, labels, 3, ProbeSettings(seed=4))["models"]["majority"]
    dummy = cross_validate(DummyClassifier(strategy="most_frequent"), codes, labels,
                           cv=StratifiedKFold(5, shuffle=True, random_state=4), scoring="accuracy")
    assert majority["accuracy"]["folds"] == pytest.approx(dummy["test_score"].tolist())


def test_the_probes_are_scikit_learns_pipelines(caplog):
    rng = np.random.default_rng(2)
    n, H = 150, 12
    raw = (rng.normal(size=(n, H)) @ rng.normal(size=(H, H)) + 5).astype(np.float32)
    raw[100:] += 30 * rng.normal(size=(50, 1)).astype(np.float32) * np.eye(H, dtype=np.float32)[0]
    codes = sparse_codes(rng, n, 20, 5)
    signal = raw[:, 0] / raw[:, 0].std() + 2 * codes[:, 3] + rng.normal(size=n)
    labels = signal > np.quantile(signal, 0.55)
    pca_rows = np.arange(n) < 100  # the PCA sees these rows only, not the 50 with a large extra direction
    out = probe_site(codes, raw, labels, 5, ProbeSettings(C=0.5, seed=1), raw[pca_rows])
    assert "converging" not in caplog.text and out["pca_components"] == 5
    cv = StratifiedKFold(5, shuffle=True, random_state=1)
    logistic = lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.5, solver="newton-cg"))  # noqa: E731
    scores = PCA(5, svd_solver="covariance_eigh").fit(raw[pca_rows]).transform(raw)
    for model, x in (("codes", codes), ("raw", raw), ("pca", scores)):
        ref = cross_validate(logistic(), x, labels, cv=cv, scoring=["accuracy", "balanced_accuracy", "roc_auc"])
        ours = out["models"][model]
        assert ours["auroc"]["folds"] == pytest.approx(ref["test_roc_auc"]), model
        assert ours["accuracy"]["folds"] == pytest.approx(ref["test_accuracy"]), model
        assert ours["balanced_accuracy"]["folds"] == pytest.approx(ref["test_balanced_accuracy"]), model
    refit = logistic().fit(codes, labels)[-1].coef_[0]
    top = out["top_latents"]
    assert [e["latent"] for e in top] == np.argsort(-np.abs(refit), kind="stable")[:10].tolist()
    assert [e["coef"] for e in top] == pytest.approx(refit[[e["latent"] for e in top]])


def test_settings_are_checked():
    with pytest.raises(InputError, match="folds=1"):
        ProbeSettings(folds=1)
    with pytest.raises(InputError, match="C=0"):
        ProbeSettings(C=0)


def site_files(tmp_path, raw_file, sites):
    """Split files, and a trained SAE's codes file for each site."""
    raw, _ = raw_file
    data = tmp_path / "data"
    convert_raw_json(raw, data / "train.pt", data / "val.pt", data / "info.json")
    ckpts = [(tmp_path / f"sae_{p}_{layer}.pt", tmp_path / f"sae_{p}_{layer}.json") for p, layer in sites]
    train_saes(data / "train.pt", data / "val.pt", sites, ckpts, latent_dim=12, k=3,
               settings=TrainSettings(epochs=2, batch_size=4), sites_per_batch=2)
    codes = [tmp_path / f"codes_{p}_{layer}.pt" for p, layer in sites]
    write_site_codes(data / "train.pt", data / "val.pt", sites, [pt for pt, _ in ckpts], codes)
    return data / "train.pt", data / "val.pt", codes


def test_write_probes_on_real_files(tmp_path, raw_file):
    sites = [(0, 1), (3, 2)]
    train_pt, val_pt, codes = site_files(tmp_path, raw_file, sites)
    out = tmp_path / "probe.json"
    settings = ProbeSettings(top_latents=5)
    returned = write_probes(train_pt, val_pt, sites, codes, settings, out)
    doc = json.loads(out.read_text())
    assert doc == returned
    assert doc["settings"] == {"folds": 5, "C": 1.0, "seed": 0, "top_latents": 5}
    assert {layer: sorted(by_pos) for layer, by_pos in doc["sites"].items()} == {"1": ["0"], "2": ["3"]}
    for result in (doc["sites"]["1"]["0"], doc["sites"]["2"]["3"]):
        assert (result["n"], result["positives"], result["folds"], result["pca_components"]) == (10, 4, 4, 3)
        for model in MODELS:
            for metric in METRICS:
                stat = result["models"][model][metric]
                assert len(stat["folds"]) == 4 and 0 <= stat["mean"] <= 1 and stat["std"] >= 0
        assert len(result["top_latents"]) == 5 and all(0 <= e["latent"] < 12 for e in result["top_latents"])
    assert write_probes(train_pt, val_pt, sites, codes, settings, tmp_path / "p2.json", workers=2) == doc


def test_ungraded_problems_are_left_out_of_the_probe(tmp_path):
    """The probes use the graded problems only; the PCA is still fit on every training row."""
    obj = raw_dict(n=14)
    for i in (2, 7):
        obj["samples"][i]["is_correct"] = None
    raw = write_raw(tmp_path / "raw.json", obj)
    train_pt, val_pt, codes = site_files(tmp_path, (raw, obj), [(0, 1)])
    site = write_probes(train_pt, val_pt, [(0, 1)], codes, ProbeSettings(), tmp_path / "probe.json")["sites"]["1"]["0"]
    train, val = (load_split(path) for path in (train_pt, val_pt))
    labels = train["problems"]["is_correct"] + val["problems"]["is_correct"]
    graded = np.array([label is not None for label in labels])
    x = torch.cat([site_rows(split, path, [(0, 1)])[0] for split, path in ((train, train_pt), (val, val_pt))]).numpy()
    n_train = len(train["problems"]["ids"])
    expected = probe_site(codes_dense(load_codes(codes[0])).numpy()[graded], x[graded],
                          np.array([label for label in labels if label is not None]), 3, ProbeSettings(), x[:n_train])
    assert site == {**expected, "ungraded": 2} and (site["n"], site["positives"]) == (12, 5)
    assert site["models"]["codes"]["auroc"]["mean"] is not None and "note" not in site

    for sample in obj["samples"]:
        sample["is_correct"] = None
    raw = write_raw(tmp_path / "none.json", obj)
    train_pt, val_pt, codes = site_files(tmp_path / "none", (raw, obj), [(0, 1)])
    site = write_probes(train_pt, val_pt, [(0, 1)], codes, ProbeSettings(), tmp_path / "none.json")["sites"]["1"]["0"]
    assert (site["n"], site["folds"], site["ungraded"]) == (0, 0, 14)
    assert site["note"] == "none of the 14 problems is graded (is_correct null or missing)"


def test_write_probes_refuses_codes_of_other_problems_or_sites(tmp_path, raw_file):
    sites = [(1, 0)]
    train_pt, val_pt, codes = site_files(tmp_path, raw_file, sites)
    with pytest.raises(InputError, match=r"codes_1_0.pt: codes of position 1, layer 0; expected position 2, layer 0"):
        write_probes(train_pt, val_pt, [(2, 0)], codes, ProbeSettings(), tmp_path / "probe.json")
    shuffled = load_codes(codes[0])
    shuffled["problem_ids"] = shuffled["problem_ids"][::-1]
    torch.save(shuffled, codes[0])
    with pytest.raises(InputError, match=r"codes_1_0.pt: position 1, layer 0: its problem ids are not those of"):
        write_probes(train_pt, val_pt, sites, codes, ProbeSettings(), tmp_path / "probe.json")
    assert not (tmp_path / "probe.json").exists()


def test_on_the_demo_data_the_codes_predict_errors_where_the_correctness_features_are(tmp_path):
    from codi_sae.saeconfig import make_recipe
    from codi_sae.synthetic import write_demo

    # The demo's is_correct follows three features' strength in the second half of the layers (here layer 1).
    write_demo(tmp_path / "raw.json", tmp_path / "truth.pt", n_problems=300, n_layers=2, n_positions=2,
               hidden_dim=32, workers=1)
    convert_raw_json(tmp_path / "raw.json", tmp_path / "t.pt", tmp_path / "v.pt", tmp_path / "i.json")
    sites = [(0, 1), (1, 1)]
    ckpts = [(tmp_path / f"s{p}.pt", tmp_path / f"s{p}.json") for p, _ in sites]
    train_saes(tmp_path / "t.pt", tmp_path / "v.pt", sites, ckpts, latent_dim=64, k=8, settings=TrainSettings(),
               sites_per_batch=2, recipe=make_recipe("topk"))
    codes = [tmp_path / f"c{p}.pt" for p, _ in sites]
    write_site_codes(tmp_path / "t.pt", tmp_path / "v.pt", sites, [pt for pt, _ in ckpts], codes)
    doc = write_probes(tmp_path / "t.pt", tmp_path / "v.pt", sites, codes, ProbeSettings(), tmp_path / "probe.json")
    for position, _ in sites:
        models = doc["sites"]["1"][str(position)]["models"]
        auroc = models["codes"]["auroc"]
        assert auroc["mean"] - 2 * auroc["std"] > 0.5, auroc  # clearly above chance, fold spread included
        assert models["codes"]["accuracy"]["mean"] > models["majority"]["accuracy"]["mean"]


def test_the_page_and_heatmaps_say_why_a_site_of_one_class_has_no_probe(tmp_path):
    from codi_sae.plots import plot_probe_heatmaps
    from codi_sae.tables import probe_page

    codes, raw, labels = site(n=40)
    probed, unprobed = probe_site(codes, raw, labels, 4, ProbeSettings()), probe_site(codes, raw, labels & False, 4,
                                                                                      ProbeSettings())
    latents = [{"frequency": 0.1, "correlation_is_correct": None, "mean_activation": 1.0, "top_problems": []}] * 32
    catalogues = {(p, 0): {"latents": latents} for p in (0, 1)}
    page = probe_page({"settings": {"folds": 5, "C": 1.0, "seed": 0}, "sites": {"0": {"0": probed, "1": unprobed}}},
                      catalogues, {})
    assert f"WARNING No probe at 1 of 2 sites (1:0; position:layer): {unprobed['note']}." in page
    assert "Position 0, layer 0" in page and "Position 1, layer 0" not in page  # no empty table of top latents
    page = probe_page({"settings": {"folds": 5, "C": 1.0, "seed": 0}, "sites": {"0": {"1": unprobed}}}, catalogues, {})
    assert "None: no site was probed." in page

    write_json(tmp_path / "probe.json", {"settings": {"folds": 5}, "sites": {"0": {"1": unprobed}}})
    write_json(tmp_path / "dataset.json", {"layers": [0], "n_positions": 2})
    paths = plot_probe_heatmaps(tmp_path / "probe.json", tmp_path / "dataset.json", tmp_path)
    svg = next(p for p in paths if p.name == "probe_auroc_codes.svg").read_text()
    assert "No site was probed: the model is right on 0 of 40" in svg  # said, not an empty colour scale

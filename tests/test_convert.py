import copy
import gzip
import json
import math

import numpy as np
import pytest
import torch
from conftest import raw_dict, write_raw

from codi_sae.convert import convert_raw_json
from codi_sae.data import load_split, load_splits, site_rows
from codi_sae.errors import InputError
from codi_sae.rawjson import read_header
from codi_sae.split import train_val_indices


def convert(tmp_path, raw):
    out = tmp_path / "out"
    paths = (out / "train.pt", out / "val.pt", out / "dataset.json")
    info = convert_raw_json(raw, *paths, train_fraction=0.8, seed=42)
    return paths, info


@pytest.mark.parametrize("indent", [2, None])
def test_round_trip(tmp_path, indent):
    obj = raw_dict(n=10, layers=(0, 4, 8), T=3, H=5)
    raw = write_raw(tmp_path / "raw.json", obj, indent=indent)
    (train_pt, val_pt, info_json), info = convert(tmp_path, raw)
    train_idx, val_idx = train_val_indices(10, 0.8, 42)
    for path, idx in ((train_pt, train_idx), (val_pt, val_idx)):
        split = torch.load(path, weights_only=True)
        samples = [obj["samples"][i] for i in idx]
        expected = np.array([[s["thoughts"][f"layer_{l}"] for l in (0, 4, 8)] for s in samples], dtype=np.float32)
        acts = split["activations"]
        assert acts.dtype == torch.float32 and acts.shape == (len(idx) * 9, 5)
        assert np.array_equal(acts.numpy(), expected.reshape(-1, 5))  # rows: problem, layer, position
        rows = [(s["id"], layer, t) for s in samples for layer in (0, 4, 8) for t in range(3)]
        assert split["metadata"] == dict(zip(("problem_ids", "layers", "positions"), map(list, zip(*rows))))
        assert split["problems"]["ids"] == [s["id"] for s in samples]
        assert split["problems"]["is_correct"] == [s["is_correct"] for s in samples]
    assert json.loads(info_json.read_text()) == info
    assert (info["n_train"], info["n_val"], info["layers"], info["n_positions"]) == (8, 2, [0, 4, 8], 3)
    assert info["synthetic"] is False and info["model"] == "tiny-test-model"


def test_is_correct_may_be_1_or_0_or_null_or_missing(tmp_path):
    obj = raw_dict()
    for sample in obj["samples"]:
        sample["is_correct"] = int(sample["is_correct"])
    (train_pt, val_pt, _), info = convert(tmp_path, write_raw(tmp_path / "raw.json", obj))
    labels = [c for path in (train_pt, val_pt) for c in torch.load(path, weights_only=True)["problems"]["is_correct"]]
    assert sorted(labels) == [False] * 6 + [True] * 4 and all(type(c) is bool for c in labels)
    assert (info["n_graded"], info["accuracy"]) == (10, 0.4)
    obj["samples"][0]["is_correct"] = None  # right, when graded
    del obj["samples"][1]["is_correct"]  # wrong, when graded
    (train_pt, val_pt, _), info = convert(tmp_path, write_raw(tmp_path / "raw.json", obj))
    labels = [c for path in (train_pt, val_pt) for c in torch.load(path, weights_only=True)["problems"]["is_correct"]]
    assert labels.count(None) == 2 and (info["n_graded"], info["accuracy"]) == (8, 3 / 8)
    for sample in obj["samples"]:
        sample["is_correct"] = None
    _, info = convert(tmp_path, write_raw(tmp_path / "raw.json", obj))
    assert (info["n_graded"], info["accuracy"]) == (0, None)  # nothing graded: no accuracy


def test_parallel_parsing_gives_the_same_files(tmp_path):
    raw = write_raw(tmp_path / "raw.json", raw_dict(n=13))
    outs = []
    for workers in (1, 2):
        paths = [tmp_path / str(workers) / name for name in ("train.pt", "val.pt", "info.json")]
        convert_raw_json(raw, *paths, workers=workers)
        outs.append([torch.load(p, weights_only=True) for p in paths[:2]])
    for one, two in zip(*outs):
        assert torch.equal(one["activations"], two["activations"])
        assert one["metadata"] == two["metadata"] and one["problems"] == two["problems"]


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_parsing_reports_the_same_error(tmp_path, workers):
    obj = raw_dict(n=13)
    obj["samples"][9]["thoughts"]["layer_0"][1][3] = float("nan")
    raw = write_raw(tmp_path / "raw.json", obj)
    with pytest.raises(InputError, match=r"sample #9 \(id 109\): layer_0, position 1, dim 3 is nan"):
        convert_raw_json(raw, *(tmp_path / n for n in ("t.pt", "v.pt", "i.json")), workers=workers)
    assert not (tmp_path / "t.pt").exists()


def test_site_rows_cut_out_one_site(tmp_path, raw_file):
    raw, obj = raw_file
    (train_pt, _, _), _ = convert(tmp_path, raw)
    split = load_split(train_pt)
    x = site_rows(split, train_pt, [(2, 1), (0, 0)])
    train_idx, _ = train_val_indices(10, 0.8, 42)
    for block, (position, layer) in zip(x, [(2, 1), (0, 0)]):
        expected = [obj["samples"][i]["thoughts"][f"layer_{layer}"][position] for i in train_idx]
        assert np.array_equal(block.numpy(), np.array(expected, dtype=np.float32))
    assert x.shape == (2, 8, 8)


def test_site_rows_refuses_a_missing_site_or_uneven_sites(tmp_path, raw_file):
    (train_pt, _, _), _ = convert(tmp_path, raw_file[0])
    split = load_split(train_pt)
    with pytest.raises(InputError, match=r"train.pt: no rows for position 4, layer 0"):
        site_rows(split, train_pt, [(0, 0), (4, 0)])
    split["metadata"]["positions"][-1] = 2  # the last row mislabelled: site (3, 2) has 7 rows, (2, 2) 9
    torch.save(split, tmp_path / "relabelled.pt")
    with pytest.raises(InputError, match=r"relabelled.pt: sites \(0, 0\) and \(3, 2\) have different row counts"):
        site_rows(load_split(tmp_path / "relabelled.pt"), tmp_path / "relabelled.pt", [(0, 0), (3, 2)])


BACKSLASHES = {"ends in a backslash": "C:\\", "escaped quote": 'a\\"b', "two backslashes, a quote": '\\\\"}]'}


@pytest.mark.parametrize("text", BACKSLASHES.values(), ids=BACKSLASHES)
def test_backslashes_before_a_quote_round_trip(tmp_path, text):
    """A string's end is found by the parity of the backslashes before its quote."""
    obj = raw_dict()
    obj["metadata"]["model"] = obj["samples"][4]["question"] = obj["samples"][5]["prediction_text"] = text
    out = tmp_path / "problems.json"
    info = convert_raw_json(write_raw(tmp_path / "raw.json", obj), tmp_path / "t.pt", tmp_path / "v.pt",
                            tmp_path / "i.json", problems_out=out)
    table = json.loads(out.read_text())["problems"]
    assert [p["question"] for p in table] == [s["question"] for s in obj["samples"]]
    assert (info["model"], table[5]["prediction_text"]) == (text, text)


def test_header_is_read_without_the_samples(tmp_path):
    raw = tmp_path / "raw.json"
    text = json.dumps(raw_dict(n=3), indent=2)
    raw.write_text(text[: text.index('"samples"') + 20])  # the samples are cut off
    header = read_header(raw)
    assert (header.layers, header.n_positions, header.hidden_dim) == ((0, 1, 2), 4, 8)


def _set(path):
    """A mutation that sets obj[path...] = value."""

    def mutate(value):
        def apply(obj):
            *parents, last = path
            target = obj
            for key in parents:
                target = target[key]
            target[last] = value

        return apply

    return mutate


S3 = ["samples", 3]
BAD_INPUTS = {
    "metadata key missing": (lambda o: o["metadata"].pop("hidden_dim"), "metadata has no 'hidden_dim'"),
    "samples key missing": (lambda o: o.pop("samples"), "no 'samples' key"),
    "sample key missing": (lambda o: o["samples"][3].pop("thoughts"), "sample #3 (id 103) has no 'thoughts'"),
    "id missing": (lambda o: o["samples"][3].pop("id"), "sample #3 has no 'id'"),
    "layer missing": (lambda o: o["samples"][3]["thoughts"].pop("layer_2"), "sample #3 (id 103): 'thoughts' has no 'layer_2'"),
    "extra layer": (_set(S3 + ["thoughts", "layer_7"])([[0.0] * 8] * 4), "has layer_7, which the metadata"),
    "position count": (lambda o: o["samples"][3]["thoughts"]["layer_1"].pop(), "layer_1 has 3 positions, the metadata says n_tokens=4"),
    "vector length": (lambda o: o["samples"][3]["thoughts"]["layer_1"][2].append(0.5), "layer_1, position 2 has 9 values, the metadata says hidden_dim=8"),
    "NaN": (_set(S3 + ["thoughts", "layer_1", 2, 5])(float("nan")), "layer_1, position 2, dim 5 is nan, not a finite"),
    "Infinity": (_set(S3 + ["thoughts", "layer_0", 0, 0])(float("-inf")), "layer_0, position 0, dim 0 is -inf"),
    "float32 overflow": (_set(S3 + ["thoughts", "layer_0", 1, 2])(1e39), "layer_0, position 1, dim 2 is 1e+39"),
    "huge integer": (_set(S3 + ["thoughts", "layer_0", 1, 2])(10**400), "layer_0, position 1, dim 2 is an integer too large"),
    "string value": (_set(S3 + ["thoughts", "layer_2", 3, 7])("n/a"), "layer_2, position 3, dim 7 is 'n/a', not a number"),
    "null value": (_set(S3 + ["thoughts", "layer_2", 0, 1])(None), "layer_2, position 0, dim 1 is None, not a number"),
    "true value": (_set(S3 + ["thoughts", "layer_0", 1, 2])(True), "layer_0, position 1, dim 2 is True, not a number"),
    "number as a string": (_set(S3 + ["thoughts", "layer_1", 2, 0])("0.5"),
                           "layer_1, position 2, dim 0 is '0.5', not a number"),
    "nested list": (_set(S3 + ["thoughts", "layer_1", 2, 0])([0.5]), "layer_1, position 2, dim 0 is [0.5], not a number"),
    "duplicate id": (_set(S3 + ["id"])(101), "sample #3 has id 101, the same as sample #1"),
    "bad is_correct": (_set(S3 + ["is_correct"])("yes"), "'is_correct' must be true or false (or 1 or 0, or null: not graded), not 'yes'"),
    "is_correct 2": (_set(S3 + ["is_correct"])(2), "'is_correct' must be true or false (or 1 or 0, or null: not graded), not 2"),
    "is_correct 1.0": (_set(S3 + ["is_correct"])(1.0), "'is_correct' must be true or false (or 1 or 0, or null: not graded), not 1.0"),
    "n_samples too large": (_set(["metadata", "n_samples"])(11), "'n_samples' is 11 but the file has 10 samples"),
    "n_samples too small": (_set(["metadata", "n_samples"])(9), "'n_samples' is 9 but the file has more samples"),
    "n_samples not a count": (_set(["metadata", "n_samples"])(0), "'n_samples' must be a positive integer, not 0"),
    "no n_samples": (lambda o: o["metadata"].pop("n_samples") and o["samples"][3].pop("thoughts"), "has no 'thoughts'"),
    "layers list bad": (_set(["metadata", "layers"])("0-2"), "'layers' must be a non-empty list"),
    "layer listed twice": (_set(["metadata", "layers"])([0, 1, 1]), "metadata 'layers' lists a layer twice: [0, 1, 1]"),
    "n_layers mismatch": (_set(["metadata", "n_layers"])(4), "metadata 'n_layers' is 4 but 'layers' lists 3"),
    "thought_tokens count": (_set(S3 + ["thought_tokens"])([["a"]] * 3),
                             "sample #3 (id 103): 'thought_tokens' must be a list of 4 lists of strings"),
    "thought_tokens not strings": (_set(S3 + ["thought_tokens"])([["a"], ["b"], [7], ["c"]]),
                                   "sample #3 (id 103): 'thought_tokens' must be a list of 4 lists of strings"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_names_file_and_place_and_leaves_nothing(tmp_path, case):
    mutate, message = BAD_INPUTS[case]
    obj = copy.deepcopy(raw_dict())
    mutate(obj)
    raw = write_raw(tmp_path / "raw.json", obj)
    with pytest.raises(InputError) as err:
        convert(tmp_path, raw)
    assert str(raw) in str(err.value) and message in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "expected '{' at the start"),
        ('{"metadata": {"layers": [0], "n_tokens": 1, "hidden_dim": 2}, "samples": [', "ends early"),
        ('{"metadata": {"layers": [0], "n_tokens": 1, "hidden_dim": 2}, "samples": []}', "'samples' is empty"),
        ('{"samples": [], "metadata": {}}', "'samples' comes before 'metadata'"),
        ('{"samples": [{"id": 0}]}', r"or there is no 'metadata'\); the metadata \(layers, n_tokens, hidden_dim\)"),
        ("[1, 2]", "expected '{' at the start"),
    ],
)
def test_broken_json_structure(tmp_path, text, message):
    raw = tmp_path / "raw.json"
    raw.write_text(text)
    with pytest.raises(InputError, match=message):
        convert(tmp_path, raw)


def test_truncated_file_names_the_sample(tmp_path, raw_file):
    raw, _ = raw_file
    text = raw.read_bytes()
    raw.write_bytes(text[: len(text) // 2])
    with pytest.raises(InputError, match=r"never closed \(in sample #\d+\)"):
        convert(tmp_path, raw)


@pytest.mark.parametrize("tail, message", [
    (b"", "expected ',' or '}' after the samples, found end of file"),
    (b"}\n{}", "data after the end of the top-level object"),
    (b', "samples": []}', "'samples' appears twice"),
], ids=["cut after the samples", "trailing data", "samples twice"])
def test_what_follows_the_samples_is_checked(tmp_path, raw_file, tail, message):
    raw, _ = raw_file
    raw.write_bytes(raw.read_bytes().rstrip()[:-1] + tail)  # the closing '}' replaced
    with pytest.raises(InputError, match=message):
        convert(tmp_path, raw)


def test_invalid_json_inside_a_sample(tmp_path, raw_file):
    raw, _ = raw_file
    raw.write_text(raw.read_text().replace('"is_correct": false', '"is_correct": flase', 1))
    with pytest.raises(InputError, match=r"invalid JSON at byte \d+: .* \(in sample #1\)"):
        convert(tmp_path, raw)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.json: raw JSON file not found"):
        convert(tmp_path, tmp_path / "nope.json")


def test_split_file_errors(tmp_path):
    with pytest.raises(InputError, match="split file not found"):
        load_split(tmp_path / "missing.pt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="torn.pt: not a readable split file"):
        load_split(torn)


def test_splits_of_another_shape_or_conversion_are_refused(tmp_path):
    """A split whose parts disagree, or a validation split from another conversion, is refused."""
    for name, H in (("a", 8), ("b", 6)):
        convert_raw_json(write_raw(tmp_path / f"{name}.json", raw_dict(H=H)), tmp_path / name / "train.pt",
                         tmp_path / name / "val.pt", tmp_path / name / "info.json")
    train, val, other = tmp_path / "a/train.pt", tmp_path / "a/val.pt", tmp_path / "b/val.pt"
    assert load_splits(train, val)
    with pytest.raises(InputError, match=rf"{other}: not the validation split of {train} \(source"):
        load_splits(train, other)
    for change, message in [
        (lambda s: s.update(activations=s["activations"][:, :4]), "vectors have 4 dims, its config says hidden_dim 8"),
        (lambda s: s["metadata"].update(layers=[0]), "labels 1 rows with layers, but holds 96"),
        (lambda s: s.update(activations=s["activations"].long()), "activations are not a 2-D float32 tensor"),
        (lambda s: s.update(activations=s["activations"].half()), "activations are not a 2-D float32 tensor"),
        (lambda s: s.pop("problems"), "has no 'problems' key"),
        (lambda s: s["problems"].update(ids=[1]), r"problems \(ids, is_correct\) and its 96 rows do not match"),
        (lambda s: s["metadata"].update(problem_ids=[0]), "labels 1 rows with problem_ids, but holds 96"),
    ]:
        split = torch.load(train, weights_only=True)
        change(split)
        torch.save(split, tmp_path / "changed.pt")
        with pytest.raises(InputError, match=rf"changed.pt: split file('s)? {message}"):
            load_split(tmp_path / "changed.pt")


def test_one_problem_is_refused_with_the_file_named(tmp_path):
    raw = write_raw(tmp_path / "raw.json", raw_dict(n=1))
    with pytest.raises(InputError, match=rf"{raw}: split.train_fraction=0.8 of 1 problem\(s\) leaves the training split empty"):
        convert(tmp_path, raw)
    assert not list(tmp_path.rglob("*.pt"))


def test_metadata_without_n_samples(tmp_path):
    obj = raw_dict(n=7)
    del obj["metadata"]["n_samples"]
    _, info = convert(tmp_path, write_raw(tmp_path / "raw.json", obj))
    assert (info["n_problems"], info["n_train"], info["n_val"]) == (7, 5, 2)


def test_problems_table(tmp_path):
    obj = raw_dict(n=10)
    del obj["samples"][3]["prediction_text"], obj["samples"][3]["question"]  # optional fields may be missing
    # Python's json.dump writes NaN and Infinity (e.g. a prediction with no number): null in the table
    obj["samples"][4].update(prediction=float("nan"), ground_truth=float("inf"), prediction_text=[1.5, -math.inf])
    raw = write_raw(tmp_path / "raw.json", obj)
    out = tmp_path / "problems.json"
    convert_raw_json(raw, tmp_path / "t.pt", tmp_path / "v.pt", tmp_path / "i.json", problems_out=out, workers=2)
    table = json.loads(out.read_text())["problems"]
    train_idx, _ = train_val_indices(10, 0.8, 42)
    assert [p["id"] for p in table] == [s["id"] for s in obj["samples"]]  # file order
    assert [p["split"] == "train" for p in table] == [i in set(train_idx) for i in range(10)]
    sample = obj["samples"][5]
    assert table[5] == {"id": sample["id"], "split": table[5]["split"], "is_correct": sample["is_correct"],
                        "question": sample["question"], "ground_truth": sample["ground_truth"],
                        "ground_truth_text": sample["ground_truth_text"], "prediction": sample["prediction"],
                        "prediction_text": sample["prediction_text"], "thought_tokens": None}
    assert table[3]["question"] is None and table[3]["prediction_text"] is None
    assert (table[4]["prediction"], table[4]["ground_truth"], table[4]["prediction_text"]) == (None, None, [1.5, None])


@pytest.mark.parametrize("content, message", [
    (gzip.compress(b'{"metadata": {}}'), "expected '{' at the start"),
    (b"id,question\n1,what\n", "expected '{' at the start"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "expected '{' at the start"),
    (b'{"metadata": {"layers": [0], "n_tokens": "4", "hidden_dim": 2}, "samples": []}', "'n_tokens'"),
    (b'{"metadata": {"layers": [0], "n_tokens": 1, "hidden_dim": 2.5}, "samples": []}', "'hidden_dim'"),
    (b'{"metadata": [], "samples": []}', "'metadata'"),
    (b'{"metadata": {"layers": [0], "n_tokens": 1, "hidden_dim": 2}, "samples": {}}', "the samples list"),
], ids=["gzip", "csv", "zip (a .pt)", "n_tokens a string", "hidden_dim a float", "metadata a list",
        "samples an object"])
def test_files_that_are_not_a_raw_json_are_refused(tmp_path, content, message):
    raw = tmp_path / "raw.json"
    raw.write_bytes(content)
    with pytest.raises(InputError) as err:
        convert(tmp_path, raw)
    assert str(raw) in str(err.value) and message in str(err.value), str(err.value)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path}: .*directory"):
        convert(tmp_path, tmp_path)


def test_a_utf8_byte_order_mark_is_read(tmp_path, raw_file):
    raw, obj = raw_file
    raw.write_bytes(b"\xef\xbb\xbf" + raw.read_bytes())
    _, info = convert(tmp_path, raw)
    assert info["n_problems"] == len(obj["samples"])


def test_invalid_utf8_is_refused_with_the_sample(tmp_path):
    obj = raw_dict()
    obj["samples"][4]["question"] = "café"
    raw = tmp_path / "raw.json"
    raw.write_bytes(json.dumps(obj, ensure_ascii=False).encode().replace("café".encode(), b"caf\xe9"))
    with pytest.raises(InputError, match=rf"{raw}: .*UTF-8.*\(in sample #4\)"):
        convert(tmp_path, raw)

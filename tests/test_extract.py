"""CODI extraction on a tiny GPT-2 CODI of random weights that the test builds (no downloads)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from conftest import PAIRS, PROBLEMS, RunsCode, write_tiny_codi  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from codi_sae.codi import Thoughts, load_codi, write_random_codi  # noqa: E402
from codi_sae.convert import convert_raw_json  # noqa: E402
from codi_sae.errors import InputError  # noqa: E402
from codi_sae.extract import _sample, model_dims, write_extraction  # noqa: E402
from codi_sae.problems import answer_number, last_number, read_problems  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint, base, problems file) of a 2-layer, 16-dim GPT-2 CODI with random weights."""
    return write_tiny_codi(tmp_path_factory.mktemp("codi"))


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tmp_path_factory):
    """The tiny CODI over GPT-2 and over LLaMA (rotary positions, Linear projections, its own cache)."""
    checkpoint, base, _ = write_tiny_codi(tmp_path_factory.mktemp(request.param), architecture=request.param)
    return load_codi(checkpoint, base, lora_alpha=8, device=CPU)


def test_problem_files_and_answers(tmp_path):
    as_list = tmp_path / "p.json"
    as_list.write_text(json.dumps([{**p, "id": 100 + i} for i, p in enumerate(PROBLEMS)]))
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps(p) for p in PROBLEMS) + "\n\n")
    assert [p.id for p in read_problems(as_list, 3)] == [100, 101, 102]
    assert [(p.id, p.ground_truth) for p in read_problems(jsonl)][:3] == [(0, 3), (1, 7), (2, 18)]
    assert answer_number("so 1,234 in all\n#### 1,234") == 1234 and answer_number("#### -2.5") == -2.5
    assert answer_number(7) == 7 and answer_number("no marker 12") is None
    assert last_number("The answer is 1,200 then 18 .") == 18 and last_number("none") is None
    assert last_number("-3.50") == -3.5


@pytest.mark.parametrize("content, message", [
    (None, "problems file not found"),
    ("", "holds no problems"),
    ('{"question": "q", "answer": "#### 1"}\nnot json\n', "line 2 is not JSON"),
    ('[{"question": "q"}]', r"element 0 is not an object with a string 'question' and an 'answer'"),
    ('{"question": "q", "answer": "#### 1", "id": 4}\n{"question": "r", "answer": "#### 2", "id": 4}\n',
     "problem id 4 comes twice"),
    ('{"question": "q", "answer": "#### x"}\n', r"line 1: no number in its answer '#### x'"),
], ids=["missing", "empty", "not JSON", "no answer", "duplicate id", "no number"])
def test_bad_problem_files(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=f"{path}: {message}"):
        read_problems(path)


def test_model_dims_from_the_config_alone(tiny, tmp_path):
    dims = model_dims(tiny[1])
    assert (dims.n_layers, dims.hidden_dim, dims.model_type, dims.random) == (2, 16, "gpt2", True)
    (tmp_path / "config.json").write_text('{"model_type": "x"}')
    with pytest.raises(InputError, match="config.json: no integer num_hidden_layers"):
        model_dims(tmp_path)


def test_the_extraction_never_runs_outside_its_own_job():
    """Every other module of the package imports without transformers or peft."""
    code = ("import pkgutil, importlib, sys, codi_sae\n"
            "for m in pkgutil.iter_modules(codi_sae.__path__):\n"
            "    if m.name != 'codi': importlib.import_module('codi_sae.' + m.name)\n"
            "print(sorted(n for n in ('transformers', 'peft', 'tokenizers') if n in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.parametrize("convention", ["seed", "codi"])
def test_a_batch_gives_each_problem_what_it_gives_alone(model, convention):
    questions = [p["question"] for p in PROBLEMS[:4]]
    batch = model.think(questions, 6, convention, max_new_tokens=6)
    assert batch.hidden.shape == (4, 2, 6, 16) and batch.top_ids.shape == (4, 6, 5)
    for i, q in enumerate(questions):
        alone = model.think([q], 6, convention, max_new_tokens=6)
        torch.testing.assert_close(batch.hidden[i], alone.hidden[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batch.fed[i], alone.fed[0], rtol=1e-5, atol=1e-5)
        assert batch.answers[i] == alone.answers[0] and torch.equal(batch.top_ids[i], alone.top_ids[0])


@pytest.mark.parametrize("convention", ["seed", "codi"])
def test_the_kv_cache_loop_equals_a_full_recompute(model, convention):
    """One forward pass over the question, bot and the fed latent embeddings, without a cache,
    gives the recorded hidden states; each fed latent is the projection of the last layer's state
    one position before it, and each recorded position's top tokens are those of its logits."""
    q = PROBLEMS[2]["question"]
    got = model.think([q], 6, convention, max_new_tokens=1)
    ids = torch.tensor([model.tokenizer(q)["input_ids"] + [model.bot_id]])
    embeds = torch.cat([model.embed(ids), got.fed], 1)
    bot, fed = ids.shape[1] - 1, got.fed.shape[1]
    with torch.no_grad():
        out = model.codi(inputs_embeds=embeds, output_hidden_states=True)
        states = out.hidden_states
        torch.testing.assert_close(got.fed[0], model.prj(states[-1][0, bot : bot + fed]), rtol=1e-5, atol=1e-5)
    assert fed == (5 if convention == "seed" else 6)
    first = bot if convention == "seed" else bot + 1  # seed: bot is position 0
    layers = range(2) if convention == "seed" else range(1, 3)
    want = torch.stack([torch.stack([states[i][0, first + t] for t in range(6)]) for i in layers])
    torch.testing.assert_close(got.hidden[0], want, rtol=1e-5, atol=1e-5)
    top_probs, top_ids = torch.softmax(out.logits[0, first : first + 6], -1).topk(5)
    assert torch.equal(got.top_ids[0], top_ids)
    torch.testing.assert_close(got.top_probs[0], top_probs, rtol=1e-5, atol=1e-5)


def test_the_two_conventions_record_the_same_computation_shifted(model):
    """seed's layer i+1 at position t+1 is codi's layer i at position t: the same latents were fed."""
    q = [PROBLEMS[0]["question"]]
    seed, codi = model.think(q, 6, "seed", 1), model.think(q, 6, "codi", 1)
    torch.testing.assert_close(seed.fed[0], codi.fed[0, :5], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(seed.hidden[0, 1, 1:], codi.hidden[0, 0, :5], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(seed.hidden[0, 0], codi.hidden[0, 0])  # and they are not the same vectors


class _Texts:
    """A tokenizer stub: token i decodes to ``texts[i]``."""

    def __init__(self, texts):
        self.texts = texts

    def decode(self, ids, skip_special_tokens=False):
        return " ".join(self.texts[i] for i in ids)


@pytest.mark.parametrize("answer, decoded, prediction, correct", [
    ("2 + 3 = 5 so 1,234\n#### 1,234", "so it is 1,234.", 1234, True),
    ("#### -7", "they lose -7", -7, True),
    ("#### -2.5", "-2.50", -2.5, True),
    ("#### 1,234", "1,234 then 1,235", 1235, False),
    ("#### 18", "18 - 1 = 17", 17, False),
    ("#### 3", "no number", None, False),
])
def test_grading_compares_the_last_number_decoded_with_gsm8ks(tmp_path, answer, decoded, prediction, correct):
    """A sample's prediction is the last number of its problem's decoded answer (commas dropped), and it is
    correct when it equals the number after the answer's ``####``."""
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": answer}))
    thoughts = Thoughts(hidden=torch.zeros(2, 2, 3, 4), fed=torch.zeros(2, 3, 4), top_ids=torch.zeros(2, 3, 5,
                        dtype=torch.long), top_probs=torch.full((2, 3, 5), 0.2), answers=[[0], [1, 2]])
    sample = _sample(read_problems(path)[0], thoughts, 1, _Texts(["999", "the answer:", decoded]), "ckpt")
    assert sample["prediction_text"] == f"the answer: {decoded}"
    assert (sample["prediction"], sample["is_correct"]) == (prediction, correct)


def _broken_checkpoint(tiny, tmp_path, change) -> str:
    state = load_file(tiny[0] / "model.safetensors")
    change(state)
    (tmp_path / "ckpt").mkdir()
    save_file(state, tmp_path / "ckpt/model.safetensors")
    return tmp_path / "ckpt"


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("codi.base_model.model.transformer.h.1.mlp.c_fc.lora_B.default.weight"),
     r"keys it lacks: \['codi.base_model.model.transformer.h.1.mlp.c_fc.lora_B.default.weight'\]"),
    (lambda s: s.pop("codi.base_model.model.transformer.wte.weight"), "keys it lacks: .*wte.weight"),
    (lambda s: s.pop("prj.ln.bias"), r"keys it lacks: \['prj.ln.bias'\]"),
    (lambda s: s.update({"prj.extra.weight": torch.ones(2)}), r"keys the model lacks: \['prj.extra.weight'\]"),
    (lambda s: s.update({"prj.3.weight": torch.ones(16, 3)}), "does not fit the base model"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("prj.")], "no projection"),
], ids=["lora", "embedding", "projection", "unexpected", "shape", "not CODI"])
def test_strict_loading(tiny, tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        load_codi(_broken_checkpoint(tiny, tmp_path, change), tiny[1], lora_alpha=8, device=CPU)


def test_a_pytorch_checkpoint_loads_safely(tiny, tmp_path):
    (tmp_path / "ok").mkdir()
    torch.save(load_file(tiny[0] / "model.safetensors"), tmp_path / "ok/pytorch_model.bin")
    models = [load_codi(path, tiny[1], lora_alpha=8, device=CPU) for path in (tiny[0], tmp_path / "ok")]
    q = [PROBLEMS[1]["question"]]
    assert torch.equal(*(m.think(q, 6, "codi", 2).hidden for m in models))
    (tmp_path / "evil").mkdir()
    marker = tmp_path / "ran"
    torch.save({"prj.1.weight": RunsCode(marker)}, tmp_path / "evil/pytorch_model.bin")
    with pytest.raises(InputError, match="which loading could run or build: refused, nothing was run"):
        load_codi(tmp_path / "evil", tiny[1], lora_alpha=8, device=CPU)
    assert not marker.exists()
    with pytest.raises(InputError, match="no model.safetensors or pytorch_model.bin"):
        load_codi(tmp_path, tiny[1], lora_alpha=8, device=CPU)


@pytest.mark.parametrize("convention", ["seed", "codi"])
def test_the_raw_json_has_the_seeds_schema_and_converts(tiny, tmp_path, convention):
    out = tmp_path / "raw.json"
    settings = dict(checkpoint=str(tiny[0]), base_model=str(tiny[1]), problems=str(tiny[2]), latent_steps=4,
                    convention=convention, lora_alpha=8, max_new_tokens=5)
    meta = write_extraction(out, batch_size=3, **settings)
    doc = json.loads(out.read_text())
    assert doc["metadata"] == meta and list(tmp_path.iterdir()) == [out]
    assert {k: meta[k] for k in ("n_samples", "layers", "n_layers", "n_tokens", "hidden_dim", "synthetic",
                                 "convention")} == {"n_samples": 10, "layers": [0, 1], "n_layers": 2, "n_tokens": 4,
                                                    "hidden_dim": 16, "synthetic": True, "convention": convention}
    assert meta["n_correct"] == sum(s["is_correct"] for s in doc["samples"]) == 10 - meta["n_incorrect"]
    assert meta["accuracy"] == meta["n_correct"] / 10
    assert "SYNTHETIC" in meta["description"]
    for i, sample in enumerate(doc["samples"]):
        assert sample["id"] == i and sample["question"] == PROBLEMS[i]["question"]
        assert sample["ground_truth"] == sum(PAIRS[i]) and sample["ground_truth_text"] == PROBLEMS[i]["answer"]
        assert sample["prediction"] == last_number(sample["prediction_text"])
        assert sample["is_correct"] == (sample["prediction"] == sample["ground_truth"])
        assert [len(sample["thoughts"][f"layer_{layer}"]) for layer in (0, 1)] == [4, 4]
        assert all(len(v) == 16 for v in sample["thoughts"]["layer_1"])
        assert [len(t) for t in sample["thought_tokens"]] == [5] * 4 and len(sample["thought_token_probs"]) == 4

    # deterministic, whatever the batch size (to float rounding)
    write_extraction(tmp_path / "again.json", batch_size=10, **settings)
    again = json.loads((tmp_path / "again.json").read_text())["samples"]
    floats = ("thoughts", "thought_token_probs")
    for one, two in zip(doc["samples"], again):
        assert {k: v for k, v in one.items() if k not in floats} == {k: v for k, v in two.items() if k not in floats}
        for a, b in [(one["thought_token_probs"], two["thought_token_probs"]),
                     *((rows, two["thoughts"][name]) for name, rows in one["thoughts"].items())]:
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-5, atol=1e-5)

    info = convert_raw_json(out, tmp_path / "t.pt", tmp_path / "v.pt", tmp_path / "i.json",
                            problems_out=tmp_path / "problems.json",
                            expect={"layers": [0, 1], "n_positions": 4, "hidden_dim": 16})
    assert (info["n_problems"], info["synthetic"]) == (10, True)
    table = json.loads((tmp_path / "problems.json").read_text())["problems"]
    assert table[0]["thought_tokens"] == doc["samples"][0]["thought_tokens"]
    with pytest.raises(InputError, match=r"raw.json: holds .* but the workflow was planned for .*'n_positions': 6"):
        convert_raw_json(out, tmp_path / "t.pt", tmp_path / "v.pt", tmp_path / "i.json",
                         expect={"layers": [0, 1], "n_positions": 6, "hidden_dim": 16})


def test_a_problem_must_fit_the_models_context(tmp_path):
    """Question, bot, the fed latents, eot and the answer tokens fed back must fit GPT-2's 16 positions:
    a problem at the limit runs; one token more, which torch would fail on mid-run, is refused up front."""
    checkpoint, base = write_random_codi(tmp_path, ["w"], n_embd=16, n_head=2, context=16)
    model = load_codi(checkpoint, base, lora_alpha=8, device=CPU)
    for convention, fed in [("seed", 3), ("codi", 4)]:
        fits, over = "w " * (16 - 1 - fed - 4), "w " * (16 - fed - 4)  # with bot, 4 latent steps, 4 new tokens
        assert len(model.think([fits], 4, convention, 4).answers[0]) == 4  # no early end: every position is used
        with pytest.raises(IndexError):
            model.think([over], 4, convention, 4)
        problems = tmp_path / f"{convention}.jsonl"
        settings = dict(checkpoint=str(checkpoint), base_model=str(base), problems=str(problems), latent_steps=4,
                        convention=convention, lora_alpha=8, max_new_tokens=4)
        problems.write_text(json.dumps({"question": fits, "answer": "#### 1"}))
        assert write_extraction(tmp_path / f"{convention}.json", **settings)["n_samples"] == 1
        problems.write_text("".join(json.dumps({"question": q, "answer": "#### 1", "id": i}) + "\n"
                                    for i, q in [(3, fits), (7, over), (8, over)]))
        with pytest.raises(InputError, match=rf"{problems}: problem 7 does not fit the context of {base} \(16 "
                           rf"positions\): its {12 - fed} question tokens, bot, {fed} latents fed back and the "
                           r"answer .* need 17\. Lower extract\.max_new_tokens \(now 4\) or extract\.latent_steps "
                           r"\(now 4\) by 1 in all"):
            write_extraction(tmp_path / "never.json", **settings)
        assert not (tmp_path / "never.json").exists()


def test_without_the_extra_the_job_says_what_to_install(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # what a venv without the extract extra gives
    with pytest.raises(InputError, match=r"extraction needs transformers and peft .*pip install -e '.\[extract\]'"):
        load_codi(tiny[0], tiny[1], lora_alpha=8, device=CPU)

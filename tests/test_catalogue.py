"""The feature catalogue against direct recomputation, its files, and its HTML page (size, escaping, rendering)."""

from __future__ import annotations

import base64
import html.parser
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from codi_sae.atomic import read_json, save_torch, write_json
from codi_sae.catalogue import catalogue_page, page_data, site_catalogue, write_catalogues
from codi_sae.codes import codes_dense
from codi_sae.errors import InputError

NASTY = 'Tom\'s "x" </script><script>alert(1)</script> {a} & <b>b</b> <!-- 5 < 6 > 4'
VOID = {"meta", "input", "br", "hr", "img", "link"}


def make_codes(indices, values, ids, d, position=3, layer=8, activation="signed_topk") -> dict:
    indices = torch.as_tensor(np.asarray(indices), dtype=torch.int32)
    return {"indices": indices, "values": torch.as_tensor(np.asarray(values), dtype=torch.float32),
            "problem_ids": list(ids), "split": ["train"] * len(ids), "latent_dim": d,
            "config": {"position": position, "layer": layer, "latent_dim": d, "k": indices.shape[1],
                       "recipe": "seed", "activation": activation}}


def make_problems(ids, correct, questions=None) -> dict[int, dict]:
    questions = questions or [f"Question {i}: how many? " * (i % 4) or None for i in ids]
    return {i: {"id": i, "split": "train", "is_correct": None if c is None else bool(c), "question": q, "ground_truth": 1,
                "ground_truth_text": "1", "prediction": 1, "prediction_text": "1"}
            for i, c, q in zip(ids, correct, questions)}


def random_codes(rng, n, d, k, alive, ids, ties=False, position=3, layer=8) -> dict:
    """Codes with K slots per row, a random number of them -1 pads, latents drawn from ``alive``."""
    indices = np.array([rng.choice(alive, size=k, replace=False) for _ in range(n)], dtype=np.int32)
    values = rng.integers(1, 4, size=(n, k)) * rng.choice([-1.0, 1.0], size=(n, k)) if ties \
        else rng.normal(size=(n, k)) * 2
    pads = np.arange(k) >= rng.integers(0, k + 1, size=n)[:, None]
    indices[pads], values[pads] = -1, 0.0
    return make_codes(indices, values, ids, d, position, layer)


def expected_latent(x: np.ndarray, j: int, ids: list, problems: dict, top: int, excerpt: int) -> dict:
    """Latent j's catalogue entry recomputed from its dense column ``x`` [N]."""
    active = np.flatnonzero(x != 0)
    y = np.array([problems[i]["is_correct"] for i in ids], dtype=float)  # not graded: NaN, left out
    xg, yg = x[~np.isnan(y)], y[~np.isnan(y)]
    constant = len(yg) == 0 or np.all(xg == xg[0]) or np.all(yg == yg[0])
    order = sorted(active, key=lambda i: (-abs(x[i]), i))[:top]
    q = [problems[ids[i]]["question"] for i in order]
    return {
        "latent": j, "dead": len(active) == 0, "frequency": len(active) / len(x),
        "mean_activation": float(np.abs(x[active]).mean()) if len(active) else None,
        "max_activation": float(np.abs(x[active]).max()) if len(active) else None,
        "correlation_is_correct": None if constant else float(np.corrcoef(xg, yg)[0, 1]),
        "top_problems": [{"id": ids[i], "activation": float(x[i]), "is_correct": problems[ids[i]]["is_correct"],
                          "question": None if s is None else s[:excerpt], "thought_tokens": None}
                         for i, s in zip(order, q)],
    }


def assert_matches(got: dict, want: dict) -> None:
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert got[key] == value, key


def test_a_hand_made_site():
    # problem:   0: latent 0 at -3, latent 1 at 1; 1: latent 0 at 2; 2: latent 2 at 0.5, latent 0 at -1; 3: none
    codes = make_codes([[0, 1], [0, -1], [2, 0], [-1, -1]], [[-3, 1], [2, 0], [0.5, -1], [0, 0]], [10, 11, 12, 13], 4)
    problems = make_problems([10, 11, 12, 13], [1, 0, 1, 0], ["a" * 150, None, "c", "d"])
    problems[10]["thought_tokens"] = [[f"p{p}t{t}" for t in range(5)] for p in range(6)]  # extraction's top tokens
    cat = site_catalogue(codes, problems, top=2, excerpt=100)
    assert {k: cat[k] for k in ("position", "layer", "latent_dim", "k", "recipe", "activation", "n_problems",
                                "n_dead")} == {"position": 3, "layer": 8, "latent_dim": 4, "k": 2, "recipe": "seed",
                                               "activation": "signed_topk", "n_problems": 4, "n_dead": 1}
    zero, one, two, three = cat["latents"]
    assert (zero["frequency"], zero["mean_activation"], zero["max_activation"]) == (0.75, 2.0, 3.0)
    assert zero["correlation_is_correct"] == pytest.approx(np.corrcoef([-3, 2, -1, 0], [1, 0, 1, 0])[0, 1])
    assert zero["top_problems"] == [{"id": 10, "activation": -3.0, "is_correct": True, "question": "a" * 100,
                                     "thought_tokens": ["p3t0", "p3t1", "p3t2", "p3t3", "p3t4"]},  # position 3's
                                    {"id": 11, "activation": 2.0, "is_correct": False, "question": None,
                                     "thought_tokens": None}]
    assert (one["frequency"], one["mean_activation"], one["max_activation"]) == (0.25, 1.0, 1.0)
    assert two["top_problems"] == [{"id": 12, "activation": 0.5, "is_correct": True, "question": "c",
                                    "thought_tokens": None}]
    assert three == {"latent": 3, "dead": True, "frequency": 0.0, "mean_activation": None, "max_activation": None,
                     "correlation_is_correct": None, "top_problems": []}
    assert sum(lat["frequency"] * cat["n_problems"] for lat in cat["latents"]) == 5


@pytest.mark.parametrize("ties", [False, True])
def test_every_field_matches_a_direct_recomputation(ties):
    rng = np.random.default_rng(1)
    n, d, k = 60, 16, 5
    ids = [int(i) for i in rng.permutation(1000)[:n]]
    problems = make_problems(ids, rng.random(n) < 0.4)
    codes = random_codes(rng, n, d, k, alive=np.arange(d - 4), ids=ids, ties=ties)  # latents 12..15 dead
    # latent 12 active everywhere with one value (constant: no correlation), 13 everywhere with varying values
    codes["indices"][:, 0], codes["values"][:, 0] = 12, 1.5
    codes["indices"][:, 1], codes["values"][:, 1] = 13, torch.linspace(-2, 2, n)
    cat = site_catalogue(codes, problems, top=4, excerpt=30)
    dense = codes_dense(codes).double().numpy()
    assert [lat["latent"] for lat in cat["latents"]] == list(range(d))
    for j, got in enumerate(cat["latents"]):
        assert_matches(got, expected_latent(dense[:, j], j, ids, problems, top=4, excerpt=30))
    assert [lat["dead"] for lat in cat["latents"]][12:] == [False, False, True, True]
    assert cat["latents"][12]["correlation_is_correct"] is None
    assert cat["latents"][13]["correlation_is_correct"] is not None
    assert cat["n_dead"] == 2
    active = int((codes["indices"] >= 0).sum())
    assert sum(lat["frequency"] * n for lat in cat["latents"]) == pytest.approx(active, abs=1e-9)
    assert any(p["activation"] < 0 for lat in cat["latents"] for p in lat["top_problems"])


def test_constant_correctness_leaves_every_correlation_undefined():
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 20, 8, 3, alive=np.arange(8), ids=range(20))
    cat = site_catalogue(codes, make_problems(range(20), [True] * 20))
    assert all(lat["correlation_is_correct"] is None for lat in cat["latents"])


def test_correlations_leave_the_ungraded_problems_out():
    rng = np.random.default_rng(2)
    ids = list(range(40))
    codes = random_codes(rng, 40, 8, 3, alive=np.arange(8), ids=ids)
    dense = codes_dense(codes).double().numpy()
    ungraded = sorted({int(np.argmax(np.abs(dense[:, 0])))} | {3, 17})  # one is latent 0's top problem
    problems = make_problems(ids, [None if i in ungraded else i % 3 == 0 for i in ids])
    cat = site_catalogue(codes, problems)
    for j, got in enumerate(cat["latents"]):
        assert_matches(got, expected_latent(dense[:, j], j, ids, problems, top=10, excerpt=100))
    assert all(lat["correlation_is_correct"] is not None for lat in cat["latents"])
    assert cat["latents"][0]["top_problems"][0]["is_correct"] is None
    assert None in page_data([cat])["problems"]["correct"]
    everyone = site_catalogue(codes, make_problems(ids, [None] * 40))
    assert all(lat["correlation_is_correct"] is None for lat in everyone["latents"])


def test_bad_codes_are_rejected():
    problems = make_problems([1, 2], [1, 0])
    with pytest.raises(InputError, match="disagree"):
        site_catalogue(make_codes([[0], [5]], [[1], [1]], [1, 2], 4), problems)
    with pytest.raises(InputError, match="no problems"):
        site_catalogue(make_codes(np.zeros((0, 1)), np.zeros((0, 1)), [], 4), problems)


def write_site(tmp_path, rng, name, ids, **kwargs):
    path = tmp_path / f"{name}.pt"
    save_torch(path, random_codes(rng, len(ids), 12, 4, alive=np.arange(10), ids=ids, **kwargs))
    return path


def test_write_catalogues_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    ids = list(range(100, 130))
    problems = make_problems(ids, rng.random(30) < 0.5)
    write_json(tmp_path / "problems.json", {"problems": list(problems.values())})
    codes = [write_site(tmp_path, rng, f"pos{p}_layer1", ids, position=p, layer=1) for p in (0, 1)]
    outs = [tmp_path / "cat0.json", tmp_path / "cat1.json"]
    write_catalogues(codes, tmp_path / "problems.json", outs, top=3)
    for path, out in zip(codes, outs):
        assert read_json(out) == site_catalogue(torch.load(path, weights_only=True), problems, top=3)
    assert [read_json(o)["position"] for o in outs] == [0, 1]


def test_a_problem_missing_from_the_table_names_the_files(tmp_path):
    rng = np.random.default_rng(4)
    problems = make_problems(range(10), [1, 0] * 5)
    del problems[7]
    write_json(tmp_path / "problems.json", {"problems": list(problems.values())})
    codes = write_site(tmp_path, rng, "pos0_layer0", range(10))
    with pytest.raises(InputError, match=r"pos0_layer0\.pt: problem id 7 .*problems\.json") as err:
        write_catalogues([codes], tmp_path / "problems.json", [tmp_path / "out.json"])
    assert "not in the problems table" in str(err.value)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("table, message", [
    ({"rows": []}, "'problems' list"),
    ({"problems": [{"id": 1}]}, "problem #0 needs"),
    ({"problems": [{"id": 1, "is_correct": True}, {"id": 1, "is_correct": False}]}, "id 1 appears twice"),
])
def test_a_bad_problems_table_is_rejected(tmp_path, table, message):
    write_json(tmp_path / "problems.json", table)
    with pytest.raises(InputError, match=message) as err:
        write_catalogues([], tmp_path / "problems.json", [])
    assert "problems.json" in str(err.value)


class Structure(html.parser.HTMLParser):
    """Checks that every element closes in order; collects attribute names, the options and the script texts."""

    def __init__(self):
        super().__init__()
        self.open, self.options, self.scripts, self.errors, self.attributes = [], [], [], [], set()

    def handle_starttag(self, tag, attrs):
        self.attributes |= {name for name, _ in attrs}
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.errors.append(tag)

    def handle_data(self, data):
        if self.open and self.open[-1] == "option":
            self.options.append(data)
        if self.open and self.open[-1] == "script":
            self.scripts.append(data)


def catalogue_files(tmp_path, sites, n=30, d=12, questions=None, tokens=False, ungraded=()) -> list:
    """Catalogues of random codes; with ``tokens``, even problems carry the top tokens of their thoughts;
    the problems ``ungraded`` have no is_correct."""
    rng = np.random.default_rng(5)
    correct = [None if i in ungraded else c for i, c in enumerate(rng.random(n) < 0.5)]
    problems = make_problems(range(n), correct, questions)
    if tokens:
        for i in range(0, n, 2):
            problems[i]["thought_tokens"] = [[f"<{i}.{p}.{t}>" for t in range(5)] for p in range(2)]
    files = []
    for position, layer in sites:
        codes = random_codes(rng, n, d, 4, alive=np.arange(d - 2), ids=range(n), position=position, layer=layer)
        files.append(tmp_path / f"cat_{position}_{layer}.json")
        write_json(files[-1], site_catalogue(codes, problems))
    return files


@pytest.mark.parametrize("synthetic", [True, False])
def test_page_structure_banner_sites_and_escaping(tmp_path, synthetic):
    sites = [(1, 0), (0, 2), (0, 1)]
    files = catalogue_files(tmp_path, sites, questions=[NASTY] * 30)
    catalogue_page(files, {"synthetic": synthetic, "model": "gpt2 <&>", "dataset": "gsm8k"}, tmp_path / "p.html")
    page = (tmp_path / "p.html").read_text()
    parser = Structure()
    parser.feed(page)
    parser.close()
    assert page.startswith("<!DOCTYPE html>") and not parser.errors and parser.open == []
    assert parser.options == [f"position {p}, layer {l}" for p, l in sorted(sites)]
    assert ("SYNTHETIC DEMO DATA: these are not real model activations" in page) is synthetic
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the question cannot close a script
    assert "gpt2 &lt;&amp;&gt;" in page and not parser.attributes & {"src", "href"}  # self-contained
    data = json.loads(parser.scripts[0])
    assert data == page_data([read_json(f) for f in sorted(files)])
    assert set(data["problems"]["questions"]) == {NASTY[:100]}


def test_page_data_unpacks_to_the_catalogues(tmp_path):
    files = catalogue_files(tmp_path, [(0, 0), (2, 5)])
    cats = [read_json(f) for f in files]
    data = page_data(cats)
    assert data["index_bytes"] == 2 and len(data["sites"]) == len(cats)
    for cat, site in zip(cats, data["sites"]):
        which = np.frombuffer(base64.b64decode(site["top_problem"]), "<u2")
        activation = np.frombuffer(base64.b64decode(site["top_activation"]), "<f4")
        first = np.cumsum([0] + site["ntop"])
        for j, lat in enumerate(cat["latents"]):
            assert site["count"][j] / cat["n_problems"] == lat["frequency"]
            assert site["mean"][j] == (None if lat["dead"] else pytest.approx(lat["mean_activation"], rel=1e-3))
            assert site["max"][j] == (None if lat["dead"] else pytest.approx(lat["max_activation"], rel=1e-3))
            corr = lat["correlation_is_correct"]
            assert site["corr"][j] == (None if corr is None else pytest.approx(corr, rel=1e-3, abs=1e-6))
            tops = [(data["problems"]["ids"][w], float(a)) for w, a in
                    zip(which[first[j]:first[j + 1]], activation[first[j]:first[j + 1]])]
            assert tops == [(p["id"], pytest.approx(p["activation"], rel=1e-6)) for p in lat["top_problems"]]
        assert any(c is not None for c in site["corr"]) and any(m is None for m in site["max"])  # both kinds met


def test_page_size_for_72_sites_of_512_latents(tmp_path):
    rng = np.random.default_rng(6)
    n, d = 1319, 512  # GSM8K's test set
    questions = [f"Problem {i}: " + "Janet's ducks lay 16 eggs per day and she sells the rest. " * 3 for i in range(n)]
    problems = make_problems(range(n), rng.random(n) < 0.4, questions)
    bases = [site_catalogue(random_codes(rng, n, d, 40, alive=np.arange(d - 30), ids=range(n)), problems)
             for _ in range(3)]
    files = []
    for s in range(72):
        files.append(tmp_path / f"cat{s}.json")
        files[-1].write_text(json.dumps({**bases[s % 3], "position": s % 6, "layer": s // 6}))
    catalogue_page(files, {"synthetic": True}, tmp_path / "p.html")
    size = (tmp_path / "p.html").stat().st_size
    print(f"catalogue page, 72 sites x 512 latents x 10 top problems: {size / 1e6:.2f} MB")
    assert 2e6 < size < 6e6


def render(page, tmp_path, harness: str) -> str:
    """The DOM Chromium renders from ``page`` with ``harness`` (a script) run after the page's own."""
    path = tmp_path / "rendered.html"
    path.write_text(page.replace("</body>", f"<script>{harness}</script></body>"))
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


HARNESS = """
const result = {}, rows = () => [...document.querySelectorAll("#latents tbody tr")];
const texts = trs => trs.map(tr => [...tr.cells].map(c => c.textContent));
result.initial = texts(rows());
const select = document.getElementById("site");
select.value = "1";
select.dispatchEvent(new Event("change"));
document.querySelector("#latents th[data-key='frequency']").click();
result.byFrequency = texts(rows());
document.getElementById("hide-dead").click();
result.alive = texts(rows());
rows()[0].click();
result.top = texts([...document.querySelectorAll("#top tbody tr")]);
const out = document.createElement("pre");
out.id = "result";
out.textContent = JSON.stringify(result);
document.body.appendChild(out);
"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
def test_page_renders_sorts_filters_and_shows_top_problems_in_chromium(tmp_path):
    sites = [(1, 1), (0, 0)]
    files = catalogue_files(tmp_path, sites, questions=[NASTY] * 30, tokens=True, ungraded=range(0, 30, 3))
    catalogue_page(files, {"synthetic": True}, tmp_path / "p.html")
    dom = render((tmp_path / "p.html").read_text(), tmp_path, HARNESS)
    first, second = (read_json(f) for f in (files[1], files[0]))  # the selector's order: position, then layer
    assert len(re.findall(r'<tr data-latent="\d+"', dom)) == len(second["latents"]) - second["n_dead"]
    assert "Position 0, layer 0: d=12" not in dom and "Position 1, layer 1: d=12" in dom
    result = json.loads(html.unescape(re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1)))
    assert [int(r[0]) for r in result["initial"]] == list(range(12))
    assert [r[5] for r in result["initial"]] == ["dead" if lat["dead"] else "" for lat in first["latents"]]
    by_frequency = sorted(second["latents"], key=lambda lat: (-lat["frequency"], lat["latent"]))
    assert [int(r[0]) for r in result["byFrequency"]] == [lat["latent"] for lat in by_frequency]
    assert [int(r[0]) for r in result["alive"]] == [lat["latent"] for lat in by_frequency if not lat["dead"]]
    chosen = by_frequency[0]
    assert result["top"] == [[str(p["id"]), str(float(f"{p['activation']:.4g}")).removesuffix(".0"),
                              {True: "yes", False: "no", None: "not graded"}[p["is_correct"]], NASTY[:100],
                              " | ".join(f"<{p['id']}.1.{t}>" for t in range(5)) if p["id"] % 2 == 0 else "\u2013"]
                             for p in chosen["top_problems"]]
    assert {p["is_correct"] for p in chosen["top_problems"]} == {True, False, None}  # all three shown

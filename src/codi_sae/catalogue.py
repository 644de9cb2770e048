"""The feature catalogue: what every latent of every site's SAE does, as JSON and as one HTML page.

Over the N problems of a site's codes file (``codes.py``; a row lists a latent at most once), a
latent is *active* on a problem when the problem's row lists its index (index >= 0); its
*activation* there is the listed, signed value, and 0 where it is inactive. Per latent:

- ``dead``: active on no problem; ``frequency``: (problems where active) / N, so the sum over
  latents of ``frequency * N`` is the number of active entries in the codes.
- ``mean_activation``, ``max_activation``: mean and max of |activation| over the problems where it
  is active (None if dead).
- ``correlation_is_correct``: Pearson correlation, over the graded problems (``is_correct`` not
  null), of the signed activation with ``is_correct`` as 0/1 (None where either is constant
  there: undefined).
- ``top_problems``: the ``top`` problems of largest |activation| (fewer if it is active on fewer;
  ties in codes row order), each with its signed activation, ``is_correct``, the first
  ``excerpt`` characters of its question (None where the table has none) and, where the table has
  them, its ``thought_tokens``.

The page embeds the catalogues once (``page_data``): each problem's id, correctness and question
excerpt once; per latent its active-problem count (frequency = count / N) and its mean, max and
correlation rounded to 4 significant digits; the top problems as indices into the problems and
float32 activations, packed as base64, which keeps 72 sites x 512 latents x 10 problems near 4 MB.
"""

from __future__ import annotations

import base64
import html
import json
import os

import numpy as np

from .atomic import read_json, write_json, write_text
from .codes import load_codes
from .errors import InputError
from .tables import _page

COLUMNS = (  # (key of a latent's row on the page, header)
    ("latent", "Latent"), ("frequency", "Frequency"), ("mean", "Mean |activation|"),
    ("max", "Max |activation|"), ("corr", "Correlation with is_correct"), ("dead", "Dead"),
)
PAGE_STYLE = """<style>
#latents th { cursor: pointer; user-select: none; } #latents tbody tr { cursor: pointer; }
#latents tr.dead td { color: #888; } .panes { display: flex; gap: 2em; align-items: flex-start; }
.panes > div { max-height: 80vh; overflow: auto; } #top .question { text-align: left; max-width: 40em; }
</style>"""
SCRIPT = """
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("catalogue-data").textContent);
  const problems = data.problems;
  const state = {site: 0, key: "latent", dir: 1, chosen: null};
  const select = document.getElementById("site"), hideDead = document.getElementById("hide-dead");
  const body = document.querySelector("#latents tbody");
  const fmt = x => (x === null ? "\\u2013" : String(Number(x.toPrecision(4))));
  function view(b64) {
    const text = atob(b64), bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new DataView(bytes.buffer);
  }
  function tops(s) {  // (i -> problem index, i -> activation, latent -> its first i), decoded once per site
    if (!s.decoded) {
      const which = view(s.top_problem), activation = view(s.top_activation), first = [0];
      s.ntop.forEach(n => first.push(first[first.length - 1] + n));
      const width = data.index_bytes;
      s.decoded = [i => (width === 2 ? which.getUint16(2 * i, true) : which.getUint32(4 * i, true)),
                   i => activation.getFloat32(4 * i, true), first];
    }
    return s.decoded;
  }
  function cell(row, text) { row.insertCell().textContent = text; }
  function latents() {
    const s = data.sites[state.site];
    return s.count.map((c, i) => ({latent: i, frequency: c / s.n_problems, mean: s.mean[i], max: s.max[i],
                                   corr: s.corr[i], dead: c === 0}));
  }
  function order(a, b) {  // by the chosen column, undefined values last, then by latent
    const x = a[state.key], y = b[state.key];
    if (x === y) return a.latent - b.latent;
    if (x === null || y === null) return x === null ? 1 : -1;
    return (x < y ? -1 : 1) * state.dir;
  }
  function render() {
    const s = data.sites[state.site];
    document.getElementById("summary").textContent = `Position ${s.position}, layer ${s.layer}: d=${s.latent_dim}, ` +
      `K=${s.k}, ${s.recipe} recipe, ${s.n_problems} problems, ${s.n_dead} dead latents.`;
    const rows = document.createDocumentFragment();
    for (const l of latents().filter(l => !(hideDead.checked && l.dead)).sort(order)) {
      const tr = document.createElement("tr");
      tr.dataset.latent = l.latent;
      tr.className = (l.dead ? "dead" : "") + (l.latent === state.chosen ? " chosen" : "");
      [String(l.latent), fmt(l.frequency), fmt(l.mean), fmt(l.max), fmt(l.corr), l.dead ? "dead" : ""]
        .forEach(text => cell(tr, text));
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    for (const th of document.querySelectorAll("#latents th")) {
      const on = th.dataset.key === state.key;
      th.setAttribute("aria-sort", on ? (state.dir > 0 ? "ascending" : "descending") : "none");
      th.querySelector("span").textContent = on ? (state.dir > 0 ? " \\u25b2" : " \\u25bc") : "";
    }
    detail();
  }
  function detail() {
    const s = data.sites[state.site], top = document.querySelector("#top tbody");
    const title = document.getElementById("detail-title");
    top.replaceChildren();
    if (state.chosen === null) { title.textContent = "Click a latent to see its top problems."; return; }
    const [which, activation, first] = tops(s), n = s.ntop[state.chosen];
    title.textContent = `Latent ${state.chosen}: ` + (n ? `its ${n} problems of largest |activation|` :
      "dead, active on no problem");
    for (let i = first[state.chosen]; i < first[state.chosen] + n; i++) {
      const tr = top.insertRow(), p = which(i);
      [String(problems.ids[p]), fmt(activation(i)), {true: "yes", false: "no"}[problems.correct[p]] ?? "not graded"].forEach(t => cell(tr, t));
      const q = tr.insertCell();
      q.className = "question";
      q.textContent = problems.questions[p] === null ? "(no question)" : problems.questions[p];
      const tokens = problems.tokens[p][String(s.position)];
      cell(tr, tokens ? tokens.join(" | ") : "\u2013");
    }
  }
  select.addEventListener("change", () => { state.site = Number(select.value); state.chosen = null; render(); });
  hideDead.addEventListener("change", render);
  for (const th of document.querySelectorAll("#latents th")) {
    th.addEventListener("click", () => {
      state.dir = th.dataset.key === state.key ? -state.dir : (th.dataset.key === "latent" ? 1 : -1);
      state.key = th.dataset.key;
      render();
    });
  }
  body.addEventListener("click", event => {
    const tr = event.target.closest("tr");
    if (tr) { state.chosen = Number(tr.dataset.latent); render(); }
  });
  render();
})();
"""


def load_problems(path: str | os.PathLike) -> dict[int, dict]:
    """The problems table ``{"problems": [{"id", "is_correct", ...}, ...]}`` by problem id."""
    table = read_json(path)
    if not isinstance(table, dict) or not isinstance(table.get("problems"), list):
        raise InputError(f"{path}: expected an object with a 'problems' list")
    problems = {}
    for i, p in enumerate(table["problems"]):
        if (not isinstance(p, dict) or not isinstance(p.get("id"), int) or "is_correct" not in p
                or not isinstance(p["is_correct"], bool | None)):
            raise InputError(f"{path}: problem #{i} needs an integer 'id' and a true/false/null 'is_correct'")
        if p["id"] in problems:
            raise InputError(f"{path}: problem id {p['id']} appears twice")
        problems[p["id"]] = p
    return problems


def site_catalogue(codes: dict, problems: dict[int, dict], top: int = 10, excerpt: int = 100) -> dict:
    """One site's catalogue, ``{"position", "layer", "latent_dim", "k", "recipe", "activation", "n_problems",
    "n_dead", "latents": [per latent 0..d-1 {"latent", "dead", "frequency", "mean_activation", "max_activation",
    "correlation_is_correct", "top_problems": [{"id", "activation", "is_correct", "question", "thought_tokens"}]}]}``
    (see the module docstring); ``problems`` maps problem id -> its row of the problems table."""
    ids = [int(p) for p in codes["problem_ids"]]
    missing = [p for p in ids if p not in problems]
    if missing:
        raise InputError(f"problem id {missing[0]} ({len(missing)} of {len(ids)} ids) is not in the problems table")
    if not ids:
        raise InputError("the codes hold no problems")
    n, d = len(ids), int(codes["latent_dim"])
    indices, values = np.asarray(codes["indices"]), np.asarray(codes["values"], dtype=np.float64)
    if indices.shape != values.shape or len(indices) != n or (indices >= d).any():
        raise InputError(f"indices {list(indices.shape)}, values {list(values.shape)}, {n} problem ids and "
                         f"latent_dim {d} disagree")
    rows, slots = np.nonzero(indices >= 0)
    latent, value = indices[rows, slots].astype(np.int64), values[rows, slots]
    magnitude = np.abs(value)
    count = np.bincount(latent, minlength=d)
    mean = np.bincount(latent, weights=magnitude, minlength=d) / np.maximum(count, 1)
    peak = np.zeros(d)
    np.maximum.at(peak, latent, magnitude)
    correct = np.array([problems[p]["is_correct"] for p in ids], dtype=np.float64)  # None: NaN
    corr = _correlations(latent, value, rows, correct, d)
    order = np.lexsort((rows, -magnitude, latent))  # by latent, then |activation| desc, then row
    starts = np.cumsum(count) - count

    cfg = codes["config"]

    def problem(entry: int) -> dict:
        p = problems[ids[rows[entry]]]
        question, tokens = p.get("question"), p.get("thought_tokens")
        return {"id": p["id"], "activation": float(value[entry]), "is_correct": p["is_correct"],
                "question": None if question is None else question[:excerpt],
                "thought_tokens": tokens[cfg["position"]] if tokens else None}

    return {
        "position": cfg["position"], "layer": cfg["layer"], "latent_dim": d, "k": cfg["k"],
        "recipe": cfg["recipe"], "activation": cfg.get("activation"), "n_problems": n,
        "n_dead": int((count == 0).sum()),
        "latents": [{
            "latent": j, "dead": bool(count[j] == 0), "frequency": float(count[j] / n),
            "mean_activation": float(mean[j]) if count[j] else None,
            "max_activation": float(peak[j]) if count[j] else None,
            "correlation_is_correct": None if np.isnan(corr[j]) else float(corr[j]),
            "top_problems": [problem(e) for e in order[starts[j] : starts[j] + min(count[j], top)]],
        } for j in range(d)],
    }


def write_catalogues(code_files: list[str | os.PathLike], problems_json: str | os.PathLike,
                     outputs: list[str | os.PathLike], top: int = 10) -> None:
    """Write the catalogue of each codes file to the output at the same place."""
    problems = load_problems(problems_json)
    for path, out in zip(code_files, outputs, strict=True):
        try:
            catalogue = site_catalogue(load_codes(path), problems, top)
        except InputError as e:
            raise InputError(f"{path}: {e} ({problems_json})") from e
        write_json(out, catalogue)


def _correlations(latent: np.ndarray, value: np.ndarray, rows: np.ndarray, correct: np.ndarray,
                  d: int) -> np.ndarray:
    """Per latent, the Pearson correlation over the graded problems (``correct`` 0/1, NaN where not
    graded) of its value (0 where inactive) with ``correct``; NaN where either is constant there.
    ``latent``, ``value``, ``rows``: the active entries and their problems."""
    graded = ~np.isnan(correct)
    keep = graded[rows]
    latent, value, n = latent[keep], value[keep], int(graded.sum())
    count = np.bincount(latent, minlength=d)
    dy = np.where(graded, correct - (correct[graded].mean() if n else 0.0), 0.0)
    mean_x = np.bincount(latent, weights=value, minlength=d) / max(n, 1)  # centred y: sum(dy) = 0
    cov = np.bincount(latent, weights=value * dy[rows[keep]], minlength=d)
    var_x = np.bincount(latent, weights=(value - mean_x[latent]) ** 2, minlength=d) + (n - count) * mean_x**2
    low, high = np.zeros(d), np.zeros(d)  # the value's extremes over the graded problems: 0 counts where the
    low[count == n], high[count == n] = np.inf, -np.inf  # latent is inactive on some of them
    np.minimum.at(low, latent, value)
    np.maximum.at(high, latent, value)
    defined = (low < high) & bool(dy.any())
    return np.where(defined, np.clip(cov / np.sqrt(np.where(defined, var_x * (dy**2).sum(), 1.0)), -1.0, 1.0),
                    np.nan)


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


def page_data(catalogues: list[dict]) -> dict:
    """The catalogues as the page embeds them: ``{"problems": {"ids", "correct", "questions", "tokens"}, "index_bytes",
    "sites": [{the site's fields; per latent "count", "mean", "max", "corr", "ntop"; "top_problem", "top_activation":
    every latent's top problems in turn, as base64 of little-endian problem indices (``index_bytes`` each) and
    float32 activations}]}``."""
    index, problems = {}, {"ids": [], "correct": [], "questions": [], "tokens": []}
    for cat in catalogues:
        for p in (p for lat in cat["latents"] for p in lat["top_problems"]):
            if p["id"] not in index:
                index[p["id"]] = len(index)
                problems["ids"].append(p["id"])
                problems["correct"].append(p["is_correct"])
                problems["questions"].append(p["question"])
                problems["tokens"].append({})
            if p.get("thought_tokens"):  # per position: what the thought there decodes to
                problems["tokens"][index[p["id"]]][str(cat["position"])] = p["thought_tokens"]
    index_type = "<u2" if len(index) <= 1 << 16 else "<u4"
    sites = []
    for cat in catalogues:
        lats = cat["latents"]
        tops = [p for lat in lats for p in lat["top_problems"]]
        sites.append({
            **{k: cat[k] for k in ("position", "layer", "latent_dim", "k", "recipe", "n_problems", "n_dead")},
            "count": [round(lat["frequency"] * cat["n_problems"]) for lat in lats],
            "mean": [_round(lat["mean_activation"]) for lat in lats],
            "max": [_round(lat["max_activation"]) for lat in lats],
            "corr": [_round(lat["correlation_is_correct"]) for lat in lats],
            "ntop": [len(lat["top_problems"]) for lat in lats],
            "top_problem": _base64([index[p["id"]] for p in tops], index_type),
            "top_activation": _base64([p["activation"] for p in tops], "<f4"),
        })
    return {"problems": problems, "index_bytes": np.dtype(index_type).itemsize, "sites": sites}


def _base64(values: list, dtype: str) -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode("ascii")


def _script_json(obj) -> str:
    """``obj`` as compact JSON that is safe inside a <script> element (no <, >, & as such)."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def catalogue_page(catalogue_files: list[str | os.PathLike], dataset: dict, out_html: str | os.PathLike) -> None:
    """Write one self-contained page: pick a site, sort and filter its latents, click one for its top problems."""
    catalogues = sorted((read_json(p) for p in catalogue_files), key=lambda c: (c["position"], c["layer"]))
    options = "".join(f"<option value='{i}'>position {c['position']}, layer {c['layer']}</option>"
                      for i, c in enumerate(catalogues))
    headers = "".join(f"<th data-key='{key}'>{html.escape(name)}<span></span></th>" for key, name in COLUMNS)
    body = (
        "<p>Per latent: how often it is active, its mean and max |activation| where active, and the Pearson "
        "correlation of its signed activation (0 where inactive) with the answer being correct; click a column "
        "header to sort, a latent for its top problems.</p>"
        f"<p><label>Site <select id='site'>{options}</select></label> "
        "<label><input type='checkbox' id='hide-dead'> Hide dead latents</label></p><p id='summary'></p>"
        "<noscript><p class='warning'>This page needs JavaScript.</p></noscript>"
        f"<div class='panes'><div><table id='latents'><thead><tr>{headers}</tr></thead><tbody></tbody></table></div>"
        "<div><h2 id='detail-title'></h2><table id='top'><thead><tr><th>Problem</th><th>Activation</th>"
        "<th>Correct</th><th class='question'>Question</th><th>Thought decodes to (top 5)</th></tr></thead><tbody></tbody></table></div></div>"
        f"<script type='application/json' id='catalogue-data'>{_script_json(page_data(catalogues))}</script>"
        f"<script>{SCRIPT}</script>"
    )
    write_text(out_html, _page("Feature catalogue: every latent at every site", dataset, body, head=PAGE_STYLE))

"""SYNTHETIC demo data shaped like a CODI continuous-thought extraction.

``write_demo`` writes a "raw JSON" file laid out like the output of the GPT-2 CODI
extractor (metadata, then per problem the hidden state at every layer and latent
position), plus a ``torch.save`` file with the ground truth that generated it.
Nothing in it comes from a model.  Every activation is

    site_mean[layer, position] + sum_f coef_f * direction[layer, f] + Gaussian noise

with a sparse set of active features f and positive log-normal coefficients, so a
sparse autoencoder has a real dictionary to find.  Like GPT-2's residual stream, the
site means have a few very large dimensions that grow with depth; later layers have
more active features and relatively more noise; even positions are harder than odd
ones (their own feature frequencies, more features, more noise).  Three
"correctness" features drive ``is_correct`` through a logistic link on how strongly
they fire in the second half of the layers; accuracy comes out at roughly 45 %.

The output is fully determined by the arguments: the same arguments give the same
bytes on the same platform.  The JSON text is byte-identical to
``json.dump(obj, f, indent=2)`` but is written by hand, sample by sample (the indenting
encoder of ``json`` is far too slow for ~10^7 floats); worker processes draw and
format the samples, since turning floats into text is what takes the time.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .atomic import atomic_path
from .errors import InputError
from .parallel import map_in_order

_N_CORRECTNESS = 3  # features that drive is_correct
_N_MASSIVE = 3  # large-magnitude dimensions of the site means
_TARGET_ACCURACY = 0.44  # GPT-2 CODI on GSM8K; the realised accuracy is a bit higher
_FLOAT_SEP = ",\n" + " " * 12  # between the floats of one thought vector

# (template, answer) pairs; the first has double quotes so JSON readers meet escapes.
_QUESTIONS = (
    ('A "demo" shop has {a} boxes of {b} pencils and sells {c} pencils. '
     "How many pencils are left?", lambda a, b, c: a * b - c),
    ("Tom reads {a} pages a day for {b} days and then {c} more pages. "
     "How many pages does he read?", lambda a, b, c: a * b + c),
    ("An orchard has {a} rows of {b} trees; a storm knocks down {c} of them. "
     "How many trees are still standing?", lambda a, b, c: a * b - c),
)


def write_demo(json_path, truth_path, *, n_problems=1000, n_layers=12, n_positions=6,
               hidden_dim=768, n_features=None, seed=0, workers=None) -> None:
    """Write a synthetic raw-JSON extraction to ``json_path``, its ground truth to ``truth_path``.

    Sizes: ``n_problems`` samples, ``n_layers`` layers (``layer_0`` ...), ``n_positions``
    latent positions, ``hidden_dim`` floats per vector; ``n_features`` ground-truth
    directions per layer (default ``max(hidden_dim // 2, 3)``).  ``seed`` fixes every
    random draw.  ``workers`` processes draw and format the samples (default: the usable
    CPUs, at most 8; 1 means in this process); the output does not depend on it.

    The ground truth (load with ``torch.load(path, weights_only=True)``) is a dict:
    ``synthetic`` (True), ``directions`` float32 [L, n_features, H] (unit rows),
    ``site_means`` float32 [L, T, H], ``correctness_features`` int64 [3],
    ``is_correct`` bool [n_problems], ``active_counts`` int64 [n_problems, L, T]
    (active features per vector) and ``config`` (the generator parameters).

    Each file is written to a hidden temporary file beside its target and renamed into
    place, so a failed run never leaves a partial file under the target name (and, unless
    the process is killed outright, no temporary file either).  Raises ``InputError``
    unless all sizes are positive integers, with ``hidden_dim`` and ``n_features`` >= 3.
    """
    n_features = _check_sizes(n_problems, n_layers, n_positions, hidden_dim, n_features, seed)
    if workers is None:
        workers = min(_usable_cpus(), 8)
    _check_int("workers", workers, 1)

    config = {"name": "codi_sae.synthetic", "seed": seed, "n_problems": n_problems,
              "n_layers": n_layers, "n_positions": n_positions, "hidden_dim": hidden_dim,
              "n_features": n_features}
    model_seed, problem_seed, samples_seed = np.random.SeedSequence(seed).spawn(3)
    model = _make_model(np.random.default_rng(model_seed), n_layers, n_positions, hidden_dim,
                        n_features)
    problems = _make_problems(np.random.default_rng(problem_seed), model, n_problems, n_positions)
    # Each sample has its own seed, so the output does not depend on which worker draws it.
    jobs = zip(problems["heads"], problems["correctness_codes"], samples_seed.spawn(n_problems))
    active_counts = np.zeros((n_problems, n_layers, n_positions), dtype=np.int64)

    n_correct = int(problems["is_correct"].sum())
    metadata = {
        "model": ("gpt2-codi (synthetic demo)" if (n_layers, n_positions, hidden_dim) == (12, 6, 768)
                  else f"synthetic demo, {_count(n_layers, 'layer')} x {_count(n_positions, 'position')} x {hidden_dim} dims"),
        "checkpoint": "none (synthetic demo, no model was run)",
        "n_samples": n_problems,
        "n_correct": n_correct,
        "n_incorrect": n_problems - n_correct,
        "accuracy": n_correct / n_problems,
        "layers": list(range(n_layers)),
        "n_layers": n_layers,
        "n_tokens": n_positions,
        "hidden_dim": hidden_dim,
        "extraction_date": "1970-01-01T00:00:00",
        "dataset": "synthetic (GSM8K-shaped demo)",
        "synthetic": True,
        "description": ("SYNTHETIC demo data, not activations of any model: each vector is a "
                        "site mean plus a sparse positive combination of random unit directions "
                        "plus Gaussian noise; is_correct depends on three of those features. "
                        "Generated by codi_sae.synthetic.write_demo."),
        "generator": config,
    }
    with atomic_path(json_path) as tmp, open(tmp, "wb") as out:
        out.write(b'{\n  "metadata": ' + _indent(json.dumps(metadata, indent=2), 2).encode()
                  + b',\n  "samples": [\n')
        texts = map_in_order(_worker_sample_text, jobs, workers, _set_worker_model, (model,))
        for i, (text, counts) in enumerate(texts):
            out.write(text if i == 0 else b",\n" + text)
            active_counts[i] = counts
        out.write(b"\n  ]\n}")

    import torch  # here, not at the top: worker processes never need it

    truth = {
        "synthetic": True,
        "directions": torch.from_numpy(model["directions"].astype(np.float32)),
        "site_means": torch.from_numpy(model["site_means"].astype(np.float32)),
        "correctness_features": torch.from_numpy(model["correctness_features"].astype(np.int64)),
        "is_correct": torch.from_numpy(problems["is_correct"]),
        "active_counts": torch.from_numpy(active_counts),
        "config": config,
    }
    # A file object, not a path: torch.save would record the temporary file's name.
    with atomic_path(truth_path) as tmp, open(tmp, "wb") as out:
        torch.save(truth, out)


def site_sample(n_rows, position, layer, *, n_layers=12, n_positions=6, hidden_dim=768, n_features=None,
                seed=0, sample_seed=1) -> np.ndarray:
    """SYNTHETIC: ``n_rows`` new activations, float32 [n_rows, hidden_dim], of the site (``position``,
    ``layer``) of the demo that ``write_demo`` writes with the same sizes and ``seed``: the same
    dictionary, site mean, feature frequencies, correctness features and noise, drawn afresh
    from ``sample_seed``. For studies that need more rows of one site than a demo file holds
    (e.g. how reconstruction grows with the training rows); nothing is written."""
    model = _site_model(n_rows, position, layer, n_layers, n_positions, hidden_dim, n_features, seed)
    rng = np.random.default_rng(sample_seed)
    correctness = _make_problems(rng, model, n_rows, n_positions)["correctness_codes"][:, layer, position]
    fire_prob = model["fire_prob"][layer, position]
    codes, acts = _draw(rng, model, np.broadcast_to(fire_prob, (n_rows, len(fire_prob))),
                        model["coef_scale"][layer], correctness,
                        np.broadcast_to(model["site_means"][layer, position], (n_rows, hidden_dim)),
                        model["noise_std"][layer, position])
    return (acts + codes @ model["directions"][layer]).astype(np.float32)


def layer_dictionary(layer, *, n_layers=12, n_positions=6, hidden_dim=768, n_features=None, seed=0) -> np.ndarray:
    """SYNTHETIC: the ground-truth dictionary of ``layer`` of the demo that ``write_demo`` writes with
    the same sizes and ``seed``, float32 [n_features, hidden_dim] (unit rows): the directions every
    position of that layer draws its features from (the truth file's ``directions[layer]``)."""
    model = _site_model(1, 0, layer, n_layers, n_positions, hidden_dim, n_features, seed)
    return model["directions"][layer].astype(np.float32)


def _site_model(n_rows, position, layer, n_layers, n_positions, hidden_dim, n_features, seed):
    """The model ``write_demo`` draws for these sizes and ``seed``, after checking them and that the site exists."""
    n_features = _check_sizes(n_rows, n_layers, n_positions, hidden_dim, n_features, seed)
    if not (0 <= position < n_positions and 0 <= layer < n_layers):
        raise InputError(f"synthetic demo: no site at position {position}, layer {layer} in "
                         f"{n_positions} positions x {n_layers} layers")
    model_seed = np.random.SeedSequence(seed).spawn(3)[0]  # as write_demo draws its model
    return _make_model(np.random.default_rng(model_seed), n_layers, n_positions, hidden_dim, n_features)


def _check_sizes(n_problems, n_layers, n_positions, hidden_dim, n_features, seed):
    """Raise ``InputError`` unless every size is valid; return ``n_features`` (its default for None)."""
    for name, value, minimum in (("n_problems", n_problems, 1), ("n_layers", n_layers, 1),
                                 ("n_positions", n_positions, 1),
                                 ("hidden_dim", hidden_dim, _N_MASSIVE), ("seed", seed, 0)):
        _check_int(name, value, minimum)
    if n_features is None:
        n_features = max(hidden_dim // 2, _N_CORRECTNESS)
    _check_int("n_features", n_features, _N_CORRECTNESS)
    return n_features


def _make_model(rng, n_layers, n_positions, hidden_dim, n_features):
    """Draw the per-layer dictionaries, site means, firing probabilities and noise levels."""
    depth = np.linspace(0.0, 1.0, n_layers) if n_layers > 1 else np.zeros(1)
    odd = np.arange(n_positions) % 2 == 1

    directions = rng.standard_normal((n_layers, n_features, hidden_dim))
    directions /= np.linalg.norm(directions, axis=2, keepdims=True)
    # Round to float32 once so the data are built from exactly the saved directions.
    directions = directions.astype(np.float32).astype(np.float64)

    site_means = rng.standard_normal((n_layers, n_positions, hidden_dim))
    site_means *= (1 + depth)[:, None, None]
    massive_dims = rng.choice(hidden_dim, _N_MASSIVE, replace=False)
    massive = np.array([1.0, -0.6, 0.35]) * (20 + 280 * depth)[:, None]  # [L, 3]: tens to ~300
    site_means[:, :, massive_dims] = massive[:, None, :] * (
        1 + 0.05 * rng.standard_normal((n_layers, n_positions, _N_MASSIVE)))

    # Expected number of active features per vector: grows with depth, higher at even positions.
    k_odd = n_features * (0.015 + 0.045 * depth)
    k_even = n_features * (0.03 + 0.07 * depth)
    expected_k = np.maximum(1.0, np.where(odd, k_odd[:, None], k_even[:, None]))  # [L, T]
    correctness_features = np.sort(rng.choice(n_features, _N_CORRECTNESS, replace=False))
    # Power-law feature frequencies, ranked separately per layer and position parity.
    fire_prob = np.empty((n_layers, n_positions, n_features))
    for parity in (0, 1):
        ranks = rng.permuted(np.tile(np.arange(n_features), (n_layers, 1)), axis=1)
        weights = (ranks + 1.0) ** -0.7
        weights[:, correctness_features] = 0.0  # these fire only through _make_problems
        weights /= weights.sum(axis=1, keepdims=True)
        fire_prob[:, odd == parity] = weights[:, None, :]
    fire_prob = np.minimum(1.0, fire_prob * expected_k[:, :, None])

    coef_scale = 2.0 + 4.0 * depth  # coefficients are coef_scale * LogNormal(0, 0.5)
    # Noise variance is a set fraction of the (approximate) signal variance of the site.
    noise_fraction = np.where(odd, 0.03 + 0.10 * depth[:, None], 0.05 + 0.12 * depth[:, None])
    signal_var = expected_k * (coef_scale**2 * np.exp(0.5))[:, None]
    noise_std = np.sqrt(noise_fraction / (1 - noise_fraction) * signal_var / hidden_dim)

    return {"directions": directions, "site_means": site_means, "fire_prob": fire_prob,
            "coef_scale": coef_scale, "noise_std": noise_std[:, :, None],
            "correctness_features": correctness_features}


def _make_problems(rng, model, n_problems, n_positions):
    """Draw the correctness-feature codes, outcomes and question texts of all problems."""
    n_layers = model["site_means"].shape[0]
    # Each problem uses each correctness feature with probability 1/2, at its own strength;
    # a used feature fires at 60 % of the sites.
    uses = rng.random((n_problems, 1, 1, _N_CORRECTNESS)) < 0.5
    strength = rng.lognormal(0.0, 0.5, (n_problems, 1, 1, _N_CORRECTNESS))
    fires = rng.random((n_problems, n_layers, n_positions, _N_CORRECTNESS)) < 0.6
    jitter = rng.lognormal(0.0, 0.25, fires.shape)
    codes = np.where(uses & fires, strength * jitter, 0.0) * model["coef_scale"][:, None, None]

    # Logistic link on the standardised total activation in the second half of the layers.
    score = codes[:, n_layers // 2:].sum(axis=(1, 2, 3))
    z = (score - score.mean()) / (score.std() or 1.0)
    logit = np.log(_TARGET_ACCURACY / (1 - _TARGET_ACCURACY)) + 2.0 * z
    is_correct = rng.random(n_problems) < 1 / (1 + np.exp(-logit))

    heads = []
    for i in range(n_problems):
        template, answer = _QUESTIONS[rng.integers(len(_QUESTIONS))]
        a, b = (int(v) for v in rng.integers(2, 20, size=2))
        c = int(rng.integers(1, a * b))
        truth = answer(a, b, c)
        miss = int(rng.integers(1, 20)) * int(rng.choice((-1, 1)))
        prediction = truth if is_correct[i] else truth + miss
        heads.append({
            "id": i,
            "question": f"Synthetic problem {i}: " + template.format(a=a, b=b, c=c),
            "ground_truth": truth,
            "ground_truth_text": str(truth),
            "prediction": prediction,
            "prediction_text": f"The answer is: {prediction}",
            "is_correct": bool(is_correct[i]),
        })
    return {"correctness_codes": codes, "is_correct": is_correct, "heads": heads}


def _thoughts(rng, model, correctness_codes):
    """One problem's activations, float32 [L, T, H], and its active-feature counts [L, T]."""
    codes, acts = _draw(rng, model, model["fire_prob"], model["coef_scale"][:, None, None], correctness_codes,
                        model["site_means"], model["noise_std"])
    # Sum only the active features: faster than a dense matmul, and no BLAS threads that
    # would compete with the formatting workers.
    directions = model["directions"]
    for layer, position in np.ndindex(codes.shape[:2]):
        active = np.flatnonzero(codes[layer, position])
        acts[layer, position] += codes[layer, position, active] @ directions[layer, active]
    return acts.astype(np.float32), np.count_nonzero(codes, axis=2)


def _draw(rng, model, fire_prob, coef_scale, correctness_codes, means, noise_std):
    """Feature codes [..., F] (each feature fires with its ``fire_prob``, the correctness features
    as given) and the activations before the features: ``means`` plus Gaussian noise [..., H]."""
    fire = rng.random(fire_prob.shape) < fire_prob
    codes = np.where(fire, rng.lognormal(0.0, 0.5, fire.shape) * coef_scale, 0.0)
    codes[..., model["correctness_features"]] = correctness_codes
    return codes, means + rng.standard_normal(means.shape) * noise_std


_worker_model = None  # the model, in each process that draws samples


def _set_worker_model(model):
    """Pool initializer: keep the model, so that jobs need not carry it."""
    global _worker_model
    _worker_model = model


def _worker_sample_text(job):
    """``_sample_text`` with the model that ``_set_worker_model`` kept."""
    return _sample_text(_worker_model, *job)


def _sample_text(model, head, correctness_codes, seed):
    """Draw one problem's thoughts and lay out its element of ``samples``.

    Returns the element as ASCII bytes exactly as ``json.dump(..., indent=2)`` writes it
    (starting with its indentation, without a trailing comma or newline) and the number
    of active features per site.  ``head`` holds the scalar fields.
    """
    acts, active_counts = _thoughts(np.random.default_rng(seed), model, correctness_codes)
    layers = (f'        "layer_{layer}": [\n'
              + ",\n".join("          [\n            " + _FLOAT_SEP.join(map(repr, v))
                           + "\n          ]" for v in vectors)
              + "\n        ]"
              for layer, vectors in enumerate(acts.tolist()))  # tolist(): exact float32 values
    text = ("    " + _indent(json.dumps(head, indent=2)[:-2], 4) + ',\n      "thoughts": {\n'
            + ",\n".join(layers) + "\n      }\n    }")
    return text.encode("ascii"), active_counts


def _indent(text, n):
    """Indent every line of ``text`` but the first by ``n`` spaces."""
    return text.replace("\n", "\n" + " " * n)


def _check_int(name, value, minimum):
    """Raise ``InputError`` unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"synthetic demo: {name} must be an integer >= {minimum}, got {value!r}")


def _usable_cpus():
    """Number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("s" if n != 1 else "")

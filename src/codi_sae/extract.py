"""Run a CODI model over a problem file and write its continuous thoughts as the seed's raw JSON.

Two conventions of what is recorded (README "Start from a model"), both ``latent_steps``
positions of ``n_layers`` layers:

- ``seed``, as the seed's extraction did: positions [bot, latent 1 .. latent T-1] (the last
  latent is never fed; the answer is decoded after latent T-1), ``layer_i`` =
  ``hidden_states[i]`` for i in 0..L-1 (``layer_0`` is the embedding output; the last block's
  output is not recorded);
- ``codi``, as CODI's own inference runs: positions [latent 1 .. latent T], all fed before the
  answer; ``layer_i`` = ``hidden_states[i + 1]``, the output of block i (the last one after the
  final layer norm, as transformers returns it).

Only ``model_dims`` and ``checkpoint_weights`` run outside the extraction job (when the workflow
is parsed); they import neither torch nor transformers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .atomic import atomic_path
from .errors import InputError
from .problems import last_number, read_problems

log = logging.getLogger(__name__)
RANDOM_MODEL_KEY = "codi_sae_random_weights"  # set in a random model's config by write_random_codi
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # a CODI checkpoint's state dict, either format


@dataclass(frozen=True)
class ModelDims:
    n_layers: int
    hidden_dim: int
    vocab_size: int
    model_type: str
    random: bool  # made by write_random_codi: its thoughts are synthetic


def checkpoint_weights(checkpoint: str | os.PathLike) -> Path:
    """The file of a CODI checkpoint directory that holds its state dict (WEIGHT_FILES, in that
    order); the directory itself when it has neither (the extraction then says so)."""
    folder = Path(checkpoint)
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), folder)


def model_files(base_model: str | os.PathLike) -> list[str]:
    """The files of a local model directory (config, tokenizer, weights), the extraction's inputs: a
    file replaced in place changes no directory's time, so listing the directory would miss it."""
    folder = Path(base_model).expanduser()
    return sorted(str(p) for p in folder.iterdir() if p.is_file()) if folder.is_dir() else [str(folder)]


def model_dims(base_model: str | os.PathLike) -> ModelDims:
    """The layers and hidden size of the base model, from its ``config.json``."""
    path = Path(base_model).expanduser() / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found (extract.base_model must be a local model directory)") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable model config ({type(e).__name__}: {e})") from None
    layers = config.get("num_hidden_layers", config.get("n_layer"))
    hidden = config.get("hidden_size", config.get("n_embd"))
    vocab = config.get("vocab_size")
    if not all(isinstance(v, int) for v in (layers, hidden, vocab)):
        raise InputError(f"{path}: no integer num_hidden_layers (n_layer), hidden_size (n_embd) and vocab_size")
    return ModelDims(layers, hidden, vocab, config.get("model_type", "unknown model type"),
                     bool(config.get(RANDOM_MODEL_KEY, False)))


def write_extraction(out: str | os.PathLike, *, checkpoint: str, base_model: str, problems: str,
                     n_problems: int | None = None, latent_steps: int = 6, convention: str = "seed",
                     batch_size: int = 16, device: str = "auto", lora_alpha: float = 32,
                     max_new_tokens: int = 256, threads: int | None = None) -> dict:
    """Extract the thoughts of the first ``n_problems`` problems into the raw JSON ``out``; returns
    its metadata.

    Samples are streamed to disk batch by batch (memory: one batch), then the metadata, which
    needs the accuracy, is written before them; ``out`` appears only when complete. Each sample
    has the seed's fields (id, question, ground truth, prediction, is_correct, thoughts) and,
    per position, the top tokens its last-layer state decodes to (``thought_tokens`` and
    ``thought_token_probs``). ``threads``: torch's CPU threads (default: torch's own choice).
    """
    import orjson
    import torch

    from .codi import load_codi
    from .devices import pick_device

    if threads:
        torch.set_num_threads(threads)
    dims = model_dims(base_model)
    items = read_problems(problems, n_problems)
    model = load_codi(checkpoint, base_model, lora_alpha=lora_alpha, device=pick_device(device, "extract.device"))
    if (model.n_layers, model.codi.config.hidden_size) != (dims.n_layers, dims.hidden_dim):
        raise InputError(f"{base_model}: config.json says {dims.n_layers} layers of {dims.hidden_dim}, "
                         f"the model has {model.n_layers} of {model.codi.config.hidden_size}")
    _check_context(model, items, problems, base_model, latent_steps, convention, max_new_tokens)
    log.info("extracting %d problems with %s (%s convention, %d latent steps) on %s",
             len(items), checkpoint, convention, latent_steps, model.device)
    n_correct = 0
    with atomic_path(out) as tmp:
        part = tmp.with_name("samples.part")
        try:
            with open(part, "wb") as f:
                for start in range(0, len(items), batch_size):
                    batch = items[start : start + batch_size]
                    thoughts = model.think([p.question for p in batch], latent_steps, convention, max_new_tokens)
                    for b, problem in enumerate(batch):
                        sample = _sample(problem, thoughts, b, model.tokenizer, checkpoint)
                        n_correct += sample["is_correct"]
                        f.write((b",\n" if start + b else b"") + orjson.dumps(sample, option=orjson.OPT_SERIALIZE_NUMPY))
                    log.info("%d of %d problems", start + len(batch), len(items))
            metadata = {
                "model": f"CODI over {dims.model_type} ({Path(base_model).name})", "checkpoint": str(checkpoint), "base_model": str(base_model),
                "convention": convention, "latent_steps": latent_steps, "dataset": str(problems),
                "n_samples": len(items), "n_correct": n_correct, "n_incorrect": len(items) - n_correct,
                "accuracy": n_correct / len(items), "layers": list(range(dims.n_layers)),
                "n_layers": dims.n_layers, "n_tokens": latent_steps, "hidden_dim": dims.hidden_dim,
                "extraction_date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "torch": str(torch.__version__), "device": str(model.device),
            }
            if dims.random:
                metadata.update(synthetic=True, description="SYNTHETIC: thoughts of a CODI model with random "
                                "weights (codi_sae.codi.write_random_codi), not of a trained model")
            with open(tmp, "wb") as f, open(part, "rb") as samples:
                f.write(b'{"metadata": ' + orjson.dumps(metadata, option=orjson.OPT_INDENT_2) + b',\n"samples": [\n')
                shutil.copyfileobj(samples, f, 1 << 24)
                f.write(b"\n]}\n")
        finally:
            part.unlink(missing_ok=True)
    log.info("wrote %s: accuracy %.3f", out, metadata["accuracy"])
    return metadata


def _check_context(model, items, problems, base_model, latent_steps: int, convention: str,
                   max_new_tokens: int) -> None:
    """Refuse, before any inference, a problem whose run would not fit the model's context (when its
    config has a limit): torch would otherwise fail when the batch reached it."""
    limit = model.context
    if limit is None:
        return
    for problem in items:
        needed = model.positions(problem.question, latent_steps, convention, max_new_tokens)
        if needed > limit:
            prompt = len(model.prompt(problem.question))
            raise InputError(
                f"{problems}: problem {problem.id!r} does not fit the context of {base_model} ({limit} positions): "
                f"its {prompt - 1} question tokens, bot, {needed - prompt - max_new_tokens} latents fed back and the "
                f"answer (eot, then up to extract.max_new_tokens - 1 tokens fed back) need {needed}. Lower "
                f"extract.max_new_tokens (now {max_new_tokens}) or extract.latent_steps (now {latent_steps}) "
                f"by {needed - limit} in all")


def _sample(problem, thoughts, b: int, tokenizer, checkpoint) -> dict:
    """Problem ``b`` of a batch's ``Thoughts`` as a sample of the raw JSON."""
    hidden = thoughts.hidden[b]
    if not hidden.isfinite().all():
        raise InputError(f"{checkpoint}: the thoughts of problem {problem.id!r} hold NaN or infinity")
    text = tokenizer.decode(thoughts.answers[b], skip_special_tokens=True)
    prediction = last_number(text)
    return {
        "id": problem.id, "question": problem.question,
        "ground_truth": problem.ground_truth, "ground_truth_text": problem.answer,
        "prediction": prediction, "prediction_text": text, "is_correct": prediction == problem.ground_truth,
        "thoughts": {f"layer_{i}": layer.numpy() for i, layer in enumerate(hidden)},
        "thought_tokens": [[tokenizer.decode([t]) for t in row] for row in thoughts.top_ids[b].tolist()],
        "thought_token_probs": thoughts.top_probs[b].tolist(),
    }

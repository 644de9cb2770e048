"""Extraction benchmark: problems per second of the extract rule on the CPU.

    python benchmarks/extraction.py [--problems 32] [--threads 2] [--quick] [--work DIR] [--results PATH]

Builds a CODI of RANDOM weights of GPT-2 small's size (12 layers, 768 dims, 12 heads, a
50,257-token vocabulary, LoRA rank 128 on c_attn, c_proj and c_fc, a projection with LayerNorm:
``codi_sae.codi.write_random_codi``) and GSM8K-sized questions (60 words), then times
``write_extraction`` on them (less the model's loading, timed apart) at batch sizes 1 and 16: thoughts alone (one answer token) and with
16 answer tokens (a random model never ends its answer, so every problem decodes all of them; a
trained CODI's GSM8K answers are about that long). Beside each, the FLOP floor: 2 FLOP per
parameter per token through the blocks (LoRA included) plus the LM head at the answer tokens,
at the matmul rate measured in the same run. Writes a Markdown report (default
benchmarks/EXTRACTION.md); nothing is asserted. ``--quick``: a tiny model, for the smoke test.
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from datetime import datetime
from pathlib import Path

import torch

from codi_sae.codi import load_codi, write_random_codi
from codi_sae.extract import write_extraction

HERE = Path(__file__).resolve().parent
GPT2_SMALL = {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257, "lora_r": 128}
QUICK = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 500, "lora_r": 4}
QUESTION_WORDS = 60
LATENT_STEPS = 6


def matmul_rate(threads: int, dim: int) -> float:
    """FLOP/s of float32 matmuls of the model's width on ``threads`` threads, best of 5."""
    torch.set_num_threads(threads)
    a, b = torch.randn(256, dim), torch.randn(dim, 4 * dim)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * 256 * dim * 4 * dim / best


def floor_flop(size: dict, question_tokens: int, answer_tokens: int) -> float:
    """FLOP of one problem at least: blocks (12 H^2 per layer, plus LoRA's 2 r (in + out) per
    adapted projection) for every token, the LM head for the answer tokens."""
    H, L, r = size["n_embd"], size["n_layer"], size["lora_r"]
    lora = r * ((H + 3 * H) + (H + H) + (H + 4 * H) + (4 * H + H))  # c_attn, attn c_proj, c_fc, mlp c_proj
    block = 12 * L * H**2 + L * lora
    tokens = question_tokens + 1 + LATENT_STEPS + answer_tokens
    return 2 * (block * tokens + (size["vocab_size"] + 3) * H * answer_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=HERE / "work/extraction")
    parser.add_argument("--results", type=Path, default=HERE / "EXTRACTION.md")
    args = parser.parse_args()
    size = QUICK if args.quick else GPT2_SMALL
    problems = 4 if args.quick else args.problems

    rng = random.Random(0)
    words = [f"w{i}" for i in range(2000)] + [str(i) for i in range(100)]
    folder = args.work / ("quick" if args.quick else "gpt2-small")
    if not (folder / "checkpoint/model.safetensors").exists():
        write_random_codi(folder, words, n_layer=size["n_layer"], n_embd=size["n_embd"], n_head=size["n_head"],
                          vocab_size=size["vocab_size"], lora_r=size["lora_r"], lora_alpha=32)
    questions = folder / "problems.jsonl"
    questions.write_text("".join(
        f'{{"question": "{" ".join(rng.choices(words, k=QUESTION_WORDS))}", "answer": "#### {i}"}}\n'
        for i in range(problems)))
    rate = matmul_rate(args.threads, size["n_embd"])
    start = time.perf_counter()
    load_codi(folder / "checkpoint", folder / "base", lora_alpha=32, device=torch.device("cpu"))
    load = time.perf_counter() - start  # in every run below: subtracted for the rate

    rows = []
    for batch in (1, 16):
        for answer in (1, 16):
            start = time.perf_counter()
            write_extraction(args.work / "thoughts.json", checkpoint=str(folder / "checkpoint"),
                             base_model=str(folder / "base"), problems=str(questions), latent_steps=LATENT_STEPS,
                             batch_size=batch, device="cpu", lora_alpha=32, max_new_tokens=answer,
                             threads=args.threads)
            seconds = time.perf_counter() - start - load
            floor = problems * floor_flop(size, QUESTION_WORDS, answer) / rate
            rows.append((batch, answer, problems / seconds, seconds, floor))
            print(f"batch {batch:2d}, {answer:2d} answer tokens: {problems / seconds:.2f} problems/s "
                  f"({seconds:.1f} s after loading; FLOP floor {floor:.1f} s)", flush=True)

    name = "tiny (--quick)" if args.quick else "GPT-2 small"
    lines = [
        "# Extraction benchmark: CODI inference on the CPU",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"torch {torch.__version__}. `python benchmarks/extraction.py` (see its docstring).",
        "",
        f"A CODI of **random weights** ({name}: {size['n_layer']} layers, {size['n_embd']} dims, "
        f"{size['vocab_size']} tokens, LoRA rank {size['lora_r']}), {problems} questions of {QUESTION_WORDS} "
        f"tokens, {LATENT_STEPS} latent steps, `seed` convention. Matmul rate measured in the same run: "
        f"{rate / 1e9:.0f} GFLOP/s. The FLOP floor is the time those matmuls need at that rate. "
        f"Loading the model takes {load:.1f} s per job, not counted below.",
        "",
        "| batch size | answer tokens | problems/s | seconds | FLOP floor (s) | seconds / floor |",
        "|---|---|---|---|---|---|",
        *(f"| {b} | {a} | {p:.2f} | {s:.1f} | {f:.1f} | {s / f:.1f} |" for b, a, p, s, f in rows),
        "",
    ]
    args.results.write_text("\n".join(lines))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()

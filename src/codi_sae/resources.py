"""Memory and run time a job asks the scheduler for, estimated from the data's shape.

Every estimate is a sum of named terms (README "Resources"); ``request`` turns it into what a
job asks for. The constants are measured where the comment says so, else deliberately generous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InputError

MB = 2**20
BASE_MB = 500  # one job's Python with torch, numpy, scikit-learn: 220-330 MB measured
WORKER_MB = 150  # one conversion worker process (numpy, orjson, a sample in flight): ~100 MB measured
CUDA_MB = 2000  # host memory of a CUDA context with cuBLAS (not measured here: 0.5-2 GB is usual)
ROW_BYTES = 200  # per split row: its problem id, layer and position, as Python objects when loaded
START_MIN = 5  # start-up, loading, saving, and the scheduler's slack
CPU_FLOPS_PER_THREAD = 10e9  # training FLOP/s per thread: 130e9 measured on a 2-core Xeon
GPU_FLOPS = 2e12  # training FLOP/s on one GPU (small batched matmuls; far below any datacenter GPU's peak)
PARSE_BYTES_PER_S = 50e6  # raw JSON bytes each conversion worker parses a second: 170e6 measured
JSON_BYTES_PER_VALUE = 32  # a float in the raw JSON with its separator and indent: 31 in the seed's file
MIN_JSON_BYTES_PER_VALUE = 8  # the fewest a float of a real extraction takes ("0.12345,"), for a bound
TRANSFORMERS_MB = 400  # transformers and peft imported, beside BASE_MB
QUESTION_TOKENS = 256  # a GSM8K question's tokens, generously (GPT-2's tokenizer: 60-200)
EVAL_ROWS = 256  # rows per evaluation chunk: train.EVAL_ROWS (tested equal; this module imports no torch)


@dataclass(frozen=True)
class Shape:
    """The data as the estimates see it: problems x layers x positions x hidden dim."""

    n_problems: int
    n_layers: int
    n_positions: int
    hidden_dim: int

    @property
    def n_sites(self) -> int:
        return self.n_layers * self.n_positions

    @property
    def split_mb(self) -> float:
        """Both split files (train and validation) as loaded: float32 rows plus their labels."""
        rows = self.n_problems * self.n_sites
        return rows * (4 * self.hidden_dim + ROW_BYTES) / MB


def convert_mb(shape: Shape, workers: int) -> float:
    """Conversion: the two splits' arrays (the output), one more copy's worth while each is
    written, and the parsing workers; the raw file is streamed, never held."""
    return BASE_MB + 2 * shape.split_mb + workers * WORKER_MB


def convert_minutes(raw_bytes: int, workers: int) -> float:
    """Conversion: the raw JSON's bytes at the parse rate of ``workers`` processes."""
    return START_MIN + raw_bytes / (PARSE_BYTES_PER_S * workers) / 60


def lm_params(n_layers: int, hidden_dim: int, vocab_size: int) -> int:
    """A transformer LM's parameters: 12 H^2 per layer (attention and a 4H MLP) plus the embedding."""
    return 12 * n_layers * hidden_dim**2 + vocab_size * hidden_dim


def extract_mb(shape: Shape, params: int, batch_size: int, max_new_tokens: int, gpu: bool) -> float:
    """Extraction: the base model's weights, the checkpoint's and the model's (three copies while
    loading), and per problem in a batch its KV cache and every layer's hidden states over the
    question; on a GPU, the CUDA context instead of the batch (held on the device)."""
    tokens = QUESTION_TOKENS + shape.n_positions + max_new_tokens
    per_problem = 4 * shape.hidden_dim * (shape.n_layers + 1) * (2 * tokens + QUESTION_TOKENS)
    work = CUDA_MB if gpu else batch_size * per_problem / MB
    return BASE_MB + TRANSFORMERS_MB + 3 * 4 * params / MB + work


def extract_minutes(shape: Shape, params: int, max_new_tokens: int, *, threads: int, gpu: bool) -> float:
    """Extraction: 2 FLOP per parameter per token (question, thoughts, answer), at the assumed rate."""
    tokens = QUESTION_TOKENS + shape.n_positions + max_new_tokens
    rate = GPU_FLOPS if gpu else CPU_FLOPS_PER_THREAD * max(1, threads)
    return START_MIN + 2 * params * tokens * shape.n_problems / rate / 60


def batch_mb(shape: Shape, latent_dim: int, sites: int, batch_size: int) -> float:
    """One batched model of ``sites`` SAEs in training: its sites' rows (train and validation),
    parameters with gradients and two Adam moments, and the work buffers of a step (kept for two
    batch sizes: eight of d and three of H floats per row, with AuxK) or of an evaluation chunk."""
    H, d = shape.hidden_dim, latent_dim
    rows = sites * shape.n_problems * H * 4
    model = sites * 4 * (2 * d * H + d + H) * 4
    step = sites * 2 * max(batch_size, EVAL_ROWS) * (8 * d + 3 * H) * 4
    return (rows + model + step) / MB


def train_mb(shape: Shape, batches: list[tuple[int, int]], *, workers: int, batch_size: int, gpu: bool) -> float:
    """A training job: the mapped splits, and the ``workers`` largest of its ``batches`` (each
    ``(latent_dim, sites)``) in memory at once; on a GPU one batch at a time, plus the CUDA context."""
    sizes = sorted((batch_mb(shape, d, s, batch_size) for d, s in batches), reverse=True)
    in_flight = sizes[: 1 if gpu else max(1, workers)]
    return BASE_MB + shape.split_mb + sum(in_flight) + (CUDA_MB if gpu else 0)


def train_minutes(shape: Shape, saes: list[tuple[int, int]], *, threads: int, gpu: bool, train_fraction: float) -> float:
    """A training job: per SAE ``(latent_dim, epochs)``, 12 H d FLOP per training row and epoch
    (forward and backward), two more epochs' worth for evaluation, at the assumed rate."""
    n_train = shape.n_problems * train_fraction
    flop = sum(12 * shape.hidden_dim * d * n_train * (epochs + 2) for d, epochs in saes)
    rate = GPU_FLOPS if gpu else CPU_FLOPS_PER_THREAD * max(1, threads)
    return START_MIN + flop / rate / 60


def splits_mb(shape: Shape, processes: int = 1) -> float:
    """A job that reads the splits (baselines, codes, probe): each process holds them."""
    return processes * (BASE_MB + shape.split_mb)


def codes_mb(shape: Shape, k: int) -> float:
    """Every site's sparse codes: K indices (int64 at most) and values (float32) per problem."""
    return shape.n_sites * shape.n_problems * k * 12 / MB


def decoders_mb(shape: Shape, d: int) -> float:
    """Every site's decoder, as saved and as unit columns (the cross-layer analysis)."""
    return shape.n_sites * 2 * d * shape.hidden_dim * 4 / MB


def request(estimate: float, *, override: int | None, safety: float, attempt: int, limit: int | None) -> int:
    """What a job asks for: the config's override, else the estimate times the safety factor;
    either times the attempt number, so that a retry asks for more; never more than ``limit``
    (what a node offers: a job asking for more could wait in Slurm's queue forever)."""
    asked = math.ceil((override or estimate * safety) * attempt)
    return asked if limit is None else min(asked, limit)


def check_fits(estimate: float, limit: int | None, what: str) -> None:
    """An InputError naming ``what`` when a memory estimate (without the safety factor) is more
    than a node offers: capped at the limit, the job would run out of memory."""
    if limit is not None and estimate > limit:
        raise InputError(f"{what}: the estimate, {math.ceil(estimate)} MB, is more than a node offers ({limit} MB)")

"""Resource estimates: how they grow, and that they cover the measured peak of real jobs."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codi_sae import resources as est
from codi_sae.errors import InputError
from codi_sae.synthetic import write_demo
from test_workflow import TINY, copy_workflow, snakemake

SEED_SHAPE = est.Shape(1000, 12, 6, 768)
QUEUED = ("demo_data", "convert", "baselines", "train_sweep", "train_sites", "codes", "probe", "catalogue", "cross_layer")


def test_the_evaluation_chunk_is_the_trainings():
    from codi_sae.train import EVAL_ROWS

    assert est.EVAL_ROWS == EVAL_ROWS


def test_estimates_grow_with_the_data_and_the_models():
    bigger = [est.Shape(2000, 12, 6, 768), est.Shape(1000, 16, 6, 768), est.Shape(1000, 12, 6, 2048)]
    for shape in bigger:
        assert est.convert_mb(shape, 2) > est.convert_mb(SEED_SHAPE, 2)
        assert est.train_mb(shape, [(512, 6)], workers=1, batch_size=256, gpu=False) > est.train_mb(
            SEED_SHAPE, [(512, 6)], workers=1, batch_size=256, gpu=False)
    train = lambda batches, **kw: est.train_mb(SEED_SHAPE, batches, batch_size=256, **{"workers": 2, "gpu": False, **kw})  # noqa: E731
    assert train([(1024, 6)] * 2) > train([(512, 6)] * 2)  # d
    assert train([(512, 12)]) > train([(512, 6)] * 2, workers=1)  # sites per batch
    assert train([(512, 6)] * 4) > train([(512, 6)] * 4, workers=1)  # batches in flight
    assert train([(512, 6)] * 4, gpu=True) > train([(512, 6)] * 4, workers=1)  # the CUDA context
    minutes = lambda saes, **kw: est.train_minutes(SEED_SHAPE, saes, train_fraction=0.8, **{"threads": 2, "gpu": False, **kw})  # noqa: E731
    assert minutes([(512, 25)] * 72) > minutes([(512, 25)] * 6) > minutes([(256, 25)] * 6)
    assert minutes([(512, 25)] * 72, threads=8) < minutes([(512, 25)] * 72)
    assert est.convert_minutes(2 * 10**9, 2) > est.convert_minutes(10**9, 2)


def test_a_request_is_the_estimate_times_the_safety_factor_or_the_override_times_the_attempt():
    request = lambda estimate, override=None, attempt=1, limit=None: est.request(  # noqa: E731
        estimate, override=override, safety=1.5, attempt=attempt, limit=limit)
    assert request(1000) == 1500
    assert request(1000, attempt=2) == 3000
    assert request(1000, override=700) == 700
    assert request(1000, override=700, attempt=3) == 2100
    # never more than a node offers; a memory estimate above it is an error, not a job that waits forever
    assert request(1000, limit=1200) == 1200
    assert request(1000, attempt=2, limit=2500) == 2500
    assert request(1000, override=2000, limit=1500) == 1500
    est.check_fits(1000, 1000, "rule x")
    est.check_fits(1000, None, "rule x")
    with pytest.raises(InputError, match=r"rule x: the estimate, 1000 MB, is more than a node offers \(999 MB\)"):
        est.check_fits(1000, 999, "rule x")


# The job's own imports (Snakemake's script preamble included), then the work, in a child that
# prints its peak RSS (VmHWM: its own, unlike ru_maxrss, which keeps the parent's from before
# exec); workers=1 and threads=1 keep the whole job in that one process.
CHILD = """
import json, sys, snakemake, sklearn.linear_model, torch
from codi_sae.convert import convert_raw_json
from codi_sae.train import TrainSettings, train_saes
args = json.loads(sys.argv[1])
if args["job"] == "convert":
    convert_raw_json(args["raw"], args["out"] + "/train.pt", args["out"] + "/val.pt", args["out"] + "/info.json",
                     train_fraction=args["train_fraction"], workers=1)
else:
    sites = [tuple(s) for s in args["sites"]]
    outs = [(f"{args['out']}/{p}_{l}.pt", f"{args['out']}/{p}_{l}.json") for p, l in sites]
    train_saes(args["out"] + "/train.pt", args["out"] + "/val.pt", sites, outs, latent_dim=args["d"], k=8,
               settings=TrainSettings(epochs=1, batch_size=256, device="cpu"), sites_per_batch=len(sites), threads=1)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def peak_mb(**args) -> float:
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert child.returncode == 0, child.stderr
    return int(child.stdout.split()[-1]) / 1024  # kB


# Two shapes: one whose peak is the interpreter's, one where the data and a large batched model
# (4 SAEs of d=4096 on 1024 dims: 0.5 GB of parameters, gradients and Adam moments) dominate.
@pytest.mark.parametrize("shape, d, train_fraction", [
    (est.Shape(60, 2, 3, 32), 64, 0.8),
    (est.Shape(1000, 2, 2, 1024), 4096, 0.2),
], ids=["small", "large-model"])
def test_estimates_cover_the_measured_peak(tmp_path, shape, d, train_fraction):
    raw = tmp_path / "raw.json"
    write_demo(raw, tmp_path / "truth.pt", n_problems=shape.n_problems, n_layers=shape.n_layers,
               n_positions=shape.n_positions, hidden_dim=shape.hidden_dim, workers=1)
    convert = peak_mb(job="convert", raw=str(raw), out=str(tmp_path), train_fraction=train_fraction)
    sites = [(p, layer) for layer in range(shape.n_layers) for p in range(shape.n_positions)]
    train = peak_mb(job="train", out=str(tmp_path), sites=sites, d=d)
    expected_convert = est.convert_mb(shape, workers=1)
    expected_train = est.train_mb(shape, [(d, len(sites))], workers=1, batch_size=256, gpu=False)
    print(f"{shape}: convert {convert:.0f} of {expected_convert:.0f} MB, train {train:.0f} of {expected_train:.0f} MB")
    # Covered without the safety factor, and not by more than the base allowance plus half again.
    for measured, expected in ((convert, expected_convert), (train, expected_train)):
        assert measured <= expected <= 1.5 * measured + est.BASE_MB


def requested(workdir: Path, *args: str) -> dict[str, dict[str, int]]:
    """Per rule, the mem_mb and runtime its first job asks for in a dry run."""
    proc = snakemake(workdir, "-n", *args)
    asked = {}
    for rule, line in re.findall(r"^(?:rule|checkpoint) (\w+):\n(?:    .*\n)*?    resources: (.*)$", proc.stdout, re.M):
        values = dict(re.findall(r"(mem_mb|runtime)=(\d+)", line))
        asked.setdefault(rule, {k: int(v) for k, v in values.items()})
    return asked


def test_rules_ask_for_the_estimates_or_the_overrides(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "tiny.yaml").write_text(TINY)
    shape = est.Shape(30, 3, 4, 16)  # TINY's demo
    ask = lambda estimate, safety=1.5: est.request(estimate, override=None, safety=safety, attempt=1, limit=None)  # noqa: E731
    sweep = [(8, 1), (16, 1), (24, 1), (16, 1)]  # TINY's sweep, one batch per entry, 2 threads
    asked = requested(wd, "--configfile", "tiny.yaml")
    assert asked["convert"]["mem_mb"] == ask(est.convert_mb(shape, 2))
    assert asked["train_sweep"]["mem_mb"] == ask(est.train_mb(shape, sweep, workers=2, batch_size=8, gpu=True))
    assert asked["train_sweep"]["runtime"] == ask(est.train_minutes(
        shape, [(d, 3) for d, _ in sweep], threads=2, gpu=True, train_fraction=0.8))
    (wd / "override.yaml").write_text("resources: {safety_factor: 2, gpu: 0, mem_mb: {convert: 1234}, runtime: {train_sweep: 7}}")
    asked = requested(wd, "--configfile", "tiny.yaml", "override.yaml")
    assert asked["convert"]["mem_mb"] == 1234
    assert asked["convert"]["runtime"] == ask(est.convert_minutes(shape.n_problems * 192 * 32, 2), safety=2)
    assert asked["train_sweep"]["runtime"] == 7
    assert asked["train_sweep"]["mem_mb"] == ask(est.train_mb(shape, sweep, workers=2, batch_size=8, gpu=False), safety=2)

    # a node's limits: what asks for more asks for the limit; an estimate above it stops the run
    need = est.train_mb(shape, sweep, workers=2, batch_size=8, gpu=True)  # more than any other job's
    (wd / "limits.yaml").write_text(f"resources: {{max_mem_mb: {math.ceil(need)}, max_runtime: 6}}")
    asked = requested(wd, "--configfile", "tiny.yaml", "limits.yaml")
    assert asked["train_sweep"] == {"mem_mb": math.ceil(need), "runtime": 6}
    queued = [asked[rule] for rule in QUEUED if rule in asked]  # local rules run where snakemake runs
    assert len(queued) >= 6 and max(a["mem_mb"] for a in queued) == math.ceil(need)
    assert max(a["runtime"] for a in queued) == 6
    (wd / "limits.yaml").write_text(f"resources: {{max_mem_mb: {math.ceil(need) - 1}}}")
    proc = snakemake(wd, "-n", "--configfile", "tiny.yaml", "limits.yaml", check=False)
    assert proc.returncode != 0
    assert (f"rule train_sweep (resources.max_mem_mb): the estimate, {math.ceil(need)} MB, is more than a node "
            f"offers ({math.ceil(need) - 1} MB). Raise resources.max_mem_mb, set resources.mem_mb.train_sweep"
            ) in proc.stdout + proc.stderr

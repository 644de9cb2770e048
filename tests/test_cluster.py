"""The workflow on a real one-node Slurm cluster (tests/cluster/start.sh), with the profile the
README tells users to use. .ci/run starts the cluster and sets CODI_SAE_TEST_CLUSTER=1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import raw_dict, write_raw
from test_workflow import TINY, copy_workflow, without_times

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("CODI_SAE_TEST_CLUSTER") != "1",
                       reason="needs the Slurm test cluster (tests/cluster/start.sh; .ci/run starts it)"),
]
# What a user fills into profiles/slurm/config.yaml, for the test cluster's one node of 2 CPUs.
FILLED = {"<your_account>": "codisae", "<cpu_partition>": "cpu", "<gpu_partition>": "gpu", "max-threads: 8": "max-threads: 2"}
# TINY on two layers, the sites in one job per layer: both layers' jobs run at once on the 2 fake GPUs.
CLUSTER_CONFIG = (TINY.replace("n_layers: 3", "n_layers: 2").replace("layer: 2,", "layer: 1,")
                  .replace("sites: {sites_per_batch: 5}", "sites: {sites_per_batch: 5, jobs: per_layer}"))


def cluster_workflow(tmp_path: Path) -> Path:
    wd = copy_workflow(tmp_path / "wf")
    profile = wd / "profiles/slurm/config.yaml"
    text = profile.read_text()
    for placeholder, value in FILLED.items():
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    profile.write_text(text)
    (wd / "tiny.yaml").write_text(CLUSTER_CONFIG)
    return wd


def on_slurm(wd: Path, *args: str, background: bool = False):
    """``snakemake --profile profiles/slurm`` as the README says, plus a quick first status check."""
    cmd = ["timeout", "-s", "KILL", "900", sys.executable, "-m", "snakemake", "--profile", "profiles/slurm",
           "--slurm-init-seconds-before-status-checks", "1", *args]
    if background:
        return subprocess.Popen(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True)


def slurm_jobs(since: str) -> list[dict]:
    """The jobs sacct knows since ``since``: id, state, the rule (from the plugin's comment, which
    sacct has once a job ended), TRES."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since, "-o", "JobID,State,Comment,AllocTRES,ReqTRES"],
                         capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.strip().splitlines():
        jid, state, comment, alloc, req = line.split("|")
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", comment)
        jobs.append({"id": jid, "state": state, "rule": rule.group(1) if rule else comment, "tres": alloc or req})
    return jobs


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


COMPARED = ("sweet_spot/metrics_all.json", "sweep/analysis_summary.json", "baselines/sites.json")
# Each job on Slurm takes 12 s and more (the plugin's status checks back off by 10 s): the runs
# make only what the tests check, every kind of training job and CPU-only jobs beside them.
TARGETS = tuple(f"results/{name}" for name in COMPARED)


def test_the_workflow_on_slurm_equals_a_local_run(tmp_path):
    wd = cluster_workflow(tmp_path)
    local = copy_workflow(tmp_path / "local")
    (local / "tiny.yaml").write_text(CLUSTER_CONFIG)
    start = now()
    # the local run alongside: the Slurm run mostly waits between status checks
    local_run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", *TARGETS, "--configfile",
                                  "tiny.yaml"], cwd=local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = on_slurm(wd, *TARGETS, "--configfile", "tiny.yaml")
    local_out, _ = local_run.communicate(timeout=600)
    assert local_run.returncode == 0, local_out[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = slurm_jobs(start)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    # the training went through sbatch with a GPU each, one sites job per layer; the rest asked for none
    assert len(by_rule["train_sweep"]) == 1 and len(by_rule["train_sites"]) == 2, by_rule.keys()
    assert {"demo_data", "convert", "baselines"} <= by_rule.keys(), by_rule.keys()
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            assert ("gres/gpu=1" in job["tres"]) == rule.startswith("train_"), (rule, job)
    for layer in range(2):
        assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\b", (wd / f"results/logs/sites/layer{layer}.log").read_text())
    assert "CUDA_VISIBLE_DEVICES=unset" in (wd / "results/logs/convert.log").read_text()
    # the same results as the local run
    for name in COMPARED:
        ours, theirs = (json.loads((w / "results" / name).read_text()) for w in (wd, local))
        assert without_times(ours) == without_times(theirs), name
    for site in ("pos0_layer0", "pos3_layer1"):
        ours, theirs = (torch.load(w / f"results/sweet_spot/{site}.pt", weights_only=True) for w in (wd, local))
        assert all(torch.equal(ours["model_state_dict"][k], v) for k, v in theirs["model_state_dict"].items())


def test_a_bad_input_fails_the_run_with_its_message(tmp_path):
    wd = cluster_workflow(tmp_path)
    obj = raw_dict()
    obj["samples"][4]["thoughts"]["layer_1"][2] = obj["samples"][4]["thoughts"]["layer_1"][2][:-1]
    raw = write_raw(tmp_path / "broken.json", obj)
    (wd / "bad.yaml").write_text(f"raw_json: {raw}\nsweep: {{position: 1, layer: 2, configs: [{{d: 8, k: 2}}]}}\n")
    proc = on_slurm(wd, "--retries", "0", "--configfile", "bad.yaml")  # the retry is tested below
    assert proc.returncode != 0
    expected = f"{raw}: sample #4 (id 104): layer_1, position 2 has 7 values, the metadata says hidden_dim=8"
    assert expected in proc.stdout + proc.stderr


def test_a_job_no_node_can_run_stops_the_run_with_slurms_reason(tmp_path):
    wd = cluster_workflow(tmp_path)
    (wd / "big.yaml").write_text("resources: {mem_mb: {demo_data: 100000000}}\n")
    proc = on_slurm(wd, "--configfile", "tiny.yaml", "big.yaml")
    assert proc.returncode != 0
    assert "Requested node configuration is not available" in proc.stdout + proc.stderr
    assert not (wd / "results/demo/synthetic_raw.json").exists()


def test_a_cancelled_job_is_reported_and_the_run_completes(tmp_path):
    wd = cluster_workflow(tmp_path)
    raw = write_raw(tmp_path / "raw.json", raw_dict(n=30, layers=(0, 1)))
    (wd / "tiny.yaml").write_text(  # quick up to the sites, whose jobs train long enough to be cancelled
        f"raw_json: {raw}\nsweep: {{position: 1, layer: 1, configs: [{{d: 8, k: 2}}]}}\n"
        "train: {epochs: 3, batch_size: 8}\nsites: {jobs: per_layer, train: {epochs: 1500}}\n")
    proc = on_slurm(wd, "results/sweet_spot/metrics_all.json", "--configfile", "tiny.yaml", background=True)
    cancelled = None
    deadline = time.time() + 300
    while cancelled is None and time.time() < deadline and proc.poll() is None:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %k"], capture_output=True, text=True).stdout
        running = re.findall(r"^(\d+) RUNNING rule_train_sites_", queue, re.M)  # sacct has comments at the end only
        if running:
            cancelled = running[0]
            subprocess.run(["scancel", cancelled], check=True)
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=900)
    assert cancelled, "test premise: a sites job was running"
    assert re.search(rf"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED", out), out[-3000:]
    if proc.returncode != 0:  # the profile's retry did not finish it: the rerun the README gives must
        rerun = on_slurm(wd, "results/sweet_spot/metrics_all.json", "--configfile", "tiny.yaml")
        assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert json.loads((wd / "results/sweet_spot/metrics_all.json").read_text())["n_sites"] == 8
    shutil.rmtree(wd / ".snakemake", ignore_errors=True)

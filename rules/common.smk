import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

# The package in this checkout's src/: first on this process's path, and (workflow.py) on every
# job's, so that a codi_sae installed elsewhere never stands in for the modules rules list.
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from codi_sae.atomic import read_json
from codi_sae.compare import run_notes
from codi_sae.errors import InputError
from codi_sae.extract import checkpoint_weights, model_files
from codi_sae.heatmaps import PROBE_METRICS, SITE_METRICS
from codi_sae.selection import where
from codi_sae.saeconfig import entry_name, entry_recipe, entry_train, sae_job
from codi_sae.workflow import (
    DEMO_JSON,
    DEMO_TRUTH,
    EXTRACT_JSON,
    check_config,
    data_shape,
    extract_settings,
    module_files,
    other_data_note,
    put_first_for_jobs,
    sort_keys,
    sweep_sites,
    type_text_values,
)

put_first_for_jobs(SRC)

SCHEMA = Path(workflow.basedir) / "config" / "config.schema.yaml"
type_text_values(config, yaml.safe_load(SCHEMA.read_text()))
validate(config, str(SCHEMA))
sort_keys(config)

try:
    DATA = data_shape(config)
    check_config(config, DATA)
except InputError as e:
    raise WorkflowError(f"Configuration error: {e}") from None

# The report's workflow text sees only the config: give it the data's own synthetic flag and
# (below) where the sweep runs (the schema refuses this key from users).
config["_data"] = {"synthetic": DATA.synthetic}
DEMO = DATA.raw_json == DEMO_JSON  # the workflow writes the data, and its ground truth
if note := other_data_note("results/data/dataset.json", DATA.raw_json):
    logger.warning(f"NOTE: {note}")

SPLITS = {
    "train": "results/data/train_activations.pt",
    "val": "results/data/val_activations.pt",
}
SAE = config["sae"]
EXTRACT = extract_settings(config)
LOGS = "results/logs"
BENCH = "results/benchmarks"  # time and peak memory of every job
RESOURCES = config["resources"]
GPU = RESOURCES["gpu"]


def pkg(*modules):
    """The package modules a job runs (its script's imports and theirs), as input files."""
    return module_files(SRC / "codi_sae", "jobs", *modules)


def sweet_spot_choice(wildcards):
    """The sweep's chosen {d, k} file; nothing when sites.config fixes the config.

    When the sweep's analysis reruns but writes the same choice, the sites do not rerun:
    Snakemake compares a small input file's checksum, not only its time (tested).
    """
    if config["sites"]["config"]:
        return []
    return [checkpoints.analyze_sweep.get().output.choice]


def sites_entry(wildcards):
    """The entry the sites train: sites.config, else the sweep's choice once it is known."""
    if config["sites"]["config"]:
        fixed = config["sites"]["config"]
        return {**fixed, "recipe": entry_recipe(fixed, SAE)}
    return read_json(sweet_spot_choice(wildcards)[0])


def after_sweet_spot(files):
    """Input function giving ``files`` once the sweet spot is known.

    The jobs after the per-site training take their input through it so that Snakemake
    decides afresh whether they must run once the sweep's analysis (a checkpoint) has rerun:
    an unchanged choice then reruns none of them (tested). Without it, Snakemake keeps a stale
    "input updated by another job" reason for jobs two or more steps after a checkpoint.
    """

    def files_after_choice(wildcards):
        # Called for its side effect only: it waits on the checkpoint.
        sweet_spot_choice(wildcards)
        return list(files)

    return files_after_choice


SWEEP = config["sweep"]
SWEEP_SITES = sweep_sites(SWEEP, DATA)
config["_data"]["sweep_where"] = where(
    {"sites": [{"position": p, "layer": l} for p, l in SWEEP_SITES]}
)
# file stem -> the entry, with its recipe spelled out: d512_k150, d512_k150_topk, d512_k150_topk_e100
SWEEP_ENTRIES = {
    entry_name(c, SAE): {**c, "recipe": entry_recipe(c, SAE)} for c in SWEEP["configs"]
}


# sweep.jobs: every entry in one job (one start-up, one submission), or one job per entry.
SWEEP_SHARD_NAME = "all" if SWEEP["jobs"] == "one" else "{name}"


def sweep_files(names, suffix):
    """The files of the sweep ``names`` (entries or a wildcard) at every sweep site, entry-major."""
    return [
        f"results/sweep/pos{p}_layer{layer}/{name}{suffix}"
        for name in names
        for p, layer in SWEEP_SITES
    ]


def sweep_shard_files(suffix):
    """The files of one job of the sweep: every entry's, or the one its name says."""
    return sweep_files(SWEEP_ENTRIES if SWEEP["jobs"] == "one" else ["{name}"], suffix)


def sweep_shard(wildcards):
    """What one job of the sweep trains: per entry, d, K, every recipe switch and the train settings."""
    names = list(SWEEP_ENTRIES) if SWEEP["jobs"] == "one" else [wildcards.name]
    return [
        {
            **sae_job(SWEEP_ENTRIES[name], SAE),
            "train": {**config["train"], **entry_train(SWEEP_ENTRIES[name])},
        }
        for name in names
    ]


SITES = config["sites"]
SITE_FILES = expand(
    "results/sweet_spot/pos{pos}_layer{layer}",
    zip,
    pos=[p for p, _ in DATA.sites],
    layer=[layer for _, layer in DATA.sites],
)
# sites.jobs: the sites' SAEs in one job, one job per layer, or one per site; a shard's files
# are named by its wildcards, so its membership never depends on other shards.
SITE_SHARD_NAME = {
    "one": "all",
    "per_layer": "layer{layer}",
    "per_site": "pos{pos}_layer{layer}",
}[SITES["jobs"]]


def site_shard_files(suffix):
    """The files of one job of the sites: every site's, a layer's, or one site's."""
    if SITES["jobs"] == "one":
        return [f"{s}{suffix}" for s in SITE_FILES]
    if SITES["jobs"] == "per_layer":
        return [
            f"results/sweet_spot/pos{p}_layer{{layer}}{suffix}"
            for p in range(DATA.n_positions)
        ]
    return [f"results/sweet_spot/pos{{pos}}_layer{{layer}}{suffix}"]


def sites_train(wildcards):
    """The train settings of the sites: the config's, the sweet spot's epochs, sites.train."""
    return {**config["train"], **entry_train(sites_entry(wildcards)), **SITES["train"]}


def site_shard(wildcards):
    """The (position, layer) sites of one job of the sites."""
    if SITES["jobs"] == "one":
        return DATA.sites
    if SITES["jobs"] == "per_layer":
        return [(p, int(wildcards.layer)) for p in range(DATA.n_positions)]
    return [(int(wildcards.pos), int(wildcards.layer))]

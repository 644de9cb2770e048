import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Jobs import the package from this checkout's src/, the same files the rules list as input,
# whether or not it is installed and whatever env (conda or not) runs the job.
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p
)

from codi_sae.errors import InputError
from codi_sae.workflow import DEMO_JSON, DEMO_TRUTH, check_config, data_shape

try:
    DATA = data_shape(config)
    check_config(config, DATA)
except InputError as e:
    raise WorkflowError(f"Configuration error: {e}") from None

SWEEP_DIR = f"results/sweep/pos{config['sweep']['position']}_layer{config['sweep']['layer']}"
SPLITS = {
    "train": "results/data/train_activations.pt",
    "val": "results/data/val_activations.pt",
}
LOGS = "results/logs"
GPU = config["resources"]["gpu"]


def pkg(*modules):
    """Package sources a rule runs: editing one reruns the rules that list it."""
    return [str(SRC / "codi_sae" / f"{m}.py") for m in ("errors", "atomic", "jobs") + modules]


TRAIN_MODULES = ("train", "sae", "metrics", "data", "checkpoint")

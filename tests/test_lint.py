import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# conda package -> the module a job imports
CONDA_MODULES = {"pytorch": "torch", "pyyaml": "yaml", "matplotlib-base": "matplotlib", "seaborn-base": "seaborn",
                 "scikit-learn": "sklearn"}


def test_snakemake_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "good condition" in proc.stdout + proc.stderr


def test_snakefmt_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(
        config=json.loads(sys.argv[1])), snakefile=Path("Snakefile"), workdir=Path("."))
    rules = {
        rule.name: {
            "script": str(Path(rule.snakefile).parent / rule.script),
            "code": sorted(rule.input.get("code", [])),
            "env": str(Path(rule.snakefile).parent / rule.conda_env),
        }
        for rule in workflow._workflow.rules if rule.script
    }
print(json.dumps(rules))
"""
# Runs a script's top-level imports as a job would (the checkout's src/ first on the path) and
# prints the package modules then loaded, with the third-party modules they import.
IMPORTS = """
import ast, json, sys
script = sys.argv[1]
sys.path.insert(0, sys.argv[2])
tree = ast.parse(open(script).read())
exec(compile(ast.Module([n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], []), script, "exec"))
loaded = {name: mod.__file__ for name, mod in list(sys.modules.items()) if name.startswith("codi_sae.")}
third = set()
for path in loaded.values():
    for node in ast.parse(open(path).read()).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        third |= {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"codi_sae", "__future__"}
print(json.dumps({"modules": sorted(n.split(".")[1] for n in loaded), "third_party": sorted(third)}))
"""


def rules() -> dict:
    """Every rule with a script, the extract rule included (it exists when extract: is set; here
    over a model that is only a config.json, which is all the workflow reads before its job)."""
    model = Path(tempfile.mkdtemp())
    (model / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2, "n_embd": 8, "vocab_size": 40}')
    (model / "problems.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n' * 5)
    extract = {"extract": {"checkpoint": str(model), "base_model": str(model), "problems": str(model / "problems.jsonl")},
               "sweep": {"position": 0, "layer": 1}}
    found = {}
    for config in ({}, extract):
        proc = subprocess.run([sys.executable, "-c", RULES, json.dumps(config)], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        found.update(json.loads(proc.stdout.splitlines()[-1]))
    shutil.rmtree(model)
    assert "extract" in found
    return found


@pytest.mark.parametrize("name, rule", rules().items())
def test_each_rule_lists_every_module_its_job_runs_and_its_env_has_them(name, rule):
    proc = subprocess.run([sys.executable, "-c", IMPORTS, rule["script"], str(REPO / "src")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)
    assert job["modules"], f"{name}: its script loads no package module"
    listed = {Path(f).stem for f in rule["code"]}
    assert set(job["modules"]) <= listed, f"rule {name}'s pkg(...) misses {set(job['modules']) - listed}"
    env = yaml.safe_load(Path(rule["env"]).read_text())["dependencies"]
    packages = {dep.split("=")[0].split(">")[0].split("<")[0].strip() for dep in env}
    provided = {CONDA_MODULES.get(p, p) for p in packages}
    assert set(job["third_party"]) <= provided, f"rule {name}'s env {rule['env']} lacks {set(job['third_party']) - provided}"


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml") if p.name != "config.schema.yaml"))
def test_shipped_config_files_pass_the_schema(name):
    """Each config file the README points to, over the defaults as ``--configfile`` lays it."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / name).read_text()))
    validate(config, str(REPO / "config/config.schema.yaml"))

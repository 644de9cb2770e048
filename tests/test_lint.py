import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_snakemake_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "good condition" in proc.stdout + proc.stderr


def test_snakefmt_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rule_inputs_cover_every_module_a_job_imports():
    from codi_sae.workflow import module_files

    names = lambda *m: {Path(f).stem for f in module_files(REPO / "src" / "codi_sae", *m)}  # noqa: E731
    assert names("train") == {"train", "backprop", "checkpoint", "atomic", "data", "errors", "metrics", "optim",
                             "parallel", "sae"}
    assert names("convert") == {"convert", "atomic", "errors", "parallel", "rawjson", "split"}
    assert "parallel" in names("synthetic") and "torch" not in names("plots")

"""What every job shares (codi_sae.jobs.run_job): messages, tracebacks, SIGTERM, stale temporaries."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# A job as Snakemake runs it: a script given a `snakemake` object with output and log.
JOB = """
import sys, time
from types import SimpleNamespace
sys.path.insert(0, {src!r})
from codi_sae.atomic import atomic_path
from codi_sae.errors import InputError
from codi_sae.jobs import run_job

snakemake = SimpleNamespace(output=[{out!r}], log=[{log!r}])

def main():
    {body}

run_job(snakemake, main)
"""


def job(tmp_path: Path, body: str, background: bool = False):
    out, log = tmp_path / "out.pt", tmp_path / "job.log"
    script = JOB.format(src=str(SRC), out=str(out), log=str(log), body=textwrap.indent(body, "    ").strip())
    cmd = [sys.executable, "-c", script]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out, log
    return subprocess.run(cmd, capture_output=True, text=True), out, log


def temporaries(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob(".out.pt.tmp*"))


def test_bad_input_ends_with_its_message(tmp_path):
    proc, _, log = job(tmp_path, 'raise InputError("raw.json: sample #3 (id 7): layer_2 is wrong")')
    assert proc.returncode == 1
    assert "raw.json: sample #3 (id 7): layer_2 is wrong" in proc.stderr
    assert "raw.json: sample #3 (id 7): layer_2 is wrong" in log.read_text() and "Traceback" not in proc.stderr


def test_an_unexpected_error_puts_its_traceback_in_the_log_and_one_line_on_the_terminal(tmp_path):
    proc, _, log = job(tmp_path, 'def deep():\n    raise RuntimeError("CUDA out of memory")\ndeep()')
    assert proc.returncode == 1
    assert f"RuntimeError: CUDA out of memory (traceback in {log})" in proc.stderr
    assert "Traceback" not in proc.stderr
    text = log.read_text()
    assert "RuntimeError: CUDA out of memory" in text and "Traceback (most recent call last)" in text
    assert "in deep" in text


def test_temporaries_of_a_killed_run_are_removed_when_the_job_runs_again(tmp_path):
    killed = job(tmp_path, 'with atomic_path(snakemake.output[0]) as tmp:\n'
                           '    tmp.write_bytes(b"x" * 1000)\n'
                           '    import os, signal; os.kill(os.getpid(), signal.SIGKILL)')[0]
    assert killed.returncode == -signal.SIGKILL
    assert len(temporaries(tmp_path)) == 1  # what SIGKILL leaves: no process can clean up after it
    proc, out, log = job(tmp_path, 'with atomic_path(snakemake.output[0]) as tmp:\n    tmp.write_text("done")')
    assert proc.returncode == 0 and out.read_text() == "done"
    assert temporaries(tmp_path) == [] and "left by a killed run" in log.read_text()


def test_sigterm_ends_the_job_at_once_and_leaves_no_temporary(tmp_path):
    proc, out, log = job(tmp_path, 'with atomic_path(snakemake.output[0]) as tmp:\n'
                                   '    tmp.write_bytes(b"x" * 1000)\n'
                                   '    print("writing", flush=True)\n'
                                   '    time.sleep(60)', background=True)
    assert proc.stdout.readline().strip() == "writing"
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1 and time.monotonic() - start < 10
    assert "stopped by SIGTERM" in stderr and "stopped by SIGTERM" in log.read_text()
    assert temporaries(tmp_path) == [] and not out.exists()


def test_a_job_that_succeeds_exits_0_and_logs_where_it_ran(tmp_path):
    proc, out, log = job(tmp_path, 'with atomic_path(snakemake.output[0]) as tmp:\n    tmp.write_text("done")')
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "done" and "Slurm job none" in log.read_text()

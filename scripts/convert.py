"""Snakemake adapter: check the raw JSON; write the train/val splits and the problems table."""

from codi_sae.convert import convert_raw_json
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: convert_raw_json(
        sm.input.raw,
        sm.output.train,
        sm.output.val,
        sm.output.info,
        problems_out=sm.output.problems,
        workers=sm.threads,
        expect=sm.params.expect,
        **sm.params.split,
    ),
)

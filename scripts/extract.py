"""Snakemake adapter: run the CODI checkpoint over the problems and write the raw JSON."""

from codi_sae.extract import write_extraction
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)
ex = sm.config["extract"]
run_job(
    sm,
    lambda: write_extraction(
        sm.output.raw,
        **sm.params.extract,
        # not rerun triggers: they change the thoughts only by float rounding
        batch_size=ex["batch_size"],
        device=ex["device"],
        threads=sm.threads,
    ),
)

"""Snakemake adapter: the mean-only model and PCA-K at every site, the SAEs' baselines."""

from codi_sae.baselines import write_baselines
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: write_baselines(
        sm.input.train,
        sm.input.val,
        [tuple(s) for s in sm.params.sites],
        sm.params.ks,
        sm.output[0],
        workers=sm.threads,
    ),
)

"""Snakemake adapter: every problem's sparse code at every site."""

from codi_sae.codes import write_site_codes
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: write_site_codes(
        sm.input.train,
        sm.input.val,
        [tuple(site) for site in sm.params.sites],
        sm.input.checkpoints,
        sm.output,
    ),
)

"""Snakemake adapter: error prediction at every site from the codes, the raw activations and PCA-K."""

from codi_sae.jobs import run_job
from codi_sae.probe import ProbeSettings, write_probes

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: write_probes(
        sm.input.train,
        sm.input.val,
        [tuple(site) for site in sm.params.sites],
        sm.input.codes,
        ProbeSettings(**sm.params.settings),
        sm.output[0],
        workers=sm.threads,
    ),
)

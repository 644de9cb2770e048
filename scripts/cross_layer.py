"""Snakemake adapter: how much of each dictionary reappears at the next layer and position (and, on
the synthetic demo, how much of its planted dictionary each SAE found)."""

from codi_sae.crosslayer import write_cross_layer
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(
    sm,
    lambda: write_cross_layer(
        [tuple(site) for site in sm.params.sites], sm.input.checkpoints, sm.output[0], sm.input.truth or None
    ),
)

"""Snakemake adapter: the report page of error prediction, its top latents beside the catalogue."""

from codi_sae.jobs import run_job
from codi_sae.tables import write_probe_page

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(sm, lambda: write_probe_page(sm.input.probe[0], sm.input.catalogue, sm.input.dataset, sm.output[0]))

"""Snakemake adapter: gather every site's metrics, beside the baselines, into metrics_all.json."""

from codi_sae.collect import collect_site_metrics
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)
run_job(sm, lambda: collect_site_metrics(sm.input.json, sm.input.dataset, sm.input.baselines[0], sm.output[0]))

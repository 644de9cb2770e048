"""Snakemake adapter: train the sweep's entries of this job (d, K, recipe, epochs) at the sweep site."""

from codi_sae.jobs import run_job
from codi_sae.saeconfig import Recipe
from codi_sae.train import GridJob, TrainSettings, train_grid

sm = snakemake  # noqa: F821 (set by Snakemake)
site = tuple(sm.params.site)
jobs = [
    GridJob([site], [out], sae["d"], sae["k"], TrainSettings(**sae["train"]), Recipe.from_dict(sae["recipe"]))
    for sae, out in zip(sm.params.saes, zip(sm.output.pt, sm.output.json))
]
run_job(sm, lambda: train_grid(sm.input.train, sm.input.val, jobs, sites_per_batch=1, threads=sm.threads))

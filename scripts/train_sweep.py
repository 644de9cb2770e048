"""Snakemake adapter: train this job's sweep entries (d, K, recipe, epochs) at every sweep site."""

from codi_sae.jobs import run_job
from codi_sae.saeconfig import Recipe
from codi_sae.train import GridJob, TrainSettings, train_grid

sm = snakemake  # noqa: F821 (set by Snakemake)
sites = [tuple(site) for site in sm.params.sites]
outputs = list(zip(sm.output.pt, sm.output.json))  # entry-major, then site
jobs = [
    GridJob(sites, outputs[i * len(sites) : (i + 1) * len(sites)], sae["d"], sae["k"],
            TrainSettings(**sae["train"]), Recipe.from_dict(sae["recipe"]))
    for i, sae in enumerate(sm.params.saes)
]
# sites_per_batch is not a rerun trigger: results do not depend on it
run_job(sm, lambda: train_grid(sm.input.train, sm.input.val, jobs, threads=sm.threads,
                               sites_per_batch=sm.config["sites"]["sites_per_batch"]))

"""Snakemake adapter: train the sweet spot at the (position, layer) sites of this job, batched."""

import re

from codi_sae.jobs import run_job
from codi_sae.saeconfig import Recipe
from codi_sae.train import TrainSettings, train_saes

sm = snakemake  # noqa: F821 (set by Snakemake)
sae = sm.params.sae
# the sites come from the outputs' names, not from params: how the sites are split into jobs
# (sites.jobs) cannot change a result, so it must not rerun one
sites = [tuple(map(int, re.search(r"pos(\d+)_layer(\d+)\.pt$", path).groups())) for path in sm.output.pt]
run_job(
    sm,
    lambda: train_saes(
        sm.input.train,
        sm.input.val,
        sites,
        list(zip(sm.output.pt, sm.output.json)),
        latent_dim=sae["d"],
        k=sae["k"],
        recipe=Recipe.from_dict(sae["recipe"]),
        settings=TrainSettings(**sm.params.train),
        # not a rerun trigger: results do not depend on it
        sites_per_batch=sm.config["sites"]["sites_per_batch"],
        threads=sm.threads,
    ),
)

"""Snakemake adapter: train the sweet spot at every (position, layer) site, batched."""

from codi_sae.jobs import run_job
from codi_sae.saeconfig import Recipe
from codi_sae.train import TrainSettings, train_saes

sm = snakemake  # noqa: F821 (set by Snakemake)
sae = sm.params.sae
run_job(
    sm,
    lambda: train_saes(
        sm.input.train,
        sm.input.val,
        [tuple(site) for site in sm.params.sites],
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

"""Snakemake adapter: train one entry (d, K, recipe) of the sweep at its site."""

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
        [tuple(sm.params.site)],
        [(sm.output.pt, sm.output.json)],
        latent_dim=sae["d"],
        k=sae["k"],
        recipe=Recipe.from_dict(sae["recipe"]),
        settings=TrainSettings(**sm.params.train),
        sites_per_batch=1,
        threads=sm.threads,
    ),
)

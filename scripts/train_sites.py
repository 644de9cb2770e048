"""Snakemake adapter: train the sweet spot at every (position, layer) site, batched."""

from codi_sae.jobs import run_job
from codi_sae.selection import chosen_config
from codi_sae.train import TrainSettings, train_saes

sm = snakemake  # noqa: F821 (set by Snakemake)


def main():
    choice = chosen_config(sm.params.fixed, sm.input.choice[0] if sm.input.choice else None)
    train_saes(
        sm.input.train,
        sm.input.val,
        [tuple(site) for site in sm.params.sites],
        list(zip(sm.output.pt, sm.output.json)),
        latent_dim=choice["d"],
        k=choice["k"],
        settings=TrainSettings(**sm.params.train),
        sites_per_batch=sm.config["sites"]["sites_per_batch"],  # no rerun trigger: results do not depend on it
        threads=sm.threads,
    )


run_job(sm, main)

"""Snakemake adapter: train the sweet spot at every (position, layer) site, batched."""

from codi_sae.jobs import run_job
from codi_sae.sites import sweet_spot_config
from codi_sae.train import TrainSettings, train_sites

sm = snakemake  # noqa: F821 (set by Snakemake)


def main():
    choice = sweet_spot_config(sm.params.fixed, sm.input.choice[0] if sm.input.choice else None)
    train_sites(
        sm.input.train,
        sm.input.val,
        [tuple(site) for site in sm.params.sites],
        list(zip(sm.output.pt, sm.output.json)),
        latent_dim=choice["d"],
        k=choice["k"],
        settings=TrainSettings(**sm.params.train),
        sites_per_batch=sm.params.sites_per_batch,
        threads=sm.threads,
    )


run_job(sm, main)

"""Snakemake adapter: train one (d, K) config of the sweep at its site."""

from codi_sae.jobs import run_job
from codi_sae.train import TrainSettings, train_saes

sm = snakemake  # noqa: F821 (set by Snakemake)
w = sm.wildcards
run_job(
    sm,
    lambda: train_saes(
        sm.input.train,
        sm.input.val,
        [(int(w.pos), int(w.layer))],
        [(sm.output.pt, sm.output.json)],
        latent_dim=int(w.d),
        k=int(w.k),
        settings=TrainSettings(**sm.params.train),
        sites_per_batch=1,
        threads=sm.threads,
    ),
)

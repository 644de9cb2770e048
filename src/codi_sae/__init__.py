"""TopK sparse autoencoders on continuous-thought activations, as a Snakemake workflow."""

__version__ = "0.1.0"

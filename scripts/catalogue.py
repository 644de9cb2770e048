"""Snakemake adapter: the feature catalogue of every site, and its browsable page."""

from codi_sae.atomic import read_json
from codi_sae.catalogue import catalogue_page, write_catalogues
from codi_sae.jobs import run_job

sm = snakemake  # noqa: F821 (set by Snakemake)


def main():
    write_catalogues(sm.input.codes, sm.input.problems, sm.output.json, top=sm.params.top)
    catalogue_page(sm.output.json, read_json(sm.input.dataset), sm.output.page)


run_job(sm, main)

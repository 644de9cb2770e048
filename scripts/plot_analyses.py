"""Snakemake adapter: heatmaps of error prediction, the cross-layer figure, the position figure, and
on the synthetic demo the planted features found."""

from pathlib import Path

from codi_sae.jobs import run_job
from codi_sae.plots import plot_cross_layer, plot_planted, plot_positions, plot_probe_heatmaps

sm = snakemake  # noqa: F821 (set by Snakemake)


def main():
    plot_probe_heatmaps(sm.input.probe[0], sm.input.dataset, Path(sm.output.png[0]).parent)
    plot_cross_layer(sm.input.cross_layer[0], sm.input.dataset, *(p for p in sm.output.png + sm.output.svg
                                                             if Path(p).stem == "cross_layer"))
    plot_positions(sm.input.positions[0], sm.input.dataset, *(p for p in sm.output.png + sm.output.svg
                                                         if Path(p).stem == "positions"))
    if any(Path(p).stem == "planted" for p in sm.output.png):
        plot_planted(sm.input.cross_layer[0], sm.input.dataset, Path(sm.output.png[0]).parent)


run_job(sm, main)

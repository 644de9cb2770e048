"""TopK sparse autoencoders on continuous-thought (CODI) activations.

raw JSON -> train/val PT splits -> (d, K) sweep at one site -> sweet spot -> every site -> plots.
"""

from snakemake.utils import min_version

min_version("9.14")


configfile: "config/config.yaml"


report: "report/workflow.rst"


# Cheap jobs run where snakemake runs, never in a cluster queue.
localrules:
    all,
    analyze_sweep,
    collect_site_metrics,
    plot_sites,
    plot_sweep,
    report_tables,
    positions,
    probe_page,
    plot_analyses,


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/data.smk"
include: "rules/sweep.smk"
include: "rules/sites.smk"
include: "rules/plots.smk"
include: "rules/analysis.smk"


rule all:
    default_target: True
    input:
        rules.analyze_sweep.output,
        rules.collect_site_metrics.output,
        rules.plot_sites.output,
        rules.plot_sweep.output,
        rules.report_tables.output,
        rules.codes.output,
        rules.catalogue.output,
        rules.probe_page.output,
        rules.plot_analyses.output,


# After a run that executed jobs: the results' warnings (SAEs that learned little beyond the
# mean), how many SAEs PCA-K reconstructs better, and the sites the probe could not run at.
onsuccess:
    for note in run_notes(
        rules.analyze_sweep.output.summary,
        rules.collect_site_metrics.output[0],
        rules.cross_layer.output[0],
        rules.probe.output[0],
    ):
        logger.warning(note)

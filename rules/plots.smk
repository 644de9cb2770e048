HEATMAPS = [metric.key for metric in SITE_METRICS]  # the files plots.py draws


rule plot_sites:
    input:
        # waits on the sweet spot; an unchanged one reruns nothing here (common.smk)
        metrics=after_sweet_spot(rules.collect_site_metrics.output),
        code=pkg("plots"),
    output:
        png=[
            report(p, category="Per-site heatmaps", caption="../report/heatmap.rst")
            for p in expand("results/plots/{metric}.png", metric=HEATMAPS)
        ],
        svg=expand("results/plots/{metric}.svg", metric=HEATMAPS),
    log:
        f"{LOGS}/plot_sites.log",
    benchmark:
        f"{BENCH}/plot_sites.tsv"
    conda:
        "../envs/plots.yaml"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        synthetic=DATA.synthetic,
    script:
        "../scripts/plot_sites.py"


rule plot_sweep:
    input:
        summary=rules.analyze_sweep.output.summary,
        dataset=rules.convert.output.info,
        code=pkg("plots"),
    output:
        png=report(
            "results/plots/sweep.png", category="Sweep", caption="../report/sweep.rst"
        ),
        svg="results/plots/sweep.svg",
    log:
        f"{LOGS}/plot_sweep.log",
    benchmark:
        f"{BENCH}/plot_sweep.tsv"
    conda:
        "../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        synthetic=DATA.synthetic,
    script:
        "../scripts/plot_sweep.py"


rule report_tables:
    input:
        summary=rules.analyze_sweep.output.summary,
        # waits on the sweet spot; an unchanged one reruns nothing here (common.smk)
        metrics=after_sweet_spot(rules.collect_site_metrics.output),
        dataset=rules.convert.output.info,
        code=pkg("tables"),
    output:
        sweep=report(
            "results/report/sweep.html",
            category="Tables",
            caption="../report/tables.rst",
        ),
        sites=report(
            "results/report/sites.html",
            category="Tables",
            caption="../report/tables.rst",
        ),
    log:
        f"{LOGS}/report_tables.log",
    benchmark:
        f"{BENCH}/report_tables.tsv"
    conda:
        "../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        synthetic=DATA.synthetic,
    script:
        "../scripts/report_tables.py"

HEATMAPS = ["reconstruction_loss", "feature_death_rate", "explained_variance"]


rule plot_sites:
    input:
        metrics=after_sweet_spot(rules.collect_site_metrics.output),
        code=pkg("plots"),
    output:
        png=expand("results/plots/{metric}.png", metric=HEATMAPS),
        svg=expand("results/plots/{metric}.svg", metric=HEATMAPS),
    log:
        f"{LOGS}/plot_sites.log",
    benchmark:
        f"{BENCH}/plot_sites.tsv"
    conda:
        "../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_sites.py"


rule plot_sweep:
    input:
        summary=rules.analyze_sweep.output.summary,
        dataset=rules.convert.output.info,
        code=pkg("plots"),
    output:
        png="results/plots/sweep.png",
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
    script:
        "../scripts/plot_sweep.py"

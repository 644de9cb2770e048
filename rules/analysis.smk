# The seed's use cases, on whichever recipe the sites used: sparse codes, error prediction,
# the feature catalogue, cross-layer and position analyses. Every input made after the sweet spot
# comes through after_sweet_spot: an unchanged sweet spot reruns nothing here (common.smk).
CODE_FILES = [f"results/codes/{Path(s).name}.pt" for s in SITE_FILES]
PROBE_PLOTS = [metric.key for metric in PROBE_METRICS]  # the files plots.py draws


rule codes:
    input:
        **SPLITS,
        # waits on the sweet spot; an unchanged one reruns nothing here (common.smk)
        checkpoints=after_sweet_spot([f"{s}.pt" for s in SITE_FILES]),
        code=pkg("codes"),
    output:
        CODE_FILES,
    log:
        f"{LOGS}/codes.log",
    benchmark:
        f"{BENCH}/codes.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        **after_sites_asks(
            "codes",
            lambda entry: estimate.splits_mb(SHAPE)
            + estimate.codes_mb(SHAPE, entry["k"]),
        ),
    params:
        sites=DATA.sites,
    script:
        "../scripts/codes.py"


rule probe:
    input:
        **SPLITS,
        codes=after_sweet_spot(CODE_FILES),
        code=pkg("probe"),
    output:
        "results/probe/metrics.json",
    log:
        f"{LOGS}/probe.log",
    benchmark:
        f"{BENCH}/probe.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 2
    resources:
        **after_sites_asks(
            "probe",
            lambda entry: estimate.splits_mb(SHAPE, processes=2)
            + estimate.codes_mb(SHAPE, entry["k"]),
        ),
    params:
        settings=config["probe"],
        sites=DATA.sites,
    script:
        "../scripts/probe.py"


rule catalogue:
    input:
        codes=after_sweet_spot(CODE_FILES),
        problems=rules.convert.output.problems,
        dataset=rules.convert.output.info,
        code=pkg("catalogue"),
    output:
        json=[f"results/catalogue/{Path(s).name}.json" for s in SITE_FILES],
        page=report(
            "results/report/catalogue.html",
            category="Feature catalogue",
            caption="../report/catalogue.rst",
        ),
    log:
        f"{LOGS}/catalogue.log",
    benchmark:
        f"{BENCH}/catalogue.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        **after_sites_asks(
            "catalogue",
            lambda entry: estimate.BASE_MB + estimate.codes_mb(SHAPE, entry["k"]),
        ),
    params:
        top=config["catalogue"]["top_problems"],
        synthetic=DATA.synthetic,
    script:
        "../scripts/catalogue.py"


rule cross_layer:
    input:
        checkpoints=after_sweet_spot([f"{s}.pt" for s in SITE_FILES]),
        # the synthetic demo's planted dictionaries, to say how much of them the SAEs found
        truth=DEMO_TRUTH if DEMO else [],
        code=pkg("crosslayer"),
    output:
        "results/analysis/cross_layer.json",
    log:
        f"{LOGS}/cross_layer.log",
    benchmark:
        f"{BENCH}/cross_layer.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        **after_sites_asks(
            "cross_layer",
            lambda entry: estimate.BASE_MB + estimate.decoders_mb(SHAPE, entry["d"]),
        ),
    params:
        sites=DATA.sites,
    script:
        "../scripts/cross_layer.py"


rule positions:
    input:
        metrics=after_sweet_spot(rules.collect_site_metrics.output),
        probe=after_sweet_spot(rules.probe.output),
        dataset=rules.convert.output.info,
        code=pkg("positions"),
    output:
        json="results/analysis/positions.json",
        page=report(
            "results/report/positions.html",
            category="Position specialisation",
            caption="../report/positions.rst",
        ),
    log:
        f"{LOGS}/positions.log",
    benchmark:
        f"{BENCH}/positions.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        synthetic=DATA.synthetic,
    script:
        "../scripts/positions.py"


rule probe_page:
    input:
        probe=after_sweet_spot(rules.probe.output),
        catalogue=after_sweet_spot(rules.catalogue.output.json),
        dataset=rules.convert.output.info,
        code=pkg("tables"),
    output:
        report(
            "results/report/probe.html",
            category="Error prediction",
            caption="../report/probe.rst",
        ),
    log:
        f"{LOGS}/probe_page.log",
    benchmark:
        f"{BENCH}/probe_page.tsv"
    conda:
        "../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        synthetic=DATA.synthetic,
    script:
        "../scripts/probe_page.py"


rule plot_analyses:
    input:
        probe=after_sweet_spot(rules.probe.output),
        cross_layer=after_sweet_spot(rules.cross_layer.output),
        positions=after_sweet_spot([rules.positions.output.json]),
        dataset=rules.convert.output.info,
        code=pkg("plots"),
    output:
        png=[
            report(p, category="Error prediction", caption="../report/probe.rst")
            for p in expand("results/plots/{metric}.png", metric=PROBE_PLOTS)
        ]
        + [
            report(
                "results/plots/cross_layer.png",
                category="Cross-layer",
                caption="../report/cross_layer.rst",
            ),
            report(
                "results/plots/positions.png",
                category="Position specialisation",
                caption="../report/positions.rst",
            ),
        ]
        + (
            [
                report(
                    "results/plots/planted.png",
                    category="Cross-layer",
                    caption="../report/planted.rst",
                )
            ]
            if DEMO
            else []
        ),
        svg=expand(
            "results/plots/{name}.svg",
            name=PROBE_PLOTS
            + ["cross_layer", "positions"]
            + (["planted"] if DEMO else []),
        ),
    log:
        f"{LOGS}/plot_analyses.log",
    benchmark:
        f"{BENCH}/plot_analyses.tsv"
    conda:
        "../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        synthetic=DATA.synthetic,
    script:
        "../scripts/plot_analyses.py"

rule demo_data:
    input:
        code=pkg("synthetic"),
    output:
        raw=DEMO_JSON,
        truth=DEMO_TRUTH,
    log:
        f"{LOGS}/demo_data.log",
    benchmark:
        f"{BENCH}/demo_data.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        demo=config["demo"],
    script:
        "../scripts/demo_data.py"


rule convert:
    input:
        raw=DATA.raw_json,
        code=pkg("convert"),
    output:
        train=SPLITS["train"],
        val=SPLITS["val"],
        info="results/data/dataset.json",
        problems="results/data/problems.json",
    log:
        f"{LOGS}/convert.log",
    benchmark:
        f"{BENCH}/convert.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        split=config["split"],
    script:
        "../scripts/convert.py"


# The baselines beside each SAE, the mean-only model and PCA with the SAE's K: for every sweep
# entry's K at the sweep site ("sweep"), and for the sites' K at every site ("sites", once the
# sweet spot is known), so that a sweep edit never reruns the sites' baselines.
rule baselines:
    input:
        **SPLITS,
        # waits on the sweet spot; only a change of its K (params) reruns the sites' baselines
        after_choice=lambda wildcards: (
            after_sweet_spot([])(wildcards) if wildcards.scope == "sites" else []
        ),
        code=pkg("baselines"),
    output:
        "results/baselines/{scope}.json",
    log:
        f"{LOGS}/baselines_{{scope}}.log",
    benchmark:
        f"{BENCH}/baselines_{{scope}}.tsv"
    wildcard_constraints:
        scope="sweep|sites",
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        sites=lambda wildcards: (
            DATA.sites
            if wildcards.scope == "sites"
            else [(config["sweep"]["position"], config["sweep"]["layer"])]
        ),
        ks=lambda wildcards: (
            [sites_entry(wildcards)["k"]]
            if wildcards.scope == "sites"
            else sorted({c["k"] for c in config["sweep"]["configs"]})
        ),
    script:
        "../scripts/baselines.py"

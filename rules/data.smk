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

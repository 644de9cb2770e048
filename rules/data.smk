rule demo_data:
    input:
        code=pkg("synthetic"),
    output:
        raw=DEMO_JSON,
        truth=DEMO_TRUTH,
    params:
        demo=config["demo"],
    log:
        f"{LOGS}/demo_data.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/sae.yaml"
    script:
        "../scripts/demo_data.py"


rule convert:
    input:
        raw=DATA.raw_json,
        code=pkg("rawjson", "split", "convert"),
    output:
        train=SPLITS["train"],
        val=SPLITS["val"],
        info="results/data/dataset.json",
    params:
        split=config["split"],
    log:
        f"{LOGS}/convert.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/sae.yaml"
    script:
        "../scripts/convert.py"

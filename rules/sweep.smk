SWEEP = config["sweep"]


rule train_sweep_config:
    input:
        **SPLITS,
        code=pkg("train"),
    output:
        pt="results/sweep/pos{pos}_layer{layer}/d{d}_k{k}.pt",
        json="results/sweep/pos{pos}_layer{layer}/d{d}_k{k}.json",
    log:
        f"{LOGS}/sweep/pos{{pos}}_layer{{layer}}_d{{d}}_k{{k}}.log",
    benchmark:
        f"{BENCH}/sweep/pos{{pos}}_layer{{layer}}_d{{d}}_k{{k}}.tsv"
    wildcard_constraints:
        pos=r"\d+",
        layer=r"\d+",
        d=r"\d+",
        k=r"\d+",
    conda:
        "../envs/sae.yaml"
    threads: config["resources"]["sweep_threads"]
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=GPU,
    params:
        train=config["train"],
    script:
        "../scripts/train_sweep_config.py"


checkpoint analyze_sweep:
    input:
        metrics=expand(
            f"{SWEEP_DIR}/d{{d}}_k{{k}}.json",
            zip,
            d=[c["d"] for c in SWEEP["configs"]],
            k=[c["k"] for c in SWEEP["configs"]],
        ),
        code=pkg("selection"),
    output:
        summary=f"{SWEEP_DIR}/analysis_summary.json",
        table=f"{SWEEP_DIR}/analysis_summary.md",
        choice=f"{SWEEP_DIR}/sweet_spot.json",
    log:
        f"{LOGS}/analyze_sweep.log",
    benchmark:
        f"{BENCH}/analyze_sweep.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        min_ev=config["selection"]["min_explained_variance"],
    script:
        "../scripts/analyze_sweep.py"

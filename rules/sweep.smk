rule train_sweep:
    input:
        **SPLITS,
        code=pkg("train"),
    output:
        pt=sweep_shard_files(".pt"),
        json=sweep_shard_files(".json"),
    log:
        f"{LOGS}/sweep/{SWEEP_SHARD_NAME}.log",
    benchmark:
        f"{BENCH}/sweep/{SWEEP_SHARD_NAME}.tsv"
    wildcard_constraints:
        name="|".join(SWEEP_ENTRIES),
    conda:
        "../envs/sae.yaml"
    threads: config["resources"]["sweep_threads"]
    resources:
        **training_asks("train_sweep", sweep_saes),
        gpu=GPU,
    params:
        sites=SWEEP_SITES,
        saes=sweep_shard,
    script:
        "../scripts/train_sweep.py"


checkpoint analyze_sweep:
    input:
        metrics=sweep_files(SWEEP_ENTRIES, ".json"),
        baselines="results/baselines/sweep.json",
        code=pkg("selection"),
    output:
        summary="results/sweep/analysis_summary.json",
        table="results/sweep/analysis_summary.md",
        choice="results/sweep/sweet_spot.json",
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
        entries=list(SWEEP_ENTRIES.values()),
        sites=SWEEP_SITES,
        selection=config["selection"],
    script:
        "../scripts/analyze_sweep.py"

SWEEP = config["sweep"]
SWEEP_SITE = [SWEEP["position"], SWEEP["layer"]]
# file stem -> the entry, with its recipe spelled out: d512_k150, d512_k150_topk, d512_k150_topk_e100
SWEEP_ENTRIES = {
    entry_name(c, SAE): {**c, "recipe": entry_recipe(c, SAE)} for c in SWEEP["configs"]
}


rule train_sweep_config:
    input:
        **SPLITS,
        code=pkg("train"),
    output:
        pt=f"{SWEEP_DIR}/{{name}}.pt",
        json=f"{SWEEP_DIR}/{{name}}.json",
    log:
        f"{LOGS}/sweep/{{name}}.log",
    benchmark:
        f"{BENCH}/sweep/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(SWEEP_ENTRIES),
    conda:
        "../envs/sae.yaml"
    threads: config["resources"]["sweep_threads"]
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=GPU,
    params:
        site=SWEEP_SITE,
        sae=lambda wildcards: sae_job(SWEEP_ENTRIES[wildcards.name], SAE),
        train=lambda wildcards: {
            **config["train"],
            **entry_train(SWEEP_ENTRIES[wildcards.name]),
        },
    script:
        "../scripts/train_sweep_config.py"


checkpoint analyze_sweep:
    input:
        metrics=[f"{SWEEP_DIR}/{name}.json" for name in SWEEP_ENTRIES],
        baselines="results/baselines/sweep.json",
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
        entries=list(SWEEP_ENTRIES.values()),
        selection=config["selection"],
    script:
        "../scripts/analyze_sweep.py"

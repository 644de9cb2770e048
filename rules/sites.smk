rule train_sites:
    input:
        **SPLITS,
        choice=sweet_spot_choice,
        code=pkg("train"),
    output:
        pt=site_shard_files(".pt"),
        json=site_shard_files(".json"),
    log:
        f"{LOGS}/sites/{SITE_SHARD_NAME}.log",
    benchmark:
        f"{BENCH}/sites/{SITE_SHARD_NAME}.tsv"
    wildcard_constraints:
        pos=r"\d+",
        layer="|".join(str(layer) for layer in DATA.layers),
    conda:
        "../envs/sae.yaml"
    threads: config["resources"]["sites_threads"]
    resources:
        **training_asks("train_sites", sites_saes),
        gpu=GPU,
    params:
        sae=lambda wildcards: sae_job(sites_entry(wildcards), SAE),
        train=sites_train,
    script:
        "../scripts/train_sites.py"


rule collect_site_metrics:
    input:
        # waits on the sweet spot; an unchanged one reruns nothing here (common.smk)
        json=after_sweet_spot([f"{s}.json" for s in SITE_FILES]),
        dataset=rules.convert.output.info,
        baselines=after_sweet_spot(["results/baselines/sites.json"]),
        code=pkg("collect"),
    output:
        "results/sweet_spot/metrics_all.json",
    log:
        f"{LOGS}/collect_site_metrics.log",
    benchmark:
        f"{BENCH}/collect_site_metrics.tsv"
    conda:
        "../envs/sae.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../scripts/collect_site_metrics.py"

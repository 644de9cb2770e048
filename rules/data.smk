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
        # writes what conversion reads, sample by sample: the same estimate bounds it
        **asks(
            "demo_data",
            lambda wildcards, threads: estimate.convert_mb(SHAPE, threads),
            lambda wildcards, threads: estimate.convert_minutes(
                DATA.raw_bytes, threads
            ),
        ),
    params:
        demo=config["demo"],
    script:
        "../scripts/demo_data.py"


if EXTRACT:

    rule extract:
        input:
            # the weights file: replacing it reruns the extraction
            checkpoint=str(checkpoint_weights(EXTRACT["checkpoint"])),
            base_model=model_files(EXTRACT["base_model"]),
            problems=EXTRACT["problems"],
            code=pkg("extract"),
        output:
            raw=EXTRACT_JSON,
        log:
            f"{LOGS}/extract.log",
        benchmark:
            f"{BENCH}/extract.tsv"
        conda:
            "../envs/extract.yaml"
        threads: config["resources"]["extract_threads"]
        resources:
            **asks(
                "extract",
                lambda wildcards, threads: estimate.extract_mb(
                    SHAPE,
                    MODEL_PARAMS,
                    EXTRACT["batch_size"],
                    EXTRACT["max_new_tokens"],
                    gpu=on_gpu(EXTRACT),
                ),
                lambda wildcards, threads: estimate.extract_minutes(
                    SHAPE,
                    MODEL_PARAMS,
                    EXTRACT["max_new_tokens"],
                    threads=threads,
                    gpu=on_gpu(EXTRACT),
                ),
            ),
            gpu=GPU,
        params:
            extract={
                k: v for k, v in EXTRACT.items() if k not in ("batch_size", "device")
            },
        script:
            "../scripts/extract.py"


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
        **asks(
            "convert",
            lambda wildcards, threads: estimate.convert_mb(SHAPE, threads),
            lambda wildcards, threads: estimate.convert_minutes(
                DATA.raw_bytes, threads
            ),
        ),
    params:
        split=config["split"],
        expect={
            "layers": list(DATA.layers),
            "n_positions": DATA.n_positions,
            "hidden_dim": DATA.hidden_dim,
        },
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
    threads: 2
    resources:
        **asks("baselines", fixed(estimate.splits_mb(SHAPE, processes=2)), fixed(30)),
    params:
        sites=lambda wildcards: (
            DATA.sites if wildcards.scope == "sites" else SWEEP_SITES
        ),
        ks=lambda wildcards: (
            [sites_entry(wildcards)["k"]]
            if wildcards.scope == "sites"
            else sorted({c["k"] for c in config["sweep"]["configs"]})
        ),
    script:
        "../scripts/baselines.py"

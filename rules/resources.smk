# What each queued job asks the scheduler for: mem_mb and runtime estimated from the data's
# shape and the job's SAEs (codi_sae.resources; README "Resources").
from codi_sae import resources as estimate
from codi_sae.extract import model_dims

SHAPE = DATA.size
MODEL_PARAMS = (
    estimate.lm_params(
        len(DATA.layers),
        DATA.hidden_dim,
        model_dims(EXTRACT["base_model"]).vocab_size,
    )
    if EXTRACT
    else 0
)


def site_batches(d, n_sites):
    """The batches of ``n_sites`` SAEs of ``d`` latents: (d, sites) of sites_per_batch at most."""
    per_batch = SITES["sites_per_batch"]
    return [(d, min(per_batch, n_sites - b)) for b in range(0, n_sites, per_batch)]


def sweep_saes(wildcards):
    """A sweep job's SAEs (each entry at each sweep site) and their batches, for its estimates."""
    entries = sweep_shard(wildcards)
    saes = [sae for sae in entries for _ in SWEEP_SITES]
    return saes, [
        b for sae in entries for b in site_batches(sae["d"], len(SWEEP_SITES))
    ]


def largest_sites_entry():
    """For the estimates of jobs after the sweet spot, before it is known: the largest d and K
    (and most epochs) of the entries the sites may train, sites.config or any sweep entry.
    """
    entries = [SITES["config"]] if SITES["config"] else SWEEP["configs"]
    epochs = [
        {**config["train"], **entry_train(e), **SITES["train"]}["epochs"]
        for e in entries
    ]
    return {
        "d": max(e["d"] for e in entries),
        "k": max(e["k"] for e in entries),
        "epochs": max(epochs),
    }


def sites_saes(wildcards):
    """A sites job's SAEs and their batches of sites_per_batch, for its resource estimates."""
    largest = largest_sites_entry()
    train = {**config["train"], **SITES["train"], "epochs": largest["epochs"]}
    sae = {"d": largest["d"], "train": train}
    n = len(site_shard(wildcards))
    return [sae] * n, site_batches(sae["d"], n)


def asks(rule, mem_mb, minutes):
    """A rule's ``mem_mb`` and ``runtime`` (minutes) resources from its estimates (functions of
    the job's wildcards and threads): ``estimate.request`` with the config's safety factor,
    override and node limits; a memory estimate above a node's stops the run with what to change.
    """

    def ask(key, estimated):
        def resource(wildcards, threads, attempt):
            value, override = estimated(wildcards, threads), RESOURCES[key].get(rule)
            if key == "mem_mb" and not override:
                try:
                    estimate.check_fits(
                        value,
                        RESOURCES["max_mem_mb"],
                        f"rule {rule} (resources.max_mem_mb)",
                    )
                except InputError as e:
                    raise WorkflowError(
                        f"{e}. Raise resources.max_mem_mb, set resources.mem_mb.{rule} to what "
                        f"the job needs{SHRINK.get(rule, '')}."
                    ) from None
            return estimate.request(
                value,
                override=override,
                safety=RESOURCES["safety_factor"],
                attempt=attempt,
                limit=RESOURCES[f"max_{key}"],
            )

        return resource

    return {"mem_mb": ask("mem_mb", mem_mb), "runtime": ask("runtime", minutes)}


SHRINK = {  # what makes a training job's memory estimate smaller
    "train_sweep": ", or use sweep.jobs: per_config, fewer sweep sites or a smaller sites.sites_per_batch",
    "train_sites": ", or use sites.jobs: per_layer or per_site, or a smaller sites.sites_per_batch",
}


def fixed(value):
    """An estimate that does not depend on the job."""
    return lambda wildcards, threads: value


def on_gpu(train):
    return GPU > 0 and train["device"] != "cpu"


def training_asks(rule, shard):
    """``asks`` for a training rule whose ``shard(wildcards)`` gives its SAEs' settings (a list of
    ``{"d", "train"}``) and their batches (a list of ``(d, sites)``)."""

    def mem(wildcards, threads):
        saes, batches = shard(wildcards)
        gpu = on_gpu(saes[0]["train"])
        return estimate.train_mb(
            SHAPE,
            batches,
            workers=min(threads, len(batches)),
            batch_size=max(s["train"]["batch_size"] for s in saes),
            gpu=gpu,
        )

    def minutes(wildcards, threads):
        saes, _ = shard(wildcards)
        return estimate.train_minutes(
            SHAPE,
            [(s["d"], s["train"]["epochs"]) for s in saes],
            threads=threads,
            gpu=on_gpu(saes[0]["train"]),
            train_fraction=config["split"]["train_fraction"],
        )

    return asks(rule, mem, minutes)


def after_sites_asks(rule, mem_mb, minutes=30):
    """``asks`` for a job after the sites: ``mem_mb(entry)`` of the largest entry they may train."""
    return asks(rule, fixed(mem_mb(largest_sites_entry())), fixed(minutes))

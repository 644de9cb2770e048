from pathlib import Path

import yaml

from codi_sae.workflow import type_text_values

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.schema.yaml").read_text())


def test_text_that_reads_as_the_type_the_schema_wants_becomes_that_value():
    # as YAML 1.1 reads lr: 1e-3, and as Snakemake's --config passes values nested in braces
    config = {
        "raw_json": "123",  # a path: text wanted, kept
        "train": {"lr": "1e-3", "epochs": " 5", "batch_size": "8.5"},  # not a whole number: kept, the schema says so
        "sweep": {"position": "null", "layer": "~", "configs": [{"d": "8", "k": "+4"}, {"d": "16", "k": "4", "recipe": "topk"}]},
        "sites": {"config": {"d": "16", "k": "4"}, "sites_per_batch": "6"},  # inside anyOf
        "probe": {"C": "fast", "folds": "nan"},
        "selection": {"min_explained_variance": "inf"},
        "extract": {"checkpoint": "c", "base_model": "b", "problems": "p", "n_problems": "50", "lora_alpha": "32.5"},  # if/then
    }
    type_text_values(config, SCHEMA)
    assert config == {
        "raw_json": "123",
        "train": {"lr": 0.001, "epochs": 5, "batch_size": "8.5"},
        "sweep": {"position": None, "layer": None, "configs": [{"d": 8, "k": 4}, {"d": 16, "k": 4, "recipe": "topk"}]},
        "sites": {"config": {"d": 16, "k": 4}, "sites_per_batch": 6},
        "probe": {"C": "fast", "folds": "nan"},
        "selection": {"min_explained_variance": "inf"},
        "extract": {"checkpoint": "c", "base_model": "b", "problems": "p", "n_problems": 50, "lora_alpha": 32.5},
    }
    nothing = {"extract": "null"}
    type_text_values(nothing, SCHEMA)
    assert nothing == {"extract": None}

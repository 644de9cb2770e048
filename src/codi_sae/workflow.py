"""Parse-time facts for the Snakefile: the input's shape and the checks the schema cannot make.

The shape comes from the demo settings, from the extract settings and the model's config, or
from the raw JSON's metadata, read from the start of the file in milliseconds, so every
per-site output is known before any job runs.
"""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from .atomic import read_json
from .errors import InputError
from .extract import model_dims
from .problems import read_problems
from .rawjson import read_header
from .resources import JSON_BYTES_PER_VALUE, MIN_JSON_BYTES_PER_VALUE, Shape
from .saeconfig import check_k, entry_name

DEMO_JSON = "results/demo/synthetic_raw.json"
DEMO_TRUTH = "results/demo/synthetic_ground_truth.pt"
EXTRACT_JSON = "results/extract/thoughts.json"


def _nested(value):
    """``value`` and every value nested in it, in dicts and lists, depth first."""
    yield value
    for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        yield from _nested(child)


def _typed(text: str, types: str | list[str]):
    """``text`` as the first of the JSON schema ``types`` it reads as (a whole number, a finite
    number, true or false, null), or ``text`` itself when it reads as none of them."""
    word = text.strip()
    for kind in [types] if isinstance(types, str) else types:
        if kind in ("integer", "number") and re.fullmatch(r"[-+]?\d+", word):
            return int(word)
        if kind == "number":
            try:
                if math.isfinite(number := float(word)):
                    return number
            except ValueError:
                pass
        if kind == "boolean" and word.lower() in ("true", "false"):
            return word.lower() == "true"
        if kind == "null" and word in ("null", "Null", "NULL", "~"):
            return None
    return text


def _with_branch_errors(errors):
    """Validation errors, each followed by its branches' errors (those of an ``anyOf`` or ``oneOf``)."""
    for error in errors:
        yield error
        yield from _with_branch_errors(error.context or ())


def type_text_values(config: dict, schema: dict) -> None:
    """Where the schema wants a number, a boolean or null and ``config`` holds text that reads as
    one, put that value there, in place: YAML 1.1 reads ``1e-3`` as text, and Snakemake's
    ``--config key={...}`` passes every value inside the braces as text."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    while True:
        fixes: dict[tuple, object] = {}
        for error in _with_branch_errors(validator.iter_errors(config)):
            if error.validator == "type" and isinstance(error.instance, str) and error.absolute_path:
                value = _typed(error.instance, error.validator_value)
                if not isinstance(value, str):
                    fixes.setdefault(tuple(error.absolute_path), value)
        if not fixes:
            return
        for path, value in fixes.items():
            parent = config
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value


def sort_keys(config) -> None:
    """Put every dict in ``config`` (nested, in lists too) in key order, in place. Snakemake compares
    params as text, so otherwise reordering a config's keys, or writing out a default (the schema
    appends defaults after the keys given), would rerun jobs whose results cannot change."""
    for value in [v for v in _nested(config) if isinstance(v, dict)]:
        items = sorted(value.items(), key=lambda item: str(item[0]))
        value.clear()
        value.update(items)


@dataclass(frozen=True)
class DataShape:
    raw_json: str
    synthetic: bool
    layers: tuple[int, ...]
    n_positions: int
    hidden_dim: int
    n_problems: int  # for resource estimates: the metadata's n_samples, else a bound from the file's size
    raw_bytes: int  # the raw JSON's size (estimated for demo data not yet written)

    @property
    def sites(self) -> list[tuple[int, int]]:
        """Every (position, layer) site, layer-major."""
        return [(p, layer) for layer in self.layers for p in range(self.n_positions)]

    @property
    def size(self) -> Shape:
        return Shape(self.n_problems, len(self.layers), self.n_positions, self.hidden_dim)


def data_shape(config: dict) -> DataShape:
    """The raw JSON the workflow reads and its shape."""
    if config["extract"]:
        return extract_shape(config)
    if not config["raw_json"]:
        demo = config["demo"]
        values = demo["n_problems"] * demo["n_layers"] * demo["n_positions"] * demo["hidden_dim"]
        return DataShape(DEMO_JSON, True, tuple(range(demo["n_layers"])), demo["n_positions"], demo["hidden_dim"],
                         demo["n_problems"], values * JSON_BYTES_PER_VALUE)
    path = Path(config["raw_json"]).expanduser()
    header = read_header(path)
    raw_bytes = path.stat().st_size
    n_problems = header.metadata.get("n_samples")
    if not (isinstance(n_problems, int) and n_problems > 0):  # checked when read; here only an upper bound
        values = len(header.layers) * header.n_positions * header.hidden_dim
        n_problems = max(1, raw_bytes // (MIN_JSON_BYTES_PER_VALUE * values))
    return DataShape(str(path), bool(header.metadata.get("synthetic", False)), header.layers,
                     header.n_positions, header.hidden_dim, n_problems, raw_bytes)


def extract_settings(config: dict) -> dict | None:
    """``extract:`` with its paths' ``~`` expanded; None when not set."""
    ex = config["extract"]
    if not ex:
        return None
    return {**ex, **{key: str(Path(ex[key]).expanduser()) for key in ("checkpoint", "base_model", "problems")}}


def extract_shape(config: dict) -> DataShape:
    """The shape of the raw JSON that the extract rule will write: layers and hidden size from the
    base model's config, positions from the latent steps, problems from the problem file."""
    ex = extract_settings(config)
    if config["raw_json"]:
        raise InputError("raw_json and extract are both set: the raw JSON comes from one of them")
    dims = model_dims(ex["base_model"])
    n_problems = len(read_problems(ex["problems"], ex["n_problems"]))
    values = n_problems * dims.n_layers * ex["latent_steps"] * dims.hidden_dim
    return DataShape(EXTRACT_JSON, dims.random, tuple(range(dims.n_layers)), ex["latent_steps"], dims.hidden_dim,
                     n_problems, values * JSON_BYTES_PER_VALUE)


def sweep_sites(sweep: dict, shape: DataShape) -> list[tuple[int, int]]:
    """The (position, layer) sites the sweep runs at (``sweep.sites``, else its position and
    layer), each checked to be in the data. A position or layer left null is the seed's site
    (position 3 of 6, layer 8 of 12) at the same depth of this data: ``seed_site``."""
    if sweep["sites"] == "all":
        return shape.sites
    seed_position, seed_layer = seed_site(shape)
    if sweep["sites"] is None:
        position = seed_position if sweep["position"] is None else sweep["position"]
        layer = seed_layer if sweep["layer"] is None else sweep["layer"]
        sites, where = [(position, layer)], ("sweep.position", "sweep.layer")
    else:
        sites, where = [tuple(site) for site in sweep["sites"]], ("sweep.sites: position", "sweep.sites: layer")
    hint = (": choose sites of this data, or leave sweep.position and sweep.layer null for the seed's site "
            f"(position 3 of 6, layer 8 of 12) at the same depth, here position {seed_position}, layer {seed_layer}")
    for position, layer in sites:
        if position >= shape.n_positions:
            raise InputError(f"{where[0]}={position} but the data has positions 0..{shape.n_positions - 1}{hint}")
        if layer not in shape.layers:
            raise InputError(f"{where[1]}={layer} but the data has layers {list(shape.layers)}{hint}")
    return sites


def seed_site(shape: DataShape) -> tuple[int, int]:
    """The seed's sweep site (position 3 of 6, layer 8 of 12) at the same depth of ``shape``:
    position T // 2 and the layer 2/3 of the way through its layers (the seed's own on its shape)."""
    return shape.n_positions // 2, shape.layers[2 * len(shape.layers) // 3]


def check_config(config: dict, shape: DataShape) -> None:
    """Sweep sites inside the data, every K <= d, no sweep entry twice."""
    sweep = config["sweep"]
    sweep_sites(sweep, shape)
    names = [entry_name(c, config["sae"]) for c in sweep["configs"]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"sweep.configs lists {', '.join(twice)} twice")
    checks = [("sweep.configs", c) for c in sweep["configs"]]
    if config["sites"].get("config"):
        checks.append(("sites.config", config["sites"]["config"]))
    for where, c in checks:
        check_k(c["d"], c["k"], f"{where}: ")


def other_data_note(dataset_json: str | Path, raw_json: str) -> str | None:
    """A warning when ``results/`` hold a conversion of another raw JSON than ``raw_json`` (the
    config's): a run replaces those results, and a report needs the run's own config."""
    try:
        made_from = read_json(dataset_json).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    if made_from in (None, raw_json):
        return None
    return (f"{dataset_json} was made from {made_from}, but this config names {raw_json}: a run replaces those "
            "results; to report on them, pass the run's own --config or --configfile")


def put_first_for_jobs(src: Path) -> None:
    """Put ``src`` first on ``PYTHONPATH``, which every job inherits, so that jobs import this
    checkout's package: Snakemake only appends a script's folder to ``sys.path``, behind any
    installed copy of the package (another clone, an older release)."""
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(src), *rest])


def module_files(package_dir: str | Path, *modules: str) -> list[str]:
    """The files of ``modules`` and of every package module they import, directly or not.

    A rule lists these as input, so that editing any module a job runs reruns that job.
    """
    package_dir = Path(package_dir)
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((package_dir / f"{name}.py").read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1:  # from .x import y / from . import x (a module, or a name of __init__)
                if node.module:
                    todo.append(node.module.split(".")[0])
                else:
                    todo += [a.name if (package_dir / f"{a.name}.py").exists() else "__init__" for a in node.names]
            elif node.module and node.module.startswith(f"{package_dir.name}."):
                todo.append(node.module.split(".")[1])
    return [str(package_dir / f"{name}.py") for name in sorted(seen)]

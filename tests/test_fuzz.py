"""Fuzzing the raw JSON reader: any mutation of a valid file either reads exactly what
``json.load`` reads, or raises our InputError; never another exception, never a hang."""

import json
import tempfile
from pathlib import Path

import numpy as np
from conftest import raw_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codi_sae.errors import InputError
from codi_sae.rawjson import PROBLEM_FIELDS, RawSamples

VALID = json.dumps(raw_dict(n=4, layers=(0, 1), T=2, H=3), indent=1).encode()
FUZZ = settings(max_examples=300, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def read_both(data: bytes, valid: bool = False) -> None:
    """Our reader's samples, checked against json.load's, or our InputError (not for a ``valid`` file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.json"
        path.write_bytes(data)
        try:
            raw = RawSamples(path)
            samples = list(raw.read(workers=1))
        except InputError as e:
            assert not valid, f"a valid file was refused: {e}"
            return
        reference = json.loads(data.decode("utf-8-sig"))
        expected = reference["samples"]
        assert [s.id for s in samples] == [e["id"] for e in expected]
        assert [s.is_correct for s in samples] == [e.get("is_correct") for e in expected]  # missing: not graded
        assert all(isinstance(s.is_correct, bool | None) for s in samples)  # 1 and 0 read as true and false
        for sample, exp in zip(samples, expected):
            layers = [exp["thoughts"][f"layer_{layer}"] for layer in raw.header.layers]
            np.testing.assert_array_equal(sample.activations, np.asarray(layers, dtype=np.float32))


@FUZZ
@given(st.data())
def test_byte_level_mutations(data):
    buf = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if kind == "flip" and buf:
            buf[at] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[at : at + data.draw(st.integers(1, 16))]
        else:
            del buf[at:]
    read_both(bytes(buf))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def nodes(value, path=()):
    """Every (path, value) in a JSON value, the root included."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from nodes(child, (*path, key))


# A sample's problem fields other than thought_tokens may hold anything, or be missing.
FREE_FIELDS = set(PROBLEM_FIELDS) - {"thought_tokens"}


@FUZZ
@given(st.data())
def test_structural_mutations(data):
    """A file whose mutations all set or delete free problem fields must be read."""
    obj = json.loads(VALID)
    paths = [p for p, _ in nodes(obj) if p]
    valid = True
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = obj
        try:
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()):
                parent[path[-1]] = data.draw(JSON_VALUES)
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced the way there
            continue
        valid &= path[0] == "samples" and len(path) == 3 and path[2] in FREE_FIELDS
    read_both(json.dumps(obj, indent=data.draw(st.sampled_from([None, 1]))).encode(), valid)

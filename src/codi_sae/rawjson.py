"""Read a CODI extractor's raw JSON one sample at a time, checking every sample.

The file is ``{"metadata": {...}, "samples": [{..., "thoughts": {"layer_0": [[H] x T], ...}}]}``
and can be gigabytes. It is memory-mapped, each sample's extent is found by matching its
braces (``bytes.find``, memchr speed), and each sample is then read and decoded on its own by
orjson (about 4x faster than the standard library on float arrays), in worker processes when
there are several: memory is bounded by a few samples, whatever the file's size.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from dataclasses import dataclass
from itertools import chain
from typing import Iterator, NoReturn

import numpy as np
import orjson

from .errors import InputError
from .parallel import map_in_order

RELEASE_BYTES = 1 << 26  # release mapped pages in steps of this size
_WS = b" \t\n\r"
_SCALAR_END = re.compile(rb"[,\]}\s]")
METADATA_KEYS = ("layers", "n_tokens", "hidden_dim")
SAMPLE_KEYS = ("id", "thoughts")  # and is_correct, null (ungraded) where missing
# What a CODI extractor writes about each problem besides its thoughts; null when missing (and
# for a NaN or infinite number, e.g. a prediction with no number in its text).
# thought_tokens (codi_sae.extract): per position, the top tokens its thought decodes to.
PROBLEM_FIELDS = ("question", "ground_truth", "ground_truth_text", "prediction", "prediction_text", "thought_tokens")


@dataclass(frozen=True)
class Header:
    """What the metadata says about the activations' shape, plus the metadata itself."""

    layers: tuple[int, ...]
    n_positions: int
    hidden_dim: int
    metadata: dict

    @property
    def n_layers(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class Sample:
    """One problem: its id, whether the model got it right (None: not graded), its activations
    [L, T, H] and its ``PROBLEM_FIELDS`` (the question, the answers; None where the file has none)."""

    id: int
    is_correct: bool | None
    activations: np.ndarray
    fields: dict


def _string_end(buf, start: int) -> int:
    """Index just past the string opening at ``start``; -1 if it is never closed."""
    i = start + 1
    while True:
        i = buf.find(b'"', i)
        if i < 0:
            return -1
        backslashes = 0
        while buf[i - 1 - backslashes] == 0x5C:
            backslashes += 1
        i += 1
        if backslashes % 2 == 0:
            return i


def _container_end(buf, start: int) -> int:
    """Index just past the object or array opening at ``start``; -1 if it is never closed.

    Counts only its own kind of bracket and skips strings, with ``bytes.find`` (memchr speed):
    in valid JSON the other kind is balanced inside, and a malformed value fails to decode.
    """
    opener = buf[start : start + 1]
    closer = b"}" if opener == b"{" else b"]"
    depth, i = 0, start
    nxt = {c: buf.find(c, i) for c in (b'"', opener, closer)}
    while True:
        found = [(pos, c) for c, pos in nxt.items() if pos >= 0]
        if not found:
            return -1
        pos, c = min(found)
        if c == b'"':
            i = _string_end(buf, pos)
            if i < 0:
                return -1
            nxt = {c: (p if p >= i else buf.find(c, i)) for c, p in nxt.items()}
            continue
        depth += 1 if c == opener else -1
        if depth == 0:
            return pos + 1
        nxt[c] = buf.find(c, pos + 1)


def _decode(text: bytes, offset: int, path: str):
    """The JSON value ``text`` (found at byte ``offset`` of ``path``)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        try:  # Python's json.dump writes NaN and Infinity, which orjson refuses
            return json.loads(text)
        except ValueError:
            raise InputError(f"{path}: invalid JSON at byte {offset + e.pos}: {e.msg}") from None


UTF8_BOM = b"\xef\xbb\xbf"


class _Reader:
    """A cursor over a memory-mapped JSON file that steps over or decodes one value at a time.

    The pages it has moved past are released from this process as it goes, so the file's
    size does not count towards the process's memory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        try:
            with open(path, "rb") as f:
                empty = os.fstat(f.fileno()).st_size == 0
                self._buf = b"" if empty else mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise InputError(f"{path}: raw JSON file not found") from None
        except OSError as e:
            raise InputError(f"{path}: cannot open raw JSON file: {e.strerror}") from None
        self._pos = len(UTF8_BOM) if self._buf[: len(UTF8_BOM)] == UTF8_BOM else 0  # a BOM is read past
        self._released = 0

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()

    def _release_passed_pages(self) -> None:
        if self._pos - self._released >= RELEASE_BYTES and hasattr(self._buf, "madvise"):
            upto = self._pos - self._pos % mmap.PAGESIZE
            self._buf.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

    def where(self) -> str:
        """The cursor's position in the file, for messages."""
        return f"byte {self._pos}"

    def peek(self) -> str:
        """The next non-whitespace character ('' at end of file), not consumed."""
        buf, pos = self._buf, self._pos
        while pos < len(buf) and buf[pos] in _WS:
            pos += 1
        self._pos = pos
        return chr(buf[pos]) if pos < len(buf) else ""

    def expect(self, chars: str, what: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            found = repr(char) if char else "end of file"
            raise InputError(f"{self.path}: invalid JSON at {self.where()}: expected {what}, found {found}")
        self._pos += 1
        return char

    def skip(self) -> tuple[int, int]:
        """Step over the next JSON value; its byte offset in the file and its length."""
        if not self.peek():
            raise InputError(f"{self.path}: invalid JSON: the file ends early")
        buf, start = self._buf, self._pos
        if buf[start] in b"{[":
            end = _container_end(buf, start)
        elif buf[start] == 0x22:
            end = _string_end(buf, start)
        else:
            m = _SCALAR_END.search(buf, start)
            end = m.start() if m else len(buf)
        if end < 0:
            raise InputError(f"{self.path}: invalid JSON at {self.where()}: a value is never closed")
        self._pos = end
        self._release_passed_pages()
        return start, end - start

    def value(self):
        """Decode the next JSON value."""
        start, length = self.skip()
        return _decode(self._buf[start : start + length], start, self.path)

    def key(self) -> str:
        if self.peek() != '"':
            self.expect('"', "an object key")
        key = self.value()
        self.expect(":", "':' after a key")
        return key


def _check_header(metadata, path: str) -> Header:
    if not isinstance(metadata, dict):
        raise InputError(f"{path}: 'metadata' must be an object")
    for key in METADATA_KEYS:
        if key not in metadata:
            raise InputError(f"{path}: metadata has no '{key}' key")
    layers, n_positions, hidden_dim = (metadata[k] for k in METADATA_KEYS)
    if not (isinstance(layers, list) and layers and all(isinstance(v, int) for v in layers)):
        raise InputError(f"{path}: metadata 'layers' must be a non-empty list of layer indices")
    if len(set(layers)) != len(layers):
        raise InputError(f"{path}: metadata 'layers' lists a layer twice: {layers}")
    for key, value in (("n_tokens", n_positions), ("hidden_dim", hidden_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{path}: metadata '{key}' must be a positive integer, not {value!r}")
    n_samples = metadata.get("n_samples", 1)
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise InputError(f"{path}: metadata 'n_samples' must be a positive integer, not {n_samples!r}")
    n_layers = metadata.get("n_layers", len(layers))
    if n_layers != len(layers):
        raise InputError(f"{path}: metadata 'n_layers' is {n_layers} but 'layers' lists {len(layers)}")
    return Header(tuple(layers), n_positions, hidden_dim, metadata)


def _open_samples(path: str | os.PathLike) -> tuple[_Reader, Header]:
    """Read up to the opening '[' of 'samples' (the metadata must come first)."""
    reader = _Reader(path)
    try:
        reader.expect("{", "'{' at the start of the file")
        metadata = None
        while True:
            key = reader.key()
            if key == "metadata":
                metadata = reader.value()
            elif key == "samples":
                if metadata is None:
                    raise InputError(
                        f"{path}: 'samples' comes before 'metadata' (or there is no 'metadata'); the "
                        "metadata (layers, n_tokens, hidden_dim) must come first"
                    )
                reader.expect("[", "'[' opening the samples list")
                return reader, _check_header(metadata, str(path))
            else:
                reader.value()
            if reader.expect(",}", "',' or '}'") == "}":
                raise InputError(f"{path}: the top-level object has no 'samples' key")
    except BaseException:
        reader.close()
        raise


def read_header(path: str | os.PathLike) -> Header:
    """The metadata, read from the start of the file without touching the samples."""
    reader, header = _open_samples(path)
    reader.close()
    return header


class RawSamples:
    """The samples of a raw JSON file, counted before they are read.

    The count is the metadata's ``n_samples`` (checked while reading) or, without it, a quick
    pass that only finds where each sample is. ``read`` then finds each sample, reads, decodes
    and checks it, by ``workers`` processes when there are several.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.header = read_header(path)
        self._count = self.header.metadata.get("n_samples")

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self._spans())
        return self._count

    def _spans(self) -> Iterator[tuple[int, int]]:
        reader, _ = _open_samples(self.path)
        try:
            if reader.peek() == "]":
                raise InputError(f"{self.path}: 'samples' is empty")
            yield from _sample_spans(reader)
        finally:
            reader.close()

    def read(self, workers: int = 1) -> Iterator[Sample]:
        """Every sample in file order, checked (at most two per worker in flight; only offsets
        and the checked arrays cross between processes)."""
        n = len(self)
        jobs = ((offset, length, index, self.header, self.path) for index, (offset, length) in enumerate(self._spans()))
        seen: dict[int, int] = {}
        for index, sample in enumerate(map_in_order(_parse_sample, jobs, workers)):
            if index == n:
                raise InputError(f"{self.path}: metadata 'n_samples' is {n} but the file has more samples")
            if sample.id in seen:
                raise InputError(
                    f"{self.path}: sample #{index} has id {sample.id}, the same as sample #{seen[sample.id]}"
                )
            seen[sample.id] = index
            yield sample
        if len(seen) != n:
            raise InputError(f"{self.path}: metadata 'n_samples' is {n} but the file has {len(seen)} samples")


def _sample_spans(reader: _Reader) -> Iterator[tuple[int, int]]:
    """The byte offset and length of each sample; then the rest of the file is checked to be
    valid JSON, so that a file cut or broken after the samples is refused too."""
    index = 0
    while True:
        try:
            yield reader.skip()
        except InputError as e:
            raise InputError(f"{e} (in sample #{index})") from None
        index += 1
        if reader.expect(",]", "',' or ']' after a sample") == "]":
            break
    while reader.expect(",}", "',' or '}' after the samples") == ",":
        key = reader.key()
        if key in ("metadata", "samples"):
            raise InputError(f"{reader.path}: '{key}' appears twice in the top-level object")
        reader.value()
    if reader.peek():
        raise InputError(f"{reader.path}: invalid JSON at {reader.where()}: data after the end of the top-level object")


def _parse_sample(job: tuple) -> Sample:
    """Read, decode and check one sample (in a worker process, when there are several)."""
    offset, length, index, header, path = job
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read(length)
    try:
        raw = _decode(text, offset, path)
    except InputError as e:
        raise InputError(f"{e} (in sample #{index})") from None
    return _check_sample(raw, index, header, path)


def _check_sample(sample, index: int, header: Header, path: str) -> Sample:
    """The sample's activations as float32 [L, T, H], or an InputError naming what is wrong."""
    if not isinstance(sample, dict):
        raise InputError(f"{path}: sample #{index} is not an object")
    where = f"{path}: sample #{index}" + (f" (id {sample['id']!r})" if "id" in sample else "")
    for key in SAMPLE_KEYS:
        if key not in sample:
            raise InputError(f"{where} has no '{key}' key")
    sid, thoughts, is_correct = sample["id"], sample["thoughts"], sample.get("is_correct")
    if not isinstance(sid, int) or isinstance(sid, bool):
        raise InputError(f"{where}: 'id' must be an integer")
    if type(is_correct) is int and is_correct in (0, 1):  # as scripts that write int(prediction == answer) do
        is_correct = bool(is_correct)
    if not isinstance(is_correct, bool | None):
        raise InputError(f"{where}: 'is_correct' must be true or false (or 1 or 0, or null: not graded), "
                         f"not {is_correct!r}")
    if not isinstance(thoughts, dict):
        raise InputError(f"{where}: 'thoughts' must be an object of layers")
    names = [f"layer_{layer}" for layer in header.layers]
    extra = sorted(set(thoughts) - set(names))
    if extra:
        raise InputError(f"{where}: 'thoughts' has {extra[0]}, which the metadata's layers do not list")
    T, H = header.n_positions, header.hidden_dim
    out = np.empty((len(names), T, H), dtype=np.float32)
    for li, name in enumerate(names):
        rows = thoughts.get(name)
        if rows is None:
            raise InputError(f"{where}: 'thoughts' has no '{name}'")
        if not isinstance(rows, list) or len(rows) != T:
            n = len(rows) if isinstance(rows, list) else "no list of"
            raise InputError(f"{where}: {name} has {n} positions, the metadata says n_tokens={T}")
        for t, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != H:
                n = len(row) if isinstance(row, list) else "no list of"
                raise InputError(
                    f"{where}: {name}, position {t} has {n} values, the metadata says hidden_dim={H}"
                )
        # numpy would take true as 1.0 and "0.5" as 0.5: only JSON numbers may pass
        if not set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
            _raise_bad_value(where, name, rows)
        try:
            with np.errstate(over="ignore"):  # a float32 overflow becomes inf, reported below
                out[li] = rows
        except OverflowError:
            _raise_bad_value(where, name, rows)
    finite = np.isfinite(out)
    if not finite.all():
        li, t, h = np.argwhere(~finite)[0]
        value = thoughts[names[li]][t][h]
        raise InputError(f"{where}: {names[li]}, position {t}, dim {h} is {value!r}, not a finite float32")
    tokens = sample.get("thought_tokens")
    if tokens is not None and not (isinstance(tokens, list) and len(tokens) == T and all(
            isinstance(row, list) and all(isinstance(w, str) for w in row) for row in tokens)):
        raise InputError(f"{where}: 'thought_tokens' must be a list of {T} lists of strings (one per position)")
    return Sample(sid, is_correct, out, {key: _finite_or_none(sample.get(key)) for key in PROBLEM_FIELDS})


NUMBER_TYPES = {float, int}  # what orjson makes of a JSON number


def _finite_or_none(value):
    """``value`` with each NaN or infinite float in it as None: Python's json.dump writes them (e.g.
    a prediction with no number in it), but JSON, and so the problems table, cannot hold them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


def _raise_bad_value(where: str, name: str, rows: list) -> NoReturn:
    """Raise an InputError naming the first value of ``rows`` that float32 cannot hold."""
    for t, row in enumerate(rows):
        for h, value in enumerate(row):
            if type(value) not in NUMBER_TYPES:
                raise InputError(f"{where}: {name}, position {t}, dim {h} is {value!r}, not a number")
            if isinstance(value, int) and abs(value) > float(np.finfo(np.float32).max):
                raise InputError(f"{where}: {name}, position {t}, dim {h} is an integer too large for float32")
    raise InputError(f"{where}: {name} has a value that is not a float32 number")


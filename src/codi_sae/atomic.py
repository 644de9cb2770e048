"""Read JSON and torch files safely; write files all-or-nothing: into a hidden folder beside the
target, then rename."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from .errors import InputError, first_line


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for ``path``; rename it to ``path`` only on success.

    The temporary file has ``path``'s own name, in a hidden folder beside it, so what records
    its name (the archive inside a ``torch.save`` file) carries the final one.
    """
    path = Path(path)
    folder = path.with_name(f"{_temporary_prefix(path)}{os.getpid()}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / path.name
    try:
        try:
            yield tmp
        except OSError as e:  # a full disk, a file-size limit: say which output could not be written
            if e.filename:
                raise
            raise OSError(e.errno, f"could not write {path}: {e.strerror or e}") from e
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        folder.rmdir()


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.tmp"


def remove_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove what ``atomic_path`` left for ``path`` in a process that was killed (SIGKILL, an
    OOM kill); returns the folders removed. Only for a path no running process is writing."""
    path = Path(path)
    stale = [f for f in path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*") if f.is_dir()]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


def read_json(path: str | os.PathLike):
    """The JSON value in ``path``."""
    with open(path) as f:
        return json.load(f)


def load_json(path: str | os.PathLike, *keys: str) -> dict:
    """Read a JSON object that must have ``keys``; bad input raises InputError naming the file."""
    try:
        obj = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read JSON: {e}") from e
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically; NaN or infinity raises (no invalid JSON)."""
    text = json.dumps(obj, indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def load_torch(path: str | os.PathLike, what: str, **kwargs):
    """``torch.load(path, weights_only=True)``: a missing, torn or foreign file, or one whose
    pickle would run code (refused unrun), is an InputError naming the file and ``what`` it
    should be."""
    import torch

    try:
        return torch.load(path, weights_only=True, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except Exception as e:  # torch's reason, without its advice to load with weights_only=False
        unsafe = re.search(r"unsupported GLOBAL (\S+)", str(e), re.IGNORECASE)
        reason = (f"it holds {unsafe[1]}, which loading could run or build: refused, nothing was run" if unsafe
                  else first_line(e))
        raise InputError(f"{path}: not a readable {what} ({type(e).__name__}: {reason})") from None


def save_torch(path: str | os.PathLike, obj) -> None:
    """``torch.save`` atomically (torch is imported here, so plot jobs start without it)."""
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:  # how torch's writer reports a short write
            raise OSError(errno.EIO, f"torch.save failed ({first_line(e)}); is the disk full?") from e

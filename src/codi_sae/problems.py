"""GSM8K-style problem files (JSONL or a JSON list of ``{"question", "answer"}``) and the numbers
in their answers and in a model's predictions, read as CODI's evaluation reads them."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from .errors import InputError

_NUMBER = re.compile(r"-?\d+\.?\d*")


@dataclass(frozen=True)
class Problem:
    id: int
    question: str
    answer: str  # the answer text (GSM8K: the worked solution, then "#### N")
    ground_truth: int | float


def read_problems(path: str | os.PathLike, n: int | None = None) -> list[Problem]:
    """The first ``n`` problems (all when None) of a JSONL file, or of a JSON file holding a list.

    Each needs a string ``question`` and an ``answer`` (text ending in ``#### N``, or a number).
    An integer ``id`` is kept; otherwise (GSM8K's files have none) the id is the problem's index
    in the file. An InputError names the file and the line or element at fault.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: problems file not found") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable problems file ({type(e).__name__})") from None
    items = _items(text, path)
    if n is not None:
        items = items[:n]
    if not items:
        raise InputError(f"{path}: holds no problems")
    problems = [_problem(item, i, where, path) for i, (where, item) in enumerate(items)]
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: problem id {next(i for i in ids if ids.count(i) > 1)!r} comes twice")
    return problems


def _items(text: str, path) -> list[tuple[str, object]]:
    """(where, value) of each problem: a JSON list's elements, else one JSON value per line."""
    if text.lstrip().startswith("["):
        try:
            return [(f"element {i}", v) for i, v in enumerate(json.loads(text))]
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: invalid JSON ({e})") from None
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}: line {number} is not JSON ({e})") from None
    return items


def _problem(item, index: int, where: str, path) -> Problem:
    if not isinstance(item, dict) or not isinstance(item.get("question"), str) or "answer" not in item:
        raise InputError(f"{path}: {where} is not an object with a string 'question' and an 'answer'")
    answer = item["answer"]
    truth = answer_number(answer)
    if truth is None:
        raise InputError(f"{path}: {where}: no number in its answer {str(answer)[-60:]!r}")
    pid = item.get("id")
    keep = isinstance(pid, int) and not isinstance(pid, bool)
    return Problem(pid if keep else index, item["question"], str(answer), truth)


def answer_number(answer) -> int | float | None:
    """GSM8K's answer: the number after the last ``####`` (commas removed), or the number itself."""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return _plain(float(answer))
    if not isinstance(answer, str):
        return None
    text = answer.split("####")[-1].replace(",", "").strip()
    try:
        return _plain(float(text))
    except ValueError:
        return None


def last_number(text: str) -> int | float | None:
    """A prediction's answer as CODI's evaluation reads it: the last number in the text."""
    numbers = _NUMBER.findall(text.replace(",", ""))
    return _plain(float(numbers[-1])) if numbers else None


def _plain(value: float) -> int | float:
    return int(value) if value.is_integer() else value

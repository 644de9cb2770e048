"""Run a function over jobs in worker processes (in order, bounded memory) or threads."""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Callable, Iterable, Iterator

_init_error: list[Exception] = []  # what the initializer raised in this worker process


def map_in_order(fn: Callable, jobs: Iterable, workers: int, initializer: Callable | None = None,
                 initargs: tuple = ()) -> Iterator:
    """``map(fn, jobs)``, spread over ``workers`` processes when there is more than one.

    Results come in the order of ``jobs``, and at most two jobs per worker are in flight, so a
    long stream of jobs never piles up in memory. ``initializer(*initargs)`` runs once in each
    process that calls ``fn`` (this one, when ``workers`` is 1); what it raises (bad input, say)
    is raised by the jobs of that process, as it would be with one worker, instead of breaking
    the pool.
    """
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield from map(fn, jobs)
        return
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_guarded_init,
                                                initargs=(initializer, initargs)) as pool:
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(pool.submit(_guarded_call, fn, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _guarded_init(initializer: Callable | None, initargs: tuple) -> None:
    """Pool initializer: run ``initializer``, keeping what it raises for ``_guarded_call``."""
    try:
        if initializer:
            initializer(*initargs)
    except Exception as e:
        _init_error.append(e)


def _guarded_call(fn: Callable, job):
    """``fn(job)`` in a worker, or the error its initializer raised."""
    if _init_error:
        raise _init_error[0]
    return fn(job)


def run_in_threads(fn: Callable, jobs: Iterable, workers: int) -> None:
    """``fn(job)`` for every job, on ``workers`` threads; the first failure cancels the jobs not
    yet started and is raised once the running ones end."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise

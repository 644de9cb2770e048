"""Run a function over jobs in worker processes (in order, bounded memory) or threads."""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Callable, Iterable, Iterator


def map_in_order(fn: Callable, jobs: Iterable, workers: int, initializer: Callable | None = None,
                 initargs: tuple = ()) -> Iterator:
    """``map(fn, jobs)``, spread over ``workers`` processes when there is more than one.

    Results come in the order of ``jobs``, and at most two jobs per worker are in flight, so a
    long stream of jobs never piles up in memory. ``initializer(*initargs)`` runs once in each
    process that calls ``fn`` (this one, when ``workers`` is 1).
    """
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield from map(fn, jobs)
        return
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=initializer, initargs=initargs) as pool:
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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

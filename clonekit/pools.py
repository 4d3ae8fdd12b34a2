"""Iteration and thread-pool helpers shared by the file capture, the restore and the repository."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[R]:
    """``pool.map`` that runs at most ``window`` calls ahead of the consumer (bounded memory)."""
    source = iter(items)
    running: deque[Future[R]] = deque(pool.submit(fn, item) for _, item in zip(range(window), source, strict=False))
    while running:
        result = running.popleft().result()
        for item in source:
            running.append(pool.submit(fn, item))
            break
        yield result


def batched(items: Iterable[T], size: int | None) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (None: one list of all), each taken as it is needed."""
    source = iter(items)
    while batch := list(itertools.islice(source, size)):
        yield batch

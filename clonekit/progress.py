"""The progress callback every long library operation takes (the CLI renders it as bars)."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    """Progress callback handed to long operations: ``progress(task, advance=n, total=t)``."""

    def __call__(self, task: str, advance: int = 0, total: int | None = None) -> None: ...


def no_progress(task: str, advance: int = 0, total: int | None = None) -> None:
    return None

"""The one retry policy. Only errors marked ``Transient`` are retried; callers must be idempotent."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from .errors import is_transient

T = TypeVar("T")
log = logging.getLogger("clonekit.retry")

# Tests shorten the waits; users rarely need to.
MAX_ATTEMPTS = int(os.environ.get("CLONEKIT_RETRY_ATTEMPTS", "8"))
MAX_WAIT_SECONDS = float(os.environ.get("CLONEKIT_RETRY_MAX_WAIT", "20"))
FIRST_WAIT_SECONDS = float(os.environ.get("CLONEKIT_RETRY_FIRST_WAIT", "0.2"))


def retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(MAX_ATTEMPTS),
        wait=wait_random_exponential(multiplier=FIRST_WAIT_SECONDS, max=MAX_WAIT_SECONDS),
        before_sleep=before_sleep_log(log, logging.DEBUG),
        reraise=True,
    )


def call_with_retry(fn: Callable[[], T]) -> T:
    """Run ``fn`` until it succeeds, raises a non-transient error, or attempts run out."""
    return retrying()(fn)

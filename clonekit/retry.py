"""The one retry policy. Only errors marked ``Transient`` are retried; callers must be idempotent.

Every retried operation has a deadline: it gives up once ``stall_timeout`` seconds have passed
since its first attempt without a success (CLONEKIT_STALL_TIMEOUT, 120 s by default; a store
may set its own in ``store_options.stall_timeout``). Each retry is logged as a warning when it
happens, and the error that ends the operation is no longer transient: an outer retry never
starts a second round of waiting.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    stop_before_delay,
    wait_fixed,
    wait_random_exponential,
)

from .config import env_number
from .errors import ClonekitError, ConfigError, Transient, is_transient

T = TypeVar("T")
log = logging.getLogger("clonekit.retry")

# Tests shorten the waits; users rarely need to.
MAX_ATTEMPTS = max(1, env_number("CLONEKIT_RETRY_ATTEMPTS", 8))
MAX_WAIT_SECONDS = env_number("CLONEKIT_RETRY_MAX_WAIT", 20.0)
FIRST_WAIT_SECONDS = env_number("CLONEKIT_RETRY_FIRST_WAIT", 0.2)
STALL_TIMEOUT_SECONDS = env_number("CLONEKIT_STALL_TIMEOUT", 120.0)
if STALL_TIMEOUT_SECONDS == 0:
    raise ConfigError("environment variable CLONEKIT_STALL_TIMEOUT: expected a number of seconds > 0, got '0'",
                      hint="unset it for the default (120)")
STALL_HINT = "the limit is CLONEKIT_STALL_TIMEOUT (or store_options.stall_timeout for the store), in seconds"


def stall_timeout(override: float | None = None) -> float:
    """The deadline of one network operation, retries included: ``override`` or CLONEKIT_STALL_TIMEOUT."""
    return STALL_TIMEOUT_SECONDS if override is None else override


KEEPALIVE_IDLE_SECONDS = 30
KEEPALIVE_PROBES = 4


def keep_alive(sock: object) -> None:
    """TCP keepalive on a connected socket: a dead peer or link is noticed within about a minute
    and a half, even while waiting on a long answer (a database building an index)."""
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    what = exc.message if isinstance(exc, ClonekitError) else f"{type(exc).__name__}: {exc}"
    sleep = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("%s; retry %d/%d in %.1f s", what, state.attempt_number, MAX_ATTEMPTS - 1, sleep)


def retrying(deadline_seconds: float | None = None) -> Retrying:
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(MAX_ATTEMPTS) | stop_before_delay(stall_timeout(deadline_seconds)),
        wait=wait_random_exponential(multiplier=FIRST_WAIT_SECONDS, max=MAX_WAIT_SECONDS),
        before_sleep=_log_retry,
        reraise=True,
    )


def call_with_retry(fn: Callable[[], T], *, deadline_seconds: float | None = None) -> T:
    """Run ``fn`` until it succeeds, raises a non-transient error, or attempts or the deadline run out.

    When retries run out, the last error is raised as its non-transient kind (a TransientStoreError
    becomes a StoreError), saying how many attempts were made and for how long.
    """
    started = time.monotonic()
    policy = retrying(deadline_seconds)
    try:
        return policy(fn)
    except ClonekitError as exc:
        if not is_transient(exc):
            raise
        attempts = policy.statistics.get("attempt_number", 1)
        final = _settled_kind(exc)
        raise final(
            f"{exc.message} (gave up after {attempts} attempt{'s' if attempts != 1 else ''} "
            f"in {time.monotonic() - started:.0f} s)",
            hint=exc.hint or f"check that the service is up and reachable; {STALL_HINT}",
        ) from exc


def _settled_kind(exc: ClonekitError) -> type[ClonekitError]:
    """The first class of ``exc``'s family that is not transient (TransientStoreError → StoreError)."""
    for cls in type(exc).__mro__:
        if isinstance(cls, type) and issubclass(cls, ClonekitError) and not issubclass(cls, Transient):
            return cls
    return ClonekitError


def poll(attempt: Callable[[], T | None], *, timeout: float, interval: float,
         between: Callable[[], None] | None = None, max_interval: float | None = None) -> T | None:
    """Call ``attempt`` until it returns something other than None, or ``timeout`` seconds pass
    (then None). ``between`` runs after each unsuccessful attempt and may raise to stop early (a
    container that died). For waiting on a thing becoming ready, not for retrying a failure:
    ``attempt`` decides what counts as not yet. With ``max_interval``, the pause grows from
    ``interval`` towards it with jitter (contenders on a shared lock do not retry in step)."""

    def wait(state: RetryCallState) -> None:
        if between is not None:
            between()

    policy: Retrying = Retrying(
        retry=retry_if_result(lambda result: result is None),
        stop=stop_after_delay(max(0.0, timeout)),
        wait=(wait_fixed(interval) if max_interval is None
              else wait_random_exponential(multiplier=interval, max=max_interval)),
        before_sleep=wait,
        retry_error_callback=lambda state: None,
    )
    return policy(attempt)

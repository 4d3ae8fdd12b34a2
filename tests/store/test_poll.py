"""retry.poll: the one waiting loop (ready checks, the store lock)."""

from __future__ import annotations

from clonekit.retry import poll


def test_poll_returns_the_first_answer_and_stops_asking() -> None:
    answers = iter([None, None, "ready", "never asked"])
    calls: list[int] = []

    def attempt() -> str | None:
        calls.append(1)
        return next(answers)

    assert poll(attempt, timeout=30, interval=0.01) == "ready"
    assert len(calls) == 3


def test_poll_with_backoff_still_answers_and_runs_between() -> None:
    answers = iter([None, None, None, 7])
    between: list[int] = []
    assert poll(lambda: next(answers), timeout=30, interval=0.01, max_interval=0.05,
                between=lambda: between.append(1)) == 7
    assert len(between) == 3


def test_poll_gives_none_when_time_runs_out_and_tries_once_at_zero() -> None:
    calls: list[int] = []

    def never() -> None:
        calls.append(1)

    assert poll(never, timeout=0, interval=0.01, max_interval=1.0) is None
    assert len(calls) == 1

"""Long dashboard actions (create, refresh, refresh code, destroy) run in a background thread each;
the page polls their progress.

At most one job per preview runs in this server: a second click on a preview already being
worked on gets the running job back, not a second run. Runs of other processes (the CLI, cron)
are kept apart by the per-preview lock the ``Project`` API takes (``clonekit.preview.preview_lock``):
a job that meets one waits for it, then fails with its message.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClonekitError
from ..progress import ProgressFn

FINISHED_KEPT = 50  # finished jobs remembered for the page (oldest forgotten first)


@dataclass
class Job:
    id: str
    preview: str
    action: str
    state: str = "running"  # running | ok | failed
    task: str = "starting"
    done: int = 0
    total: int | None = None
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "preview": self.preview, "action": self.action, "state": self.state, "task": self.task,
                "done": self.done, "total": self.total, "message": self.message,
                "seconds": round((self.finished or time.time()) - self.started, 1)}


class Jobs:
    """The jobs of one server; thread-safe."""

    def __init__(self) -> None:
        self._guard = threading.Lock()  # guards the table below, nothing else
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def start(self, preview: str, action: str, run: Callable[[ProgressFn], Any]) -> tuple[Job, bool]:
        """Run ``run(progress)`` in a thread for ``preview``; (job, True) when it started, or
        (the job already running on that preview, False)."""
        with self._guard:
            for job in self._jobs.values():
                if job.preview == preview and job.state == "running":
                    return job, False
            job = Job(id=str(next(self._ids)), preview=preview, action=action)
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(target=self._run, args=(job, run), name=f"ck-dashboard-{action}-{preview}", daemon=True)
        thread.start()
        return job, True

    def get(self, job_id: str) -> Job | None:
        with self._guard:
            return self._jobs.get(job_id)

    def recent(self) -> list[Job]:
        """Running jobs and the last finished ones, newest first."""
        with self._guard:
            return sorted(self._jobs.values(), key=lambda j: int(j.id), reverse=True)

    def running_for(self, preview: str) -> Job | None:
        with self._guard:
            return next((j for j in self._jobs.values() if j.preview == preview and j.state == "running"), None)

    def _run(self, job: Job, run: Callable[[ProgressFn], Any]) -> None:
        def progress(task: str, advance: int = 0, total: int | None = None) -> None:
            with self._guard:
                if task != job.task:
                    job.task, job.done, job.total = task, 0, None
                if total is not None:
                    job.total = total
                job.done += advance

        try:
            run(progress)
            self._finish(job, "ok", "done")
        except ClonekitError as exc:
            self._finish(job, "failed", str(exc))
        finally:
            if job.state == "running":  # a bug: the page must not poll forever
                self._finish(job, "failed", "internal error (see the server's log)")

    def _finish(self, job: Job, state: str, message: str) -> None:
        with self._guard:
            job.state, job.message, job.finished = state, message, time.time()

    def _forget_old(self) -> None:
        finished = [j for j in sorted(self._jobs.values(), key=lambda j: int(j.id)) if j.state != "running"]
        for job in finished[:-FINISHED_KEPT] if len(finished) > FINISHED_KEPT else []:
            del self._jobs[job.id]

"""Rendering for the CLI: tables on a terminal, plain lines in pipes, one JSON document with --json.

Progress bars appear only when stderr is a terminal and the run is not quiet, so cron mail
stays empty on success.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .progress import ProgressFn, no_progress


@dataclasses.dataclass
class Output:
    json_mode: bool = False
    quiet: bool = False
    verbose: int = 0

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty() and not self.quiet and not self.json_mode

    # -- messages on stderr (never stdout: stdout is for results) -------------------------------

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)

    # -- results on stdout ------------------------------------------------------------------

    def document(self, data: Any) -> None:
        """The one JSON document of a --json run."""
        print(json.dumps(to_jsonable(data), indent=2, sort_keys=True))

    def result(self, data: Any, text: str | Callable[[], str]) -> None:
        """A single result: JSON document, or a line of text (printed even with -q: it is the result)."""
        if self.json_mode:
            self.document(data)
        else:
            print(text() if callable(text) else text)

    def table(self, data: Any, columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]], *, empty: str) -> None:
        """``columns`` is (key, header). JSON mode prints ``data`` instead."""
        if self.json_mode:
            self.document(data)
            return
        if not rows:
            if not self.quiet:
                print(empty, file=sys.stderr)
            return
        if sys.stdout.isatty():
            from rich.console import Console
            from rich.table import Table

            table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
            for _, header in columns:
                table.add_column(header)
            for row in rows:
                table.add_row(*(_cell(row.get(key)) for key, _ in columns))
            Console().print(table)
            return
        # Pipes get aligned plain text, easy to grep and cut.
        cells = [[header.upper() for _, header in columns]] + [[_cell(r.get(k)) for k, _ in columns] for r in rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())

    @contextmanager
    def progress(self) -> Iterator[ProgressFn]:
        """A progress callback: rich bars on a terminal, nothing otherwise."""
        if not self.interactive:
            yield no_progress
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        tasks: dict[str, Any] = {}
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), transient=True
        ) as bar:

            def update(task: str, advance: int = 0, total: int | None = None) -> None:
                if task not in tasks:
                    tasks[task] = bar.add_task(task, total=total)
                elif total is not None:
                    bar.update(tasks[task], total=total)
                if advance:
                    bar.advance(tasks[task], advance)

            yield update


# What people read of a preview and a snapshot, in the CLI's tables and on the dashboard.
PREVIEW_COLUMNS = [("name", "name"), ("status", "status"), ("url", "url"), ("snapshot", "snapshot"), ("age", "age"),
                   ("expires", "expires"), ("code", "code")]
SNAPSHOT_COLUMNS = [("id", "id"), ("source", "source"), ("created", "created"), ("size", "size"),
                    ("stored", "new bytes stored")]


def preview_row(preview: Any, now: datetime) -> dict[str, Any]:
    """One preview (``clonekit list``) as text cells."""
    return {
        "name": preview.name,
        "status": preview.status,
        "url": preview.url,
        "snapshot": preview.snapshot_id,
        "age": human_age(preview.created_at, now),
        "expires": human_age(preview.expires_at, now) if preview.expires_at else "never",
        "code": ", ".join(o.describe() for o in preview.code) or "production",
        "node": preview.node,
    }


def snapshot_row(manifest: Any, now: datetime) -> dict[str, Any]:
    """One snapshot (``clonekit snapshots``) as text cells."""
    return {
        "id": manifest.id,
        "source": manifest.source,
        "created": human_age(manifest.created_at, now),
        "size": human_bytes(manifest.stats.get("plain_bytes")),
        "stored": human_bytes(manifest.stats.get("new_bytes")),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def human_age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return human_duration(-seconds)
    return human_duration(seconds) + " ago"


def human_duration(seconds: float) -> str:
    delta = timedelta(seconds=int(seconds))
    if delta.days:
        return f"{delta.days}d{delta.seconds // 3600}h"
    hours, rest = divmod(delta.seconds, 3600)
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    minutes, secs = divmod(rest, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_public_dict", None)
        if callable(to_json):
            return to_jsonable(to_json())
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value

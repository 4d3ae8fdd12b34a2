"""Who is doing something: the process that holds a lock or is creating a preview.

A record names the process by pid, host and start time (the boot and the kernel's start tick of
the process, from /proc), so that a pid reused by another program is not taken for the owner.
On the owner's host, a dead owner is known at once; on another host, nothing is assumed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces): state is [0]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_started(pid: int) -> str | None:
    """``BOOT_ID:START_TICKS`` of a running process, or None where /proc cannot tell."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19]}"  # field 22 of stat: start time in clock ticks since boot


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started: str | None = None

    @classmethod
    def current(cls) -> Owner:
        return cls(os.getpid(), socket.gethostname(), process_started(os.getpid()))

    @classmethod
    def from_json(cls, raw: Any) -> Owner | None:
        """The owner recorded in a lock or state document; None when it names none."""
        if not isinstance(raw, dict):
            return None
        pid, host, started = raw.get("pid"), raw.get("host"), raw.get("started")
        if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
            return None
        return cls(pid, host, started if isinstance(started, str) else None)

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "started": self.started}

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def is_gone(self) -> bool:
        """True only when this host can tell for sure that the owner process no longer runs."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it exists, under another user
        fields = _stat_fields(self.pid)
        if fields is not None and fields[0] in ("Z", "X"):
            return True  # killed, not yet reaped by its parent
        if self.started is not None:
            now = process_started(self.pid)
            return now is not None and now != self.started  # the pid now belongs to another process
        return False

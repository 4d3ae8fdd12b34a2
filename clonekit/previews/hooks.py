"""Deploy hooks: ``previews.hooks.after_restore`` (every preview, once its data is loaded and its
services answer, before its URL is announced) and ``previews.hooks.after_materialize`` (once per
golden copy, in the build preview ``clonekit.golden`` starts from it; their effects are baked in).

Each hook runs ``sh -c RUN`` in its service's container with ``CLONEKIT_PREVIEW``,
``CLONEKIT_PREVIEW_URL`` and ``CLONEKIT_SNAPSHOT`` set. Its output is streamed to ``echo`` (stderr
by default) and appended to a log file (``hooks.log`` in the preview's folder for
``after_restore``). A failing hook raises ``PreviewError`` (exit 1) quoting its last lines; the
caller removes what it made.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Hook
from ..errors import PreviewError
from ..runtime.docker import DockerEngine

log = logging.getLogger("clonekit.previews.hooks")

HOOKS_LOG = "hooks.log"
TAIL_LINES = 15
EXIT_MARK = "== exit "


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def last_result(folder: Path) -> str:
    """What the last hook run of a preview ended with, from its ``hooks.log``: "ok", "failed (exit N)",
    or "" when no hook ran. Only the exit lines are read (the output may hold anything)."""
    try:
        lines = (folder / HOOKS_LOG).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    codes = [line[len(EXIT_MARK):].strip() for line in lines if line.startswith(EXIT_MARK)]
    if not codes:
        return ""
    return "ok" if codes[-1] == "0" else f"failed (exit {codes[-1]})"


def hook_env(name: str, url: str, snapshot_id: str) -> dict[str, str]:
    return {"CLONEKIT_PREVIEW": name, "CLONEKIT_PREVIEW_URL": url, "CLONEKIT_SNAPSHOT": snapshot_id}


@dataclass(frozen=True)
class HookResult:
    """One hook that ran (and succeeded: a failure raises)."""

    when: str
    service: str
    run: str
    exit_code: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {"when": self.when, "service": self.service, "run": self.run, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3)}


def run_hooks(engine: DockerEngine, when: str, hooks: Sequence[Hook], containers: Mapping[str, str],
              env: Mapping[str, str], log_file: Path, *, echo: Callable[[str], None] | None = None,
              keep_hint: str = "while the preview exists (--keep-on-failure keeps it)") -> list[HookResult]:
    """Run ``hooks`` in order; ``containers`` maps service → container id; output appended to ``log_file``."""
    echo = echo or _stderr
    results: list[HookResult] = []
    for index, hook in enumerate(hooks):
        started = time.monotonic()
        what = f"hook previews.hooks.{when}[{index}] ({hook.run!r} in service {hook.service})"
        container = containers.get(hook.service)
        if container is None:
            raise PreviewError(f"{what}: the preview has no running {hook.service!r} service",
                               hint=f"fix previews.hooks.{when}[{index}].service in clonekit.yml")
        argv = [*engine.base_argv, "exec"]
        for key, value in sorted(env.items()):
            argv += ["-e", f"{key}={value}"]
        argv += [container, "sh", "-c", hook.run]
        echo(f"running {what}")
        tail: list[str] = []
        with log_file.open("a", encoding="utf-8") as logfile:
            logfile.write(f"== {what}\n")
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, errors="replace", env=engine.env)
            except OSError as exc:
                raise PreviewError(f"cannot run the docker client for {what}: {exc.strerror}") from exc
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                echo(f"  {hook.service}| {line}")
                logfile.write(line + "\n")
                log.info("%s: %s", what, line)
                tail = (tail + [line])[-TAIL_LINES:]
            code = proc.wait()
            logfile.write(f"{EXIT_MARK}{code}\n")
        if code != 0:
            last = "\n".join(f"  | {line}" for line in tail) or "  (no output)"
            raise PreviewError(f"{what} failed with exit code {code}; its last lines:\n{last}",
                               hint=f"the whole output is in {log_file} {keep_hint}".rstrip())
        results.append(HookResult(when, hook.service, hook.run, code, time.monotonic() - started))
    return results

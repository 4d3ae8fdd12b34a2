"""Deploy hooks: ``previews.hooks.after_restore`` (every preview, once its data is loaded and its
services answer, before its URL is announced).

Each hook runs ``sh -c RUN`` in its service's container with ``CLONEKIT_PREVIEW``,
``CLONEKIT_PREVIEW_URL`` and ``CLONEKIT_SNAPSHOT`` set. Its output is streamed to ``echo`` (stderr
by default) and appended to ``hooks.log`` in the preview's folder. A failing hook raises
``PreviewError`` (exit 1) quoting its last lines; the caller removes the preview.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
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


def run_hooks(engine: DockerEngine, when: str, hooks: Sequence[Hook], containers: Mapping[str, str],
              env: Mapping[str, str], folder: Path, *, echo: Callable[[str], None] | None = None) -> None:
    """Run ``hooks`` in order; ``containers`` maps service → container id."""
    echo = echo or _stderr
    for index, hook in enumerate(hooks):
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
        with (folder / HOOKS_LOG).open("a", encoding="utf-8") as logfile:
            logfile.write(f"== {what}\n")
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, errors="replace")
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
                               hint=f"the whole output is in {folder / HOOKS_LOG} while the preview exists "
                                    "(--keep-on-failure keeps it)")

"""The Docker engine adapter: the only module of the preview side that talks to Docker.

Everything goes through the docker CLI that python-on-whales drives (so ``ssh://`` hosts work the
way ``docker -H`` does). Raw ``docker inspect`` JSON is returned as plain dicts: the transforms
that read it are pure and testable. Every python-on-whales / subprocess failure is re-raised as a
``PreviewError`` (or the error class the caller names) ``from exc``.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run as run_docker_cli

from ..errors import ClonekitError, PreviewError
from ..retry import stall_timeout

log = logging.getLogger("clonekit.runtime.docker")

STDERR_TAIL_CHARS = 2000
STREAM_WRITE_BYTES = 1024 * 1024


def stderr_tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text[-STDERR_TAIL_CHARS:]


class DockerEngine:
    """One Docker engine (the local socket, ``ssh://user@host`` or ``tcp://``)."""

    def __init__(self, host: str | None = None, *, error: type[ClonekitError] = PreviewError) -> None:
        self.host = host
        self.error = error
        self.client = DockerClient(host=host) if host else DockerClient()

    def __repr__(self) -> str:
        return f"DockerEngine({self.host or 'local'})"

    @property
    def base_argv(self) -> list[str]:
        return [str(part) for part in self.client.client_config.docker_cmd]

    # -- raw CLI ----------------------------------------------------------------------------------

    def cli(self, args: Sequence[str], *, what: str, input: bytes | None = None) -> str:
        """Run one docker CLI command; ``what`` names the operation in the error message."""
        try:
            argv = [*self.base_argv, *args]
            return str(run_docker_cli(argv, input=input) if input is not None else run_docker_cli(argv))
        except DockerException as exc:
            raise self.error(f"docker failed to {what} on {self.host or 'the local engine'}: {stderr_tail(exc.stderr)}") from exc
        except OSError as exc:
            raise self.error(f"cannot run the docker client to {what}: {exc.strerror}") from exc

    def query(self, args: Sequence[str], *, what: str) -> str:
        """A read-only docker CLI command (ps, ls, inspect), bounded by the stall timeout: an engine
        that stopped answering fails the run with a clear message instead of hanging it."""
        done = self._bounded(args, what=what)
        if done.returncode != 0:
            raise self.error(f"docker failed to {what} on {self.host or 'the local engine'}: {stderr_tail(done.stderr)}")
        return done.stdout.decode("utf-8", "replace")

    def _bounded(self, args: Sequence[str], *, what: str) -> subprocess.CompletedProcess[bytes]:
        limit = stall_timeout()
        try:
            return subprocess.run([*self.base_argv, *args], capture_output=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired as exc:
            raise self.error(f"the Docker engine {self.host or '(local)'} did not answer within {limit:g} s to {what}",
                             hint="check `docker info`; the limit is CLONEKIT_STALL_TIMEOUT, in seconds") from exc
        except OSError as exc:
            raise self.error(f"cannot run the docker client to {what}: {exc.strerror}") from exc

    def json(self, args: Sequence[str], *, what: str) -> Any:
        text = self.query(args, what=what)
        try:
            return json.loads(text) if text.strip() else []
        except ValueError as exc:
            raise self.error(f"docker returned unreadable JSON while trying to {what}") from exc

    def inspect(self, kind: str, refs: Sequence[str]) -> list[dict[str, Any]]:
        """``docker <kind> inspect`` for existing objects; missing ones are skipped."""
        out: list[dict[str, Any]] = []
        for ref in refs:
            try:
                out.extend(self.json([kind, "inspect", ref], what=f"inspect {kind} {ref}"))
            except self.error:
                if self.exists(kind, ref):
                    raise
        return out

    def exists(self, kind: str, ref: str) -> bool:
        return self._bounded([kind, "inspect", ref], what=f"inspect {kind} {ref}").returncode == 0

    def ids(self, kind: str, labels: Mapping[str, str], *, all_containers: bool = True) -> list[str]:
        """Ids (names for volumes) of objects carrying every label of ``labels``."""
        filters: list[str] = []
        for key, value in labels.items():
            filters += ["--filter", f"label={key}={value}" if value else f"label={key}"]
        if kind == "container":
            args = ["ps", "-q", "--no-trunc", *filters] + (["-a"] if all_containers else [])
        elif kind == "volume":
            args = ["volume", "ls", "-q", *filters]
        elif kind == "network":
            args = ["network", "ls", "-q", "--no-trunc", *filters]
        else:
            raise ValueError(kind)
        return [line for line in self.query(args, what=f"list {kind}s").split() if line]

    def containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        ids = self.ids("container", labels)
        if not ids:
            return []
        try:
            return self.json(["container", "inspect", *ids], what="inspect containers")  # type: ignore[no-any-return]
        except self.error:  # one was removed between the list and the inspect (a refresh, a destroy)
            return self.inspect("container", ids)

    # -- objects ----------------------------------------------------------------------------------

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        args = ["volume", "create"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        self.cli([*args, name], what=f"create volume {name}")

    def remove(self, kind: str, refs: Sequence[str]) -> None:
        if not refs:
            return
        if kind == "container":
            args = ["rm", "-f", "-v", *refs]
        elif kind == "volume":
            args = ["volume", "rm", "-f", *refs]
        elif kind == "network":
            args = ["network", "rm", *refs]
        else:
            raise ValueError(kind)
        self.cli(args, what=f"remove {kind}s")

    def fill_volume(self, volume: str, tar_chunks: Iterable[bytes], *, image: str, labels: Mapping[str, str]) -> int:
        """Stream a tar into a named volume through a throwaway container; returns bytes sent.

        Works the same on a local and a remote engine: only the docker CLI's stdin crosses.
        """
        argv = [*self.base_argv, "run", "-i", "--rm", "--network", "none", "-v", f"{volume}:/dst"]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        argv += [image, "tar", "-x", "-f", "-", "-C", "/dst"]
        return self.stream_into(argv, tar_chunks, what=f"fill volume {volume}")

    def stream_into(self, argv: Sequence[str], chunks: Iterable[bytes], *, what: str) -> int:
        """Run a docker CLI command with ``chunks`` on its stdin; returns the bytes sent."""
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            raise self.error(f"cannot run the docker client to {what}: {exc.strerror}") from exc
        assert proc.stdin is not None and proc.stderr is not None
        sent = 0
        broken = False
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                try:
                    proc.stdin.write(chunk)
                except BrokenPipeError:
                    broken = True
                    break
                sent += len(chunk)
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                broken = True
            stderr = proc.stderr.read()
            proc.stderr.close()
            code = proc.wait()
        if code != 0 or broken:
            raise self.error(f"{what} failed (exit {code}): {stderr_tail(stderr)}")
        return sent

    def exec(self, container: str, argv: Sequence[str], *, input: bytes | None = None, what: str) -> str:
        return self.cli(["exec", "-i", container, *argv], input=input, what=what)

    # -- compose ----------------------------------------------------------------------------------

    def compose(self, compose_file: Path, project: str) -> DockerClient:
        if self.host:
            return DockerClient(host=self.host, compose_files=[compose_file], compose_project_name=project)
        return DockerClient(compose_files=[compose_file], compose_project_name=project)

    def compose_cli(self, compose_file: Path, project: str, args: Sequence[str], *, what: str) -> str:
        """``docker compose -f FILE -p PROJECT ...`` (what a user would type)."""
        return self.cli(["compose", "-f", str(compose_file), "-p", project, *args], what=what)


def published_port(container: Mapping[str, Any], port: int) -> int | None:
    """The host port a container publishes for ``port``/tcp, from its inspect JSON."""
    bindings = ((container.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        host_port = binding.get("HostPort")
        if host_port:
            return int(host_port)
    return None

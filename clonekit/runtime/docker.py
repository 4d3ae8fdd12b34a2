"""The Docker engine adapter: the only module of the preview side that talks to Docker.

Everything goes through the docker CLI (its argv built by python-on-whales), so ``ssh://`` and
``tcp://`` hosts work the way ``docker -H`` does. Raw ``docker inspect`` JSON is returned as plain
dicts: the transforms that read it are pure and testable. Every subprocess failure is re-raised
as a ``PreviewError`` (or the error class the caller names) ``from exc``.

Remote engines:

- ``ssh://user@host[:port]``: the docker CLI runs ``ssh ... docker system dial-stdio`` on the
  host. clonekit puts an ``ssh`` of its own first on the CLI's PATH that adds
  ``StrictHostKeyChecking=yes`` and the known_hosts file (and key) of ``previews.docker_ssh``: the
  host key is checked against the same file paramiko uses, never accepted blindly. Data for the
  engine goes on the CLI's stdin (through that SSH connection); ports of containers are reached
  with ``reach``: a paramiko ``direct-tcpip`` tunnel (clonekit.transport.ssh) to the container's
  address on the host, so nothing is published or copied on the remote host.
- ``tcp://host:port``: TLS flags from ``previews.docker_tls`` (ca.pem, cert.pem, key.pem in
  ``cert_path``). Containers' ports cannot be reached through it: ``reach`` refuses.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import logging
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient

from ..config import DockerTls, PreviewsConfig, SshTarget
from ..errors import ClonekitError, ConfigError, PreviewError
from ..retry import stall_timeout

log = logging.getLogger("clonekit.runtime.docker")

STDERR_TAIL_CHARS = 2000
RELAY_ACCEPT_SECONDS = 0.5
RELAY_CLOSE_SECONDS = 10.0
# The small image of clonekit's throwaway containers (filling volumes, the proxy's admin relay):
# busybox, for sh, cp and nc (and ``true``, the never-run command of fill_volume's container).
HELPER_IMAGE = "clonekit/busybox:latest"
STREAM_WRITE_BYTES = 1024 * 1024
FILL_MOUNT = "/dst"  # where fill_volume's container mounts the volume
# A volume's folder made this long before the run asked for it is not the one it created
# (coarse file-system timestamps).
CTIME_SLACK_SECONDS = 2.0


def stderr_tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text[-STDERR_TAIL_CHARS:]


SSH_HOST_KEY_FAILED = "Host key verification failed"
# One SSH connection shared by the docker commands of a run (OpenSSH multiplexing): a clone runs
# dozens of them. The master ends when clonekit exits, or this long after its last use.
SSH_CONTROL_PERSIST_SECONDS = 30
_ssh_wrappers: dict[tuple[str, ...], str] = {}


def _cleanup_wrappers() -> None:
    for folder in _ssh_wrappers.values():
        script = Path(folder) / "ssh"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([str(script), "-O", "exit", "clonekit-preview-host"], capture_output=True, timeout=10,
                           check=False)
        shutil.rmtree(folder, ignore_errors=True)
    _ssh_wrappers.clear()


atexit.register(_cleanup_wrappers)


def _ssh_wrapper(target: SshTarget, known_hosts: str, key_file: str | None) -> str:
    """A folder holding an ``ssh`` for the docker CLI: the real one, with the host key checked
    against ``known_hosts`` (StrictHostKeyChecking=yes), no prompt, and one multiplexed connection;
    removed when clonekit exits."""
    real = shutil.which("ssh")
    if real is None:
        raise ConfigError(f"docker host ssh://{target} needs the OpenSSH client (ssh), which is not installed: the docker CLI runs it",
                          hint="install it (Debian: apt-get install openssh-client)")
    cache_key = (real, str(target), known_hosts, key_file or "")
    folder = _ssh_wrappers.get(cache_key)
    if folder is None or not os.path.isdir(folder):
        folder = tempfile.mkdtemp(prefix="clonekit-ssh-")
        options = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                   "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
                   "-o", "ControlMaster=auto", "-o", f"ControlPath={folder}/master",
                   "-o", f"ControlPersist={SSH_CONTROL_PERSIST_SECONDS}"]
        if key_file:
            options += ["-i", key_file, "-o", "IdentitiesOnly=yes"]
        script = Path(folder) / "ssh"
        script.write_text(f'#!/bin/sh\nexec {shlex.join([real, *options])} "$@"\n', encoding="utf-8")
        script.chmod(0o700)
        _ssh_wrappers[cache_key] = folder
    return folder


class DockerEngine:
    """One Docker engine (the local socket, ``ssh://user@host`` or ``tcp://``)."""

    node = ""  # the swarm node this engine is (runtime.swarm.SwarmNodeEngine); "" otherwise

    def __init__(self, host: str | None = None, *, error: type[ClonekitError] = PreviewError,
                 ssh: SshTarget | None = None, tls: DockerTls | None = None) -> None:
        self.host = host
        self.error = error
        self.ssh = ssh
        self.tls = tls
        options: dict[str, Any] = {"host": host} if host else {}
        if tls is not None:
            folder = Path(os.path.expanduser(tls.cert_path))
            files = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
            missing = [str(path) for path in files.values() if not path.is_file()]
            if missing:
                raise ConfigError(f"previews.docker_tls.cert_path: {', '.join(missing)} not found",
                                  hint="the folder holds ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH does")
            options |= {"tls": True, "tlsverify": tls.verify, "tlscacert": files["ca"], "tlscert": files["cert"],
                        "tlskey": files["key"]}
        self.client = DockerClient(**options)
        self._env: dict[str, str] | None = None

    @classmethod
    def for_previews(cls, previews: PreviewsConfig) -> DockerEngine:
        """The preview engine of ``previews.docker_host`` with its SSH or TLS settings."""
        return cls(previews.docker_host, ssh=previews.docker_ssh, tls=previews.docker_tls)

    def __repr__(self) -> str:
        return f"DockerEngine({self.host or 'local'})"

    @property
    def is_local(self) -> bool:
        """The engine runs on this machine: its published 127.0.0.1 ports are ours."""
        return not self.host or self.host.startswith("unix://")

    @property
    def base_argv(self) -> list[str]:
        return [str(part) for part in self.client.client_config.docker_cmd]

    @property
    def env(self) -> dict[str, str]:
        """The docker CLI's environment: ours, plus (ssh://) the host-key-checking ``ssh`` first on PATH."""
        if self._env is None:
            env = dict(os.environ)
            if self.ssh is not None:
                from ..transport.ssh import check_key_file, known_hosts_path

                folder = _ssh_wrapper(self.ssh, known_hosts_path(self.ssh), check_key_file(self.ssh))
                env["PATH"] = folder + os.pathsep + env.get("PATH", os.defpath)
            self._env = env
        return self._env

    def _failed(self, what: str, stderr: str | bytes | None) -> ClonekitError:
        tail = stderr_tail(stderr)
        hint = None
        if self.ssh is not None and SSH_HOST_KEY_FAILED in tail:
            from ..transport.ssh import known_hosts_entry, known_hosts_path

            path = known_hosts_path(self.ssh)
            hint = (f"the SSH host key of {self.ssh} is not in {path} (or changed): check its fingerprint with the "
                    f"host's administrator, then add the line `{known_hosts_entry(self.ssh.host, self.ssh.port)} <type> <key>` "
                    f"(ssh-keyscan -p {self.ssh.port} {self.ssh.host}, compared with `ssh-keygen -lf`)")
        return self.error(f"docker failed to {what} on {self.host or 'the local engine'}: {tail}", hint=hint)

    # -- raw CLI ----------------------------------------------------------------------------------

    def cli(self, args: Sequence[str], *, what: str, input: bytes | None = None) -> str:
        """Run one docker CLI command; ``what`` names the operation in the error message."""
        try:
            done = subprocess.run([*self.base_argv, *args], input=input, capture_output=True, env=self.env, check=False)
        except OSError as exc:
            raise self.error(f"cannot run the docker client to {what}: {exc.strerror}") from exc
        if done.returncode != 0:
            raise self._failed(what, done.stderr)
        out = done.stdout.decode("utf-8", "replace")
        return out[:-1] if out.endswith("\n") else out

    def query(self, args: Sequence[str], *, what: str) -> str:
        """A read-only docker CLI command (ps, ls, inspect), bounded by the stall timeout: an engine
        that stopped answering fails the run with a clear message instead of hanging it."""
        done = self._bounded(args, what=what)
        if done.returncode != 0:
            raise self._failed(what, done.stderr)
        return done.stdout.decode("utf-8", "replace")

    def _bounded(self, args: Sequence[str], *, what: str) -> subprocess.CompletedProcess[bytes]:
        limit = stall_timeout()
        try:
            return subprocess.run([*self.base_argv, *args], capture_output=True, timeout=limit, check=False,
                                  env=self.env)
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

    def network_ipam(self, network: str) -> list[dict[str, Any]]:
        """The address pools of ``network`` (``Subnet``, ``Gateway``; IPv4 and IPv6); [] when it is gone."""
        found = self.inspect("network", [network])
        return list((found[0].get("IPAM") or {}).get("Config") or []) if found else []

    @functools.cached_property
    def _info(self) -> dict[str, Any] | None:
        """``docker info``, read once per engine; None when the engine does not answer it."""
        try:
            info = self.json(["info", "--format", "{{json .}}"], what="read the engine's information")
        except self.error:
            return None
        return info if isinstance(info, dict) else None

    def storage(self) -> tuple[str, str]:
        """(storage driver, the filesystem under it) of the engine, e.g. ("overlay2", "extfs");
        empty strings when the engine does not tell."""
        info = self._info
        if info is None:
            return "", ""
        status = {str(pair[0]): str(pair[1]) for pair in info.get("DriverStatus") or [] if len(pair) == 2}
        return str(info.get("Driver") or ""), status.get("Backing Filesystem", "")

    def host_volume_folder(self, name: str, *, created_since: float) -> Path | None:
        """The folder on this machine holding volume ``name`` (created by this run at or after
        ``created_since``, epoch seconds), when writing into it directly gives what the engine's
        own containers would write: None otherwise, and the caller streams a tar through a
        container (``fill_volume``).

        All of these must hold: ``CLONEKIT_VOLUME_FILL`` is not ``stream``; the engine is local;
        this process runs as root (owners are set as the snapshot recorded them); the engine
        neither remaps user namespaces (owners would need shifting), labels files for SELinux nor
        runs rootless; the volume uses the ``local`` driver without options (an NFS or bind volume
        is mounted only while a container uses it); its folder exists here, is empty and was made
        since ``created_since`` (so it is this engine's, not a same-named volume of another engine
        on this machine, such as the folder of a native engine beside Docker Desktop's VM)."""
        if os.environ.get("CLONEKIT_VOLUME_FILL", "auto") == "stream" or not self.is_local or os.geteuid() != 0:
            return None
        options = (self._info or {}).get("SecurityOptions")
        if not isinstance(options, list) or any(word in option for option in options for word in ("userns", "selinux", "rootless")):
            return None
        found = self.inspect("volume", [name])
        if len(found) != 1 or found[0].get("Driver") != "local" or found[0].get("Options") or not found[0].get("Mountpoint"):
            return None
        folder = Path(str(found[0]["Mountpoint"]))
        try:
            made = folder.stat()
            with os.scandir(folder) as listing:
                empty = next(listing, None) is None
        except OSError:
            return None
        if not stat.S_ISDIR(made.st_mode) or not empty or made.st_ctime < created_since - CTIME_SLACK_SECONDS:
            return None
        return folder

    def exists(self, kind: str, ref: str) -> bool:
        return self._bounded([kind, "inspect", ref], what=f"inspect {kind} {ref}").returncode == 0

    def ids(self, kind: str, labels: Mapping[str, str], *, all_containers: bool = True) -> list[str]:
        """Ids (names for volumes) of objects carrying every label of ``labels``."""
        filters = label_filters(labels)
        if kind == "container":
            args = ["ps", "-q", "--no-trunc", *filters] + (["-a"] if all_containers else [])
        elif kind == "volume":
            args = ["volume", "ls", "-q", *filters]
        elif kind == "network":
            args = ["network", "ls", "-q", "--no-trunc", *filters]
        else:
            raise ValueError(kind)
        return [line for line in self.query(args, what=f"list {kind}s").split() if line]

    def container_ids_by_label(self, labels: Mapping[str, str], key: str, *, what: str = "list containers"
                               ) -> dict[str, list[str]]:
        """Ids of the containers (running or not) carrying every label of ``labels``, by their value
        of label ``key`` (e.g. each Compose service's containers)."""
        listed = self.query(["ps", "-a", "--no-trunc", *label_filters(labels), "--format", f'{{{{.ID}}}} {{{{.Label "{key}"}}}}'],
                            what=what)
        found: dict[str, list[str]] = {}
        for line in listed.splitlines():
            container_id, _, value = line.partition(" ")
            if container_id:
                found.setdefault(value.strip(), []).append(container_id)
        return found

    def published_host_ports(self) -> set[int]:
        """The host ports the engine's running containers publish (any project, any address)."""
        text = self.query(["ps", "--format", "{{.Ports}}"], what="list published ports")
        return host_ports(text)

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

    def fill_volume(self, volume: str, tar_chunks: Iterable[bytes], *, image: str, labels: Mapping[str, str],
                    root: Mapping[str, Any] | None = None) -> int:
        """Stream a tar into a named volume; returns bytes sent.

        ``docker cp -`` into a container created (never started) with the volume mounted: the
        engine unpacks the stream itself, with the owners, modes and times (to the nanosecond,
        folders' too) of its headers (``-a`` would give every file the container's user instead).
        Works the same on a local and a remote engine: only the docker CLI's stdin crosses.
        (Against ``docker run -i ... tar -x``: no process started in a container, 10-25% less
        machine CPU, and busybox tar kept times only to the second.)
        ``docker cp`` leaves the volume's own folder as it is: ``root`` (mode, uid, gid,
        mtime_ns) is given to it afterwards, as a folder entry of its own.
        """
        name = f"ck-fill-{uuid.uuid4().hex[:12]}"
        argv = ["create", "--name", name, "--network", "none", "-v", f"{volume}:{FILL_MOUNT}"]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        self.cli([*argv, image, "true"], what=f"create the container that fills volume {volume}")
        try:
            sent = self.stream_into([*self.base_argv, "cp", "-", f"{name}:{FILL_MOUNT}"], tar_chunks,
                                    what=f"fill volume {volume}")
            if root:
                self.cli(["cp", "-", f"{name}:/"], input=folders_tar({FILL_MOUNT: root}),
                         what=f"set the owner, mode and time of volume {volume}")
            return sent
        finally:
            try:
                self.remove("container", [name])
            except self.error as exc:  # the fill's own outcome matters more
                log.warning("could not remove the container %s that filled volume %s: %s", name, volume, exc)

    def stream_into(self, argv: Sequence[str], chunks: Iterable[bytes], *, what: str) -> int:
        """Run a docker CLI command with ``chunks`` on its stdin; returns the bytes sent."""
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=self.env)
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

    # -- reaching a container's port --------------------------------------------------------------

    @contextlib.contextmanager
    def reach(self, container: Mapping[str, Any], port: int) -> Iterator[tuple[str, int]]:
        """A (host, port) of this machine that reaches ``port``/tcp of ``container`` (its inspect JSON).

        Local engine: the port it publishes on 127.0.0.1. ``ssh://`` engine: a tunnel through one
        SSH connection (host key checked) to the container's address on the remote host, open until
        the block ends; nothing is published there. Any other engine (``tcp://`` with TLS): a
        127.0.0.1 port whose connections are carried by throwaway containers in ``container``'s
        network namespace, over the docker CLI's own connection (``relayed``).
        """
        name = str(container.get("Name") or container.get("Id") or "?").lstrip("/")
        if self.is_local:
            published = published_port(container, port)
            if published is None:
                raise self.error(f"container {name} publishes no port for {port}/tcp")
            yield "127.0.0.1", published
            return
        if self.ssh is None:
            with self.relayed(port, container=str(container.get("Id") or name)) as local:
                yield local
            return
        address = self.address_of(container)
        if address is None:
            raise self.error(f"container {name} has no address on a network of {self.host} (is it running?)")
        from ..transport.ssh import SshSession

        try:
            session = SshSession.connect(self.ssh)
        except ConfigError:
            raise
        except ClonekitError as exc:
            raise self.error(f"cannot open the SSH connection to the preview host {self.ssh}: {exc.message}",
                             hint=exc.hint) from exc
        try:
            with session.forward(address, port) as local:
                yield local
        finally:
            session.close()

    @contextlib.contextmanager
    def relayed(self, port: int, *, container: str | None = None, host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
        """A 127.0.0.1 port of this machine; each connection to it is carried to ``host``:``port``
        as seen from ``container``'s network namespace (None: the engine's host's own) by a
        throwaway container there (``docker run -i --network container:ID HELPER nc HOST PORT``),
        so it needs nothing but the docker CLI's connection to the engine: no port published, no SSH."""
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(RELAY_ACCEPT_SECONDS)
        stopping = threading.Event()
        relays: list[subprocess.Popen[bytes]] = []
        network = f"container:{container}" if container else "host"

        def serve() -> None:
            while not stopping.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    relays.append(self.nc_process(conn, network=network, host=host, port=port, label="clonekit.relay=1"))
                except OSError as exc:
                    log.warning("cannot run the docker client to relay a connection: %s", exc.strerror)
                finally:
                    conn.close()  # the relay holds its own copy

        thread = threading.Thread(target=serve, name="ck-relay", daemon=True)
        thread.start()
        try:
            yield "127.0.0.1", int(server.getsockname()[1])
        finally:
            stopping.set()
            server.close()
            thread.join(timeout=RELAY_ACCEPT_SECONDS * 4)
            for relay in relays:  # each ends when both sides have closed; a stuck one is stopped
                try:
                    relay.wait(timeout=RELAY_CLOSE_SECONDS)
                except subprocess.TimeoutExpired:
                    relay.kill()
                    relay.wait()

    def nc_process(self, connection: socket.socket, *, network: str, host: str, port: int, label: str,
                   image: str = HELPER_IMAGE) -> subprocess.Popen[bytes]:
        """``nc host port`` in a throwaway container on ``network`` (``host``, or ``container:ID``),
        its stdin and stdout the caller's ``connection``: a TCP connection carried by the docker
        CLI alone. The caller owns the process, which ends when both sides have closed; OSError
        when the docker client cannot run."""
        argv = [*self.base_argv, "run", "--rm", "-i", "--network", network, "--log-driver", "none",
                "--label", label, image, "nc", host, str(port)]
        return subprocess.Popen(argv, stdin=connection.fileno(), stdout=connection.fileno(), stderr=subprocess.DEVNULL,
                                env=self.env)

    def address_of(self, container: Mapping[str, Any]) -> str | None:
        """The container's address as seen from its engine's host (where ``reach`` tunnels to)."""
        return container_address(container)

    def copy_from(self, container: str, path: str) -> bytes | None:
        """``docker cp CONTAINER:PATH -``: a tar of ``path`` (works on a stopped container and on any
        image); None when the path is not there."""
        what = f"read {path} of container {container}"
        done = self._bounded(["cp", f"{container}:{path}", "-"], what=what)
        if done.returncode == 0:
            return done.stdout
        if b"Could not find the file" in done.stderr or b"No such" in done.stderr:
            return None
        raise self._failed(what, done.stderr)

    def copy_into(self, container: str, folder: str, tar_bytes: bytes) -> None:
        """``docker cp - CONTAINER:FOLDER``: unpack a tar there (into its volumes too)."""
        self.cli(["cp", "-", f"{container}:{folder}"], input=tar_bytes, what=f"write into {folder} of container {container}")

    def exec(self, container: str, argv: Sequence[str], *, input: bytes | None = None, what: str) -> str:
        return self.cli(["exec", "-i", container, *argv], input=input, what=what)

    # -- compose ----------------------------------------------------------------------------------

    def compose_cli(self, compose_file: Path, project: str, args: Sequence[str], *, what: str) -> str:
        """``docker compose -f FILE -p PROJECT ...`` (what a user would type)."""
        return self.cli(["compose", "-f", str(compose_file), "-p", project, *args], what=what)


def folders_tar(folders: Mapping[str, Mapping[str, Any]], files: Mapping[str, bytes] | None = None) -> bytes:
    """A tar, to extract at ``/``, holding one entry per folder (mode, owner and, when given, time to
    the nanosecond from its mapping, else 0755 root) and the given small files. The engine makes
    missing parent folders (0755, root) and leaves existing ones as they are: only the named
    entries are written."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder, attributes in folders.items():
            info = tarfile.TarInfo(folder.strip("/"))
            info.type, info.mode = tarfile.DIRTYPE, int(attributes.get("mode", 0o755)) & 0o7777
            info.uid, info.gid = int(attributes.get("uid", 0)), int(attributes.get("gid", 0))
            seconds, nanos = divmod(int(attributes.get("mtime_ns", 0)), 1_000_000_000)
            info.mtime = seconds
            if nanos:
                info.pax_headers = {"mtime": f"{seconds}.{nanos:09d}"}
            tar.addfile(info)
        for path, data in (files or {}).items():
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def label_filters(labels: Mapping[str, str]) -> list[str]:
    """docker's ``--filter`` arguments selecting objects that carry every label of ``labels`` (an
    empty value: the label with any value)."""
    filters: list[str] = []
    for key, value in labels.items():
        filters += ["--filter", f"label={key}={value}" if value else f"label={key}"]
    return filters


def host_ports(ps_ports: str) -> set[int]:
    """Host ports in ``docker ps --format {{.Ports}}`` text ("127.0.0.1:49153->80/tcp, 3306/tcp")."""
    ports: set[int] = set()
    for first, last in re.findall(r":(\d+)(?:-(\d+))?->", ps_ports):
        ports.update(range(int(first), int(last or first) + 1))
    return ports


def container_address(container: Mapping[str, Any]) -> str | None:
    """The container's IPv4 address on its first network (by name), from its inspect JSON."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    for name in sorted(networks):
        address = (networks[name] or {}).get("IPAddress")
        if address:
            return str(address)
    return None


def published_port(container: Mapping[str, Any], port: int) -> int | None:
    """The host port a container publishes for ``port``/tcp, from its inspect JSON."""
    bindings = ((container.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        host_port = binding.get("HostPort")
        if host_port:
            return int(host_port)
    return None

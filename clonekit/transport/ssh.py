"""One SSH connection per source: exec, streamed stdout, SFTP and TCP tunnels, host key checked.

The host key is always verified against known_hosts (``RejectPolicy`` semantics): an unknown or
changed key is refused with the key's type, its SHA256 fingerprint and the exact known_hosts line
to add once the fingerprint was checked out of band. Every paramiko/socket failure is re-raised
as a clonekit error: network trouble as ``TransientSourceError``, everything else as ``SourceError``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import os
import select
import shlex
import socket
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import BinaryIO, cast

import paramiko

from ..config import SshTarget
from ..errors import ConfigError, SourceError, TransientSourceError
from ..retry import call_with_retry, keep_alive, stall_timeout

log = logging.getLogger("clonekit.transport.ssh")

CONNECT_TIMEOUT_SECONDS = 15
KEEPALIVE_SECONDS = 30
# Bigger windows keep the pipe full on links with latency; paramiko's default is 2 MiB. A window
# caps throughput at window / round trip: 8 MiB is 160 MiB/s at 50 ms, above a gigabit link. It is
# also memory: the channel's buffer holds up to a window and a read hands over a copy of it. A
# files capture of 1.3 GiB over SSH peaked at 200-207 MiB with 16 MiB, 160-172 MiB with 8 MiB, in
# the same time (docs/benchmarks.md, issue 18).
CHANNEL_WINDOW_BYTES = 8 * 1024 * 1024
STDERR_TAIL_BYTES = 4000
FORWARD_BUFFER_BYTES = 256 * 1024
# Read the whole channel window at once: paramiko's buffer then hands over everything it holds
# instead of memmoving the rest down after each partial read (-25% CPU per byte, measured).
STREAM_BUFFER_BYTES = CHANNEL_WINDOW_BYTES
# Channel packets up to 256 KiB instead of 32 KiB: 8x fewer per-packet Python round trips.
CHANNEL_MAX_PACKET_BYTES = 256 * 1024


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """``SHA256:<base64>`` exactly as ``ssh-keygen -lf`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_path(target: SshTarget) -> str:
    return os.path.expanduser(target.known_hosts or "~/.ssh/known_hosts")


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """RejectPolicy that says what to do: show the key and the known_hosts line to add."""

    def __init__(self, target: SshTarget, path: str) -> None:
        self.target = target
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        entry = known_hosts_entry(self.target.host, self.target.port)
        raise SourceError(
            f"SSH host {self.target} is not in {self.path}: refusing an unknown host key "
            f"({key.get_name()} {fingerprint_sha256(key)})",
            hint=(
                "check this fingerprint with the server's administrator, then add this line to "
                f"{self.path}:\n    {entry} {key.get_name()} {key.get_base64()}\n"
                f"  (or: ssh-keyscan -p {self.target.port} {self.target.host} >> {self.path}, "
                "and compare the fingerprint with `ssh-keygen -lf`)"
            ),
        )


class _FastTransport(paramiko.Transport):
    """paramiko's Transport, preferring AES-GCM (one pass, no separate MAC) when the server offers it.
    Measured on loopback: about 2x the throughput of aes128-ctr + hmac-sha2-256."""

    _preferred_ciphers = (
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        *(c for c in paramiko.Transport._preferred_ciphers if "gcm" not in c),  # type: ignore[attr-defined]
    )

    def __init__(self, sock, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("default_window_size", CHANNEL_WINDOW_BYTES)
        kwargs.setdefault("default_max_packet_size", CHANNEL_MAX_PACKET_BYTES)
        super().__init__(sock, *args, **kwargs)


def check_key_file(target: SshTarget) -> str | None:
    """The target's key file, expanded; a missing or unreadable one is a configuration error."""
    key_file = os.path.expanduser(target.key_file) if target.key_file else None
    if key_file and not os.path.isfile(key_file):
        raise ConfigError(f"SSH key file {key_file} for {target} does not exist", hint="fix key_file of this source's ssh")
    if key_file and not os.access(key_file, os.R_OK):
        raise ConfigError(f"SSH key file {key_file} for {target} is not readable by this user", hint="check its owner and mode")
    return key_file


class SshSession:
    """One paramiko connection to a source host. Thread-safe for concurrent channels."""

    def __init__(self, target: SshTarget, client: paramiko.SSHClient) -> None:
        self.target = target
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SshSession({self.target})"

    # -- connection -------------------------------------------------------------------------------

    @classmethod
    def connect(cls, target: SshTarget) -> SshSession:
        """Open and authenticate; transient network failures are retried by the one policy."""
        return call_with_retry(lambda: cls._connect_once(target))

    @classmethod
    def _connect_once(cls, target: SshTarget) -> SshSession:
        path = known_hosts_path(target)
        client = paramiko.SSHClient()
        if os.path.exists(path):
            try:
                client.load_host_keys(path)
            except (OSError, paramiko.SSHException) as exc:
                raise ConfigError(f"cannot read the known_hosts file {path}: {exc}") from exc
        client.set_missing_host_key_policy(_RefuseUnknownHost(target, path))
        key_file = check_key_file(target)
        try:
            client.connect(
                target.host,
                port=target.port,
                username=target.user or None,
                key_filename=key_file,
                allow_agent=True,
                look_for_keys=key_file is None,
                timeout=CONNECT_TIMEOUT_SECONDS,
                banner_timeout=CONNECT_TIMEOUT_SECONDS,
                auth_timeout=CONNECT_TIMEOUT_SECONDS,
                channel_timeout=CONNECT_TIMEOUT_SECONDS,
                transport_factory=_FastTransport,
            )
        except SourceError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            entry = known_hosts_entry(target.host, target.port)
            raise SourceError(
                f"SSH host key of {target} CHANGED: the server offers {exc.key.get_name()} "
                f"{fingerprint_sha256(exc.key)} but {path} expects {exc.expected_key.get_name()} "
                f"{fingerprint_sha256(exc.expected_key)}. This may be an attack; refusing to connect",
                hint=(
                    "if the server was really reinstalled, check the new fingerprint out of band, remove the old "
                    f"line (ssh-keygen -R '{entry}' -f {path}) and add:\n    "
                    f"{entry} {exc.key.get_name()} {exc.key.get_base64()}"
                ),
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            how = f"the key {key_file}" if key_file else "the SSH agent and the default keys in ~/.ssh"
            raise SourceError(
                f"SSH authentication as {target.user or 'the current user'} on {target} failed with {how}",
                hint=(
                    "add the public key to ~/.ssh/authorized_keys of that user on the server, "
                    "or set key_file for this source (test with: "
                    f"ssh -p {target.port} {'-i ' + key_file + ' ' if key_file else ''}"
                    f"{(target.user + '@') if target.user else ''}{target.host} true)"
                ),
            ) from exc
        except (TimeoutError, ConnectionError, paramiko.ssh_exception.NoValidConnectionsError) as exc:
            client.close()
            raise TransientSourceError(f"cannot reach SSH host {target}: {exc}") from exc
        except socket.gaierror as exc:
            client.close()
            raise SourceError(f"SSH host name {target.host!r} does not resolve: {exc}") from exc
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise TransientSourceError(f"SSH connection to {target} failed: {exc}") from exc
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(KEEPALIVE_SECONDS)
        # Without TCP_NODELAY every channel open waits out a delayed ACK (~40 ms measured).
        if isinstance(transport.sock, socket.socket):
            with contextlib.suppress(OSError):
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            keep_alive(transport.sock)  # a dead host or link ends the waits on every channel
        log.debug("connected to %s", target)
        return cls(target, client)

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    self._sftp.close()
                self._sftp = None
        self._client.close()

    @property
    def transport(self) -> paramiko.Transport:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise TransientSourceError(f"the SSH connection to {self.target} is closed")
        return transport

    def _open_session(self) -> paramiko.Channel:
        try:
            return self.transport.open_session(timeout=CONNECT_TIMEOUT_SECONDS)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransientSourceError(f"cannot open an SSH channel to {self.target}: {exc}") from exc

    # -- exec -----------------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None) -> bytes:
        """Run a command (argv is shell-quoted), return its stdout; non-zero exit → SourceError."""
        with self.stream(argv, stdin=stdin) as out:
            return out.read()

    @contextlib.contextmanager
    def stream(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | Iterable[bytes] | None = None,
        ok_status: Collection[int] = (0,),
    ) -> Iterator[BinaryIO]:
        """stdout of a remote command as a readable stream.

        The exit status is checked when the block ends normally: a status not in ``ok_status``
        raises SourceError with the tail of its stderr, even if the caller read everything.
        After the block, the stream's ``exit_status`` and ``stderr_tail`` tell what happened
        (e.g. GNU tar's status 1: "some files changed while read"). ``stdin`` may be an
        iterable of byte strings, sent as they come (a conversation: read some output, then
        decide what to send); it must end when the block ends.
        """
        command = shlex.join(argv)
        channel = self._open_session()
        stderr_tail = bytearray()
        threads: list[threading.Thread] = []
        try:
            try:
                channel.exec_command(command)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransientSourceError(f"cannot start a command on {self.target}: {exc}") from exc
            threads.append(_start(_drain_stderr, channel, stderr_tail))
            if stdin is not None:
                threads.append(_start(_feed_stdin, channel, stdin))
            else:
                channel.shutdown_write()
            channel.settimeout(stall_timeout())  # a remote command silent that long has stalled
            out = CommandOutput(_ChannelReader(channel, self.target), STREAM_BUFFER_BYTES)
            yield cast(BinaryIO, out)
            # The caller may stop early (e.g. at the end of a tar archive): drain the rest.
            while out.read(STREAM_BUFFER_BYTES):
                pass
            try:
                status = channel.recv_exit_status()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransientSourceError(f"SSH command on {self.target} was interrupted: {exc}") from exc
            for thread in threads:
                thread.join()
        finally:
            channel.close()
        tail = bytes(stderr_tail[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace").strip()
        out.exit_status, out.stderr_tail = status, tail
        if status not in ok_status:
            raise SourceError(
                f"command {_short(command)!r} on {self.target} exited with status {status}"
                + (f": {tail}" if tail else "")
            )

    def sftp(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(self.transport)
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise SourceError(f"cannot start SFTP on {self.target}: {exc}") from exc
                assert self._sftp is not None
                channel = self._sftp.get_channel()
                if channel is not None:  # a server silent that long has stalled (as exec_stream)
                    channel.settimeout(stall_timeout())
            return self._sftp

    # -- tunnels --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def forward(self, remote_host: str, remote_port: int) -> Iterator[tuple[str, int]]:
        """Listen on 127.0.0.1:<free port>; each connection is tunnelled to remote_host:remote_port
        as seen from the SSH host. Everything is closed when the block ends."""
        tunnel = _Tunnel(self, remote_host, remote_port)
        try:
            yield tunnel.address
        finally:
            tunnel.close()


def _start(fn, *args) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def _drain_stderr(channel: paramiko.Channel, tail: bytearray) -> None:
    # Read stderr concurrently: a chatty command must never block on a full stderr window.
    while True:
        try:
            data = channel.recv_stderr(65536)
        except (OSError, EOFError, paramiko.SSHException):
            return
        if not data:
            return
        tail += data
        if len(tail) > 2 * STDERR_TAIL_BYTES:
            del tail[:-STDERR_TAIL_BYTES]


def _feed_stdin(channel: paramiko.Channel, data: bytes | Iterable[bytes]) -> None:
    try:
        for piece in (data,) if isinstance(data, bytes) else data:
            channel.sendall(piece)
        channel.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.debug("stdin of a remote command closed early: %s", exc)


def _short(command: str) -> str:
    return command if len(command) <= 200 else command[:197] + "..."


class CommandOutput(io.BufferedReader):
    """stdout of a remote command; ``exit_status`` and ``stderr_tail`` are set once it ended."""

    exit_status: int | None = None
    stderr_tail: str = ""


class _ChannelReader(io.RawIOBase):
    """stdout of an exec channel as a raw stream; link failures become TransientSourceError."""

    def __init__(self, channel: paramiko.Channel, target: SshTarget) -> None:
        self.channel = channel
        self.target = target

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        try:
            data = self.channel.recv(len(buffer))
        except TimeoutError as exc:
            raise TransientSourceError(
                f"SSH stream from {self.target} stalled: nothing came for {stall_timeout():g} s",
                hint="check the remote host; the limit is CLONEKIT_STALL_TIMEOUT, in seconds",
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransientSourceError(f"SSH stream from {self.target} was interrupted: {exc}") from exc
        n = len(data)
        buffer[:n] = data
        return n


class _Tunnel:
    """A local listener whose connections are relayed through direct-tcpip channels."""

    def __init__(self, session: SshSession, remote_host: str, remote_port: int) -> None:
        self.session = session
        self.remote = (remote_host, remote_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(None)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.closed = threading.Event()
        self.pairs: list[tuple[socket.socket, paramiko.Channel]] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = [_start(self._accept_loop)]

    def _accept_loop(self) -> None:
        while not self.closed.is_set():
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return
            try:
                channel = self.session.transport.open_channel(
                    "direct-tcpip", self.remote, peer[:2], timeout=CONNECT_TIMEOUT_SECONDS
                )
            except (paramiko.SSHException, OSError, EOFError, TransientSourceError) as exc:
                log.warning(
                    "SSH tunnel to %s:%s via %s refused: %s", self.remote[0], self.remote[1], self.session.target, exc
                )
                conn.close()
                continue
            with self.lock:
                if self.closed.is_set():
                    conn.close()
                    channel.close()
                    return
                self.pairs.append((conn, channel))
                self.threads.append(_start(_relay, conn, channel))

    def close(self) -> None:
        self.closed.set()
        # shutdown() wakes the accept() blocked in the other thread; close() alone may not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            pairs = list(self.pairs)
        for conn, channel in pairs:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            channel.close()
        for thread in self.threads:
            thread.join(timeout=5)


def _relay(conn: socket.socket, channel: paramiko.Channel) -> None:
    try:
        while True:
            readable, _, _ = select.select([conn, channel], [], [])  # type: ignore[type-var]
            if conn in readable:
                data = conn.recv(FORWARD_BUFFER_BYTES)
                if not data:
                    break
                channel.sendall(data)
            if channel in readable:
                data = channel.recv(FORWARD_BUFFER_BYTES)
                if not data:
                    break
                conn.sendall(data)
    except (OSError, EOFError, paramiko.SSHException, ValueError):
        pass  # either side closed: the tunnel's job is over
    finally:
        channel.close()
        conn.close()


__all__ = ["SshSession", "fingerprint_sha256", "known_hosts_entry"]

"""Fixtures for the preview runtime tests: the local images and throwaway compose projects."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_IMAGE = "clonekit/busybox:latest"
MARIADB_IMAGE = "clonekit/mariadb:10.11"


@pytest.fixture(scope="session")
def busybox_image(docker) -> str:
    """The local images (scripts/images.sh builds what is missing; idempotent, one builder at a time)."""
    if not (docker.image.exists(BUSYBOX_IMAGE) and docker.image.exists(MARIADB_IMAGE)):
        subprocess.run([str(ROOT / "scripts" / "images.sh"), "busybox", "mariadb"], check=True)
    return BUSYBOX_IMAGE


def _proxy_image(docker) -> str:  # type: ignore[no-untyped-def]
    """The proxy's image (built when missing), for engines that run clonekit's proxy."""
    from support import PROXY_IMAGE

    if not docker.image.exists(PROXY_IMAGE):
        subprocess.run([str(ROOT / "scripts" / "images.sh"), "caddy"], check=True)
    return PROXY_IMAGE


@pytest.fixture
def compose_project(docker, tmp_path) -> Iterator[tuple[str, Path]]:
    """A fresh compose project name (cktest-...) and a folder for its compose file; taken down afterwards."""
    name = f"cktest-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    try:
        yield name, folder
    finally:
        compose_file = folder / "compose.yml"
        if compose_file.exists():
            subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", name, "down", "-v", "--remove-orphans",
                            "-t", "0"], capture_output=True)


REMOTE_ENGINE_IMAGE = "clonekit/remote-engine:20.10"
# What dockerd in a container needs. Not --privileged: this machine's own bounding set lacks
# CAP_SYS_RESOURCE, which --privileged asks for (runc then fails "unable to apply caps").
REMOTE_ENGINE_CAPS = ("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                      "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined")


@dataclass(frozen=True)
class RemoteEngine:
    """A second Docker engine reachable only through sshd (a privileged container on the local one)."""

    container: str  # its name on the local engine
    url: str  # ssh://root@127.0.0.1:PORT
    key_file: Path
    known_hosts: Path
    tls_url: str  # tcp://127.0.0.1:PORT: the same engine over TCP with mutual TLS
    tls_dir: Path  # the client's ca.pem, cert.pem, key.pem

    def docker(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``docker ARGS`` run on the remote engine's own host (through ``docker exec``, not SSH)."""
        return subprocess.run(["docker", "exec", "-i", self.container, "docker", *args], input=input,
                              capture_output=True, timeout=300, check=False)

    def labelled(self, kind: str, label: str) -> list[str]:
        args = {"container": ["ps", "-aq"], "volume": ["volume", "ls", "-q"], "network": ["network", "ls", "-q"],
                "image": ["image", "ls", "-q"]}[kind]
        done = self.docker(*args, "--filter", f"label={label}")
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().split()


def _wait_for(what: str, check, seconds: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    pytest.fail(f"the remote engine's {what} did not come up within {seconds:.0f} s")


def _engine_image_and_key(docker, tmp_path_factory, image: str, kind: str) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """The engine image (scripts/images.sh KIND builds it when missing), a folder and a fresh SSH key in it."""
    if not docker.image.exists(image):
        subprocess.run([str(ROOT / "scripts" / "images.sh"), kind], check=True)
    folder = tmp_path_factory.mktemp(kind)
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return folder, key


def _tls_files(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 (server-*.pem) and a client one (cert.pem, key.pem),
    as `dockerd --tlsverify` and `docker --tlsverify` use them."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def issue(subject: str, key, issuer_name, issuer_key, *, ca: bool = False, server: bool = False):  # type: ignore[no-untyped-def]
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
                                            critical=False)
        if not ca:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def pem(obj) -> bytes:  # type: ignore[no-untyped-def]
        if isinstance(obj, x509.Certificate):
            return obj.public_bytes(serialization.Encoding.PEM)
        return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clonekit test CA")])
    ca = issue("clonekit test CA", ca_key, ca_name, ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {"ca.pem": pem(ca), "server-cert.pem": pem(issue("127.0.0.1", server_key, ca_name, ca_key, server=True)),
             "server-key.pem": pem(server_key), "cert.pem": pem(issue("clonekit", client_key, ca_name, ca_key)),
             "key.pem": pem(client_key)}
    for name, content in files.items():
        (folder / name).write_bytes(content)
        (folder / name).chmod(0o644)


@pytest.fixture(scope="session")
def remote_engine(docker, busybox_image, tmp_path_factory) -> Iterator[RemoteEngine]:
    """Started once per session: Debian's dockerd and sshd in a container (ckremote-...) with every capability,
    its sshd on a free 127.0.0.1 port, its /var/lib/docker on a volume; the test images are
    streamed into it with `docker save | docker -H ssh://... load` (the client side of the
    engine adapter, host key checked). Removed with its volume at the end."""
    folder, key = _engine_image_and_key(docker, tmp_path_factory, REMOTE_ENGINE_IMAGE, "remote-engine")
    name = f"ckremote-{uuid.uuid4().hex[:8]}"
    tls_dir = folder / "tls"
    tls_dir.mkdir(exist_ok=True)
    _tls_files(tls_dir)
    tls_args = ("--host tcp://0.0.0.0:2376 --tlsverify --tlscacert /tls/ca.pem --tlscert /tls/server-cert.pem "
                "--tlskey /tls/server-key.pem")
    subprocess.run(["docker", "run", "-d", *REMOTE_ENGINE_CAPS, "--name", name, "-p", "127.0.0.1::22",
                    "-p", "127.0.0.1::2376", "-v", f"{tls_dir}:/tls:ro", "-e", f"DOCKERD_ARGS={tls_args}",
                    "-e", f"AUTHORIZED_KEY={(folder / 'id_ed25519.pub').read_text().strip()}",
                    "-v", f"{name}-data:/var/lib/docker", REMOTE_ENGINE_IMAGE], check=True, capture_output=True)
    try:
        port = _wait_for("ssh port", lambda: subprocess.run(["docker", "port", name, "22/tcp"], capture_output=True,
                                                            text=True).stdout.strip().rsplit(":", 1)[-1])
        # The host key, read out of band (as an administrator would give it), is the only one trusted.
        host_key = _wait_for("sshd host key", lambda: subprocess.run(
            ["docker", "exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"], capture_output=True, text=True).stdout)
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(host_key.split()[:2])}\n")
        tls_port = subprocess.run(["docker", "port", name, "2376/tcp"], capture_output=True, text=True,
                                  check=True).stdout.strip().rsplit(":", 1)[-1]
        engine = RemoteEngine(name, f"ssh://root@127.0.0.1:{port}", key, known_hosts, f"tcp://127.0.0.1:{tls_port}", tls_dir)
        _wait_for("dockerd", lambda: engine.docker("info").returncode == 0)
        from clonekit.config import SshTarget
        from clonekit.runtime.docker import DockerEngine

        client = DockerEngine(engine.url, ssh=SshTarget("127.0.0.1", "root", int(port), str(known_hosts), str(key)))
        images = [busybox_image, MARIADB_IMAGE, _proxy_image(docker)]
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        assert save.stdout is not None
        client.stream_into([*client.base_argv, "load"], iter(lambda: save.stdout.read(1 << 20), b""),  # type: ignore[union-attr]
                           what="load the test images into the remote engine")
        assert save.wait() == 0
        yield engine
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{name}-data"], capture_output=True)


SWARM_NODE_IMAGE = "clonekit/swarm-node:20.10"
SWARM_REGISTRY_PORT = 5000
# The registry on the manager speaks plain HTTP on the test network's address: every node's
# engine is told to trust the private ranges such a network gets its address from.
SWARM_INSECURE = " ".join(f"--insecure-registry {cidr}" for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


@dataclass(frozen=True)
class SwarmCluster:
    """A Docker Swarm of containers on this machine: a manager (with the image registry) and two
    workers, each running Debian's dockerd and sshd on a bridge network of its own."""

    manager: str  # hostname (= container name on the local engine)
    workers: tuple[str, ...]
    addresses: dict[str, str]  # hostname -> its address on the test network (sshd on port 22)
    registry: str  # ADDRESS:5000 on the manager
    key_file: Path
    known_hosts: Path

    def url(self, hostname: str) -> str:
        return f"ssh://root@{self.addresses[hostname]}"

    def docker(self, hostname: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``docker ARGS`` on one node (through ``docker exec``, not SSH)."""
        return subprocess.run(["docker", "exec", "-i", hostname, "docker", *args], input=input, capture_output=True,
                              timeout=300, check=False)

    def labelled(self, hostname: str, kind: str, label: str) -> list[str]:
        args = {"container": ["ps", "-aq"], "volume": ["volume", "ls", "-q"], "network": ["network", "ls", "-q"],
                "image": ["image", "ls", "-q"]}[kind]
        done = self.docker(hostname, *args, "--filter", f"label={label}")
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().split()


@pytest.fixture(scope="session")
def swarm_cluster(docker, busybox_image, tmp_path_factory) -> Iterator[SwarmCluster]:
    """Started once per session: three containers of clonekit/swarm-node (dockerd + sshd, every
    capability the machine grants) on a network of their own, a swarm (the manager advertises its
    address there, the workers join), Debian's docker-registry on the manager (port 5000), and the
    test images loaded into every node (what a public registry would give them). Removed with its
    volumes and network at the end."""
    folder, key = _engine_image_and_key(docker, tmp_path_factory, SWARM_NODE_IMAGE, "swarm-node")
    prefix = f"ckswarm-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-m", f"{prefix}-w1", f"{prefix}-w2"]
    try:
        subprocess.run(["docker", "network", "create", prefix], check=True, capture_output=True)
        from support import foreign_masquerades

        stale = foreign_masquerades(prefix)
        if stale:
            pytest.fail(f"the swarm nodes' network {prefix} would be masqueraded by a rule of a network Docker no "
                        f"longer has ({'; '.join(stale)}): the overlay between nodes would drop every frame. "
                        "Run scripts/services.sh (it removes the rules of gone bridges)", pytrace=False)
        for name in names:
            extra = ["-e", f"REGISTRY_PORT={SWARM_REGISTRY_PORT}"] if name == names[0] else []
            subprocess.run(["docker", "run", "-d", *REMOTE_ENGINE_CAPS, "--name", name, "--hostname", name,
                            "--network", prefix, "-e", f"AUTHORIZED_KEY={(folder / 'id_ed25519.pub').read_text().strip()}",
                            "-e", f"DOCKERD_ARGS={SWARM_INSECURE}", *extra, "-v", f"{name}-data:/var/lib/docker",
                            SWARM_NODE_IMAGE], check=True, capture_output=True)
        addresses = {name: subprocess.run(["docker", "inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{prefix}\").IPAddress}}}}",
                                           name], check=True, capture_output=True, text=True).stdout.strip()
                     for name in names}
        lines = []
        for name in names:
            host_key = _wait_for("sshd host key", lambda name=name: subprocess.run(
                ["docker", "exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"], capture_output=True, text=True).stdout)
            lines.append(f"{addresses[name]} {' '.join(host_key.split()[:2])}")
        known_hosts = folder / "known_hosts"
        known_hosts.write_text("\n".join(lines) + "\n")
        cluster = SwarmCluster(names[0], tuple(names[1:]), addresses, f"{addresses[names[0]]}:{SWARM_REGISTRY_PORT}",
                               key, known_hosts)
        for name in names:
            _wait_for("dockerd", lambda name=name: cluster.docker(name, "info").returncode == 0)
        # A 2 s heartbeat (5 s by default): a node cut off is seen down sooner (the lost-node test).
        done = cluster.docker(names[0], "swarm", "init", "--advertise-addr", addresses[names[0]], "--dispatcher-heartbeat", "2s")
        assert done.returncode == 0, done.stderr
        token = cluster.docker(names[0], "swarm", "join-token", "-q", "worker").stdout.decode().strip()
        for name in names[1:]:
            done = cluster.docker(name, "swarm", "join", "--token", token, f"{addresses[names[0]]}:2377")
            assert done.returncode == 0, done.stderr
        images = subprocess.run(["docker", "save", busybox_image, MARIADB_IMAGE], check=True, capture_output=True).stdout
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            for done in pool.map(lambda name: cluster.docker(name, "load", "-q", input=images), names):
                assert done.returncode == 0, done.stderr
        # The proxy runs on the manager only.
        proxy = subprocess.run(["docker", "save", _proxy_image(docker)], check=True, capture_output=True).stdout
        done = cluster.docker(names[0], "load", "-q", input=proxy)
        assert done.returncode == 0, done.stderr
        yield cluster
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", *names], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", *(f"{name}-data" for name in names)], capture_output=True)
        subprocess.run(["docker", "network", "rm", prefix], capture_output=True)

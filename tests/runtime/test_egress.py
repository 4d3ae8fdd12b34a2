"""previews.egress from inside a container of a preview-like network, against listeners on this
machine: no-mail refuses SMTP and lets the rest through, none refuses everything, open nothing;
traffic inside the network keeps working; the rules go with remove()."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from support import HostListener

from clonekit.runtime import egress

pytestmark = pytest.mark.xdist_group("ckprod")  # binds port 587 on this machine, as the e2e test does


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def network(docker) -> Iterator[tuple[str, str, str]]:
    """(network, its subnet, its gateway): two busybox containers, `box` and `peer` (SMTP on 25)."""
    name = f"ckeg-{uuid.uuid4().hex[:8]}"
    _docker("network", "create", "--label", "clonekit.test=egress", name)
    _docker("run", "-d", "--name", f"{name}-box", "--network", name, "clonekit/busybox:latest", "sleep", "600")
    _docker("run", "-d", "--name", f"{name}-peer", "--network", name, "--network-alias", "peer",
            "clonekit/busybox:latest", "sh", "-c", "while true; do echo 220 | nc -l -p 25; done")
    ipam = json.loads(_docker("network", "inspect", name))[0]["IPAM"]["Config"][0]
    yield name, ipam["Subnet"], ipam["Gateway"]
    egress.remove(name)
    egress.remove(f"{name}-gone")  # (the stale rules test_egress_modes makes, if it stopped early)
    subprocess.run(["docker", "rm", "-f", f"{name}-box", f"{name}-peer"], capture_output=True)
    subprocess.run(["docker", "network", "rm", name], capture_output=True)


@pytest.fixture
def listeners() -> Iterator[tuple[HostListener, HostListener]]:
    """Listeners on this machine: SMTP submission (587) and a free port."""
    smtp, other = HostListener(587), HostListener(0)
    yield smtp, other
    smtp.close()
    other.close()


def _connects(network: str, host: str, port: int) -> bool:
    out = subprocess.run(["docker", "exec", f"{network}-box", "sh", "-c", f"nc -w 5 {host} {port} </dev/null"],
                         capture_output=True, text=True)
    return out.returncode == 0 and "220" in out.stdout


def test_egress_modes(network, listeners) -> None:
    name, subnet, gateway = network
    smtp, other_listener = listeners
    other = other_listener.port

    # Rules a network gone left on this subnet (its clonekit killed): they would refuse everything.
    gone = f"{name}-gone"
    egress.apply(gone, "none", [subnet])
    assert not _connects(name, gateway, other)
    egress.apply(name, "no-mail", [subnet])  # this network's own rules replace them
    assert egress.active(name) and not egress.active(gone) and f"clonekit {gone}" not in _iptables_rules()
    assert not _connects(name, gateway, 587) and smtp.connections == 0
    assert _connects(name, gateway, other)
    assert _connects(name, "peer", 25)  # the mail sink of a preview is inside its network

    egress.apply(name, "none", [subnet])
    assert not _connects(name, gateway, other) and not _connects(name, gateway, 587)
    assert _connects(name, "peer", 25)

    egress.apply(name, "open", [subnet])
    assert not egress.active(name)
    assert _connects(name, gateway, 587) and smtp.connections == 1

    egress.apply(name, "no-mail", [subnet])
    egress.remove(name)
    assert not egress.active(name) and f"clonekit {name}" not in _iptables_rules()


def _iptables_rules() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


def test_chain_rules_are_pure() -> None:
    rules = egress.chain_rules("no-mail", ["10.9.0.0/16"])
    assert rules[0][-1] == "RETURN" and "ESTABLISHED,RELATED" in rules[0]
    assert ["-d", "10.9.0.0/16", "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "RETURN"] in rules
    assert rules[-1][:6] == ["-p", "tcp", "-m", "multiport", "--dports", "25,465,587"]
    assert egress.chain_rules("open", ["10.9.0.0/16"])[-1][-1] == "RETURN"
    assert len(egress.chain_name("ck-some-project-with-a-long-name-preview")) <= 28


def test_a_network_with_ipv6_is_refused_not_left_open(docker) -> None:
    """The rules are iptables (IPv4): a preview network with an IPv6 subnet fails closed."""
    from clonekit.errors import PreviewError
    from clonekit.online import _subnets
    from clonekit.runtime.docker import DockerEngine

    name = f"ckeg6-{uuid.uuid4().hex[:8]}"
    _docker("network", "create", "--ipv6", "--subnet", "fd00:c10e:" + name[-4:] + "::/64",
            "--label", "clonekit.test=egress", name)
    try:
        with pytest.raises(PreviewError, match="IPv6 subnet"):
            _subnets(DockerEngine(), name)
    finally:
        subprocess.run(["docker", "network", "rm", name], capture_output=True)

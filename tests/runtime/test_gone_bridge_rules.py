"""scripts/gone-bridge-rules.sh (run by scripts/services.sh): the iptables rules of Docker bridges
this host no longer has are removed, the rules of live ones kept.

The rule that matters is a gone bridge's masquerade rule (``-s SUBNET ! -o br-GONE -j MASQUERADE``):
left behind, it translated the traffic between the swarm tests' nodes once their network got the
same subnet, and their overlay dropped every frame (docs/troubleshooting.md #15). The test plants
such a rule on a network of its own (nothing else uses its subnet) and a filter rule naming the
same gone bridge (it matches nothing), and checks what the swarm fixture checks before it starts.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from support import foreign_masquerades

pytestmark = pytest.mark.docker

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gone-bridge-rules.sh"
GONE = "br-0c0ffee0dead"  # no bridge has this name: Docker names its bridges br-<network id[:12]>


def _rules(table: str, chain: str) -> list[str]:
    return subprocess.run(["iptables", "-w", "-t", table, "-S", chain], check=True, capture_output=True,
                          text=True).stdout.splitlines()


def test_rules_of_a_gone_bridge_are_removed_and_live_ones_kept(docker) -> None:
    name = f"ckgone-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "network", "create", name], check=True, capture_output=True)
    planted = []
    try:
        found = subprocess.run(["docker", "network", "inspect", "-f", "{{.Id}} {{(index .IPAM.Config 0).Subnet}}", name],
                               check=True, capture_output=True, text=True).stdout.split()
        bridge, subnet = f"br-{found[0][:12]}", found[1]
        own = f"-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"
        assert own in _rules("nat", "POSTROUTING")
        assert foreign_masquerades(name) == []
        stale = ("nat", f"-A POSTROUTING -s {subnet} ! -o {GONE} -j MASQUERADE")
        inert = ("filter", f"-A FORWARD -i {GONE} -o {GONE} -j ACCEPT")
        for table, rule in (stale, inert):
            subprocess.run(["iptables", "-w", "-t", table, *rule.split()], check=True, capture_output=True)
            planted.append((table, rule))
        assert foreign_masquerades(name) == [stale[1]]  # what stops the swarm fixture, with this rule

        done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"removing a nat rule of bridge {GONE} (gone): {stale[1]}" in done.stderr
        assert stale[1] not in _rules("nat", "POSTROUTING") and inert[1] not in _rules("filter", "FORWARD")
        assert own in _rules("nat", "POSTROUTING")  # the live network's rules stay
        assert any(bridge in rule for rule in _rules("filter", "FORWARD"))
        assert foreign_masquerades(name) == []
        again = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and GONE not in again.stderr  # idempotent
    finally:
        for table, rule in planted:
            subprocess.run(["iptables", "-w", "-t", table, "-D", *rule.split()[1:]], capture_output=True)
        subprocess.run(["docker", "network", "rm", name], capture_output=True)

"""Outbound traffic of a preview's network: ``no-mail`` (SMTP ports closed), ``none``, or ``open``.

Mechanism: iptables rules on the Docker host, keyed on the preview network's subnet. Each preview
gets its own chain ``CK-<hash of its network name>`` and two jumps to it: one in ``DOCKER-USER``
(Docker's hook for traffic it forwards: to other machines and other networks) and one in
``INPUT`` (traffic to this host itself, e.g. a mail server listening on the host). The chain lets
through replies (``ESTABLISHED,RELATED``: the proxy's requests in, the database load through the
127.0.0.1 port) and traffic inside the preview's own subnet (the mail sink, the database, the
proxy attached to the network) except to the host's own address on it, then rejects SMTP (``no-mail``: TCP 25, 465, 587) or everything
(``none``). The rules are removed with the network. An ``internal: true`` network would block
everything too, but it also drops the 127.0.0.1 port the database is loaded through and cannot be
narrowed to mail only; rules on the subnet do both modes with one mechanism.

Where the rules run: on a local engine, ``iptables`` here (clonekit runs as root on the preview
host). On a remote engine (``ssh://``, ``tcp://``), the same shell script runs in the Docker host's
own mount and network namespaces, from a throwaway container of the helper image
(``nsenter -t 1 -m -n``, with the capabilities that needs), so the host's own ``iptables`` (the
variant Docker itself uses, nft or legacy) writes the rules; nothing is installed there. Anyone who
can start containers on an engine is root on its host already: this asks for nothing more.

This module knows nothing of previews: it takes a network's name and subnets.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import subprocess
from collections.abc import Sequence
from typing import Protocol

from ..errors import PreviewError
from ..retry import stall_timeout
from .docker import HELPER_IMAGE, DockerEngine

log = logging.getLogger("clonekit.runtime.egress")

MAIL_PORTS = (25, 465, 587)
HOOK_CHAINS = ("DOCKER-USER", "INPUT")
MODES = ("no-mail", "none", "open")
IPTABLES_TIMEOUT_SECONDS = 30


def chain_name(network: str) -> str:
    """At most 28 characters, stable for a network name."""
    return "CK-" + hashlib.sha256(network.encode()).hexdigest()[:16]


def chain_rules(mode: str, subnets: Sequence[str]) -> list[list[str]]:
    """The rules of a preview's chain (arguments after ``-A CHAIN``); pure, for tests and docs."""
    rules = [["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]]
    # Inside the subnet, but not the host's own address on it (the gateway is this machine).
    rules += [["-d", subnet, "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "RETURN"] for subnet in subnets]
    if mode == "no-mail":
        ports = ",".join(str(p) for p in MAIL_PORTS)
        rules.append(["-p", "tcp", "-m", "multiport", "--dports", ports, "-j", "REJECT", "--reject-with", "tcp-reset"])
    elif mode == "none":
        rules.append(["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"])
        rules.append(["-j", "REJECT"])
    return rules


# The script prelude: the host's tools (a container's PATH may lack sbin), iptables required.
PRELUDE = (
    "set -e\n"
    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    "command -v iptables >/dev/null 2>&1 || { echo 'iptables is not installed on the Docker host' >&2; exit 3; }\n"
)
NO_IPTABLES = 3


def remove_script(network: str) -> str:
    """Shell that removes the chain of ``network`` and every jump to it (nothing when there is none)."""
    chain = chain_name(network)
    hooks = " ".join(HOOK_CHAINS)
    # `iptables -S` prints a rule as the arguments that made it (a comment quoted): turned into -D and
    # run through eval, it deletes exactly that rule.
    return (f"if iptables -w -S {chain} >/dev/null 2>&1; then\n"
            f"  for hook in {hooks}; do\n"
            f"    iptables -w -S \"$hook\" | grep -e ' -j {chain}$' | sed 's/^-A /-D /' | while read -r rule; do\n"
            f"      eval \"iptables -w $rule\"\n"
            f"    done\n"
            f"  done\n"
            f"  iptables -w -F {chain}\n"
            f"  iptables -w -X {chain}\n"
            f"fi\n")


def stale_script(network: str, subnets: Sequence[str]) -> str:
    """Shell that removes the rules another network left on ``subnets`` (its clonekit was killed,
    or it was removed another way). Docker gives a subnet to one network at a time, so while
    ``network`` exists, a rule on its subnet that names another network is stale; left, it would
    filter this network whatever its own mode. A stale chain goes with its last jump."""
    ours = shlex.quote(f'--comment "clonekit {network}"')
    lines = []
    for subnet in subnets:
        on_subnet = shlex.quote(f" -s {subnet} ")
        lines.append(
            f"for hook in {' '.join(HOOK_CHAINS)}; do\n"
            f"  iptables -w -S \"$hook\" | grep -F -e {on_subnet} | grep -F -e '--comment \"clonekit ' "
            f"| grep -v -F -e {ours} | while read -r rule; do\n"
            f"    eval \"iptables -w $(printf '%s' \"$rule\" | sed 's/^-A /-D /')\"\n"
            f"    chain=${{rule##* }}\n"
            f"    iptables -w -S | grep -q -e \" -j $chain\\$\" || {{ iptables -w -F \"$chain\"; iptables -w -X \"$chain\"; }}\n"
            f"  done\n"
            f"done\n")
    return "".join(lines)


def apply_script(network: str, mode: str, subnets: Sequence[str]) -> str:
    """Shell that installs (or replaces) the rules of one preview network (pure), first removing
    its own and those other networks left on its subnets."""
    lines = [remove_script(network), stale_script(network, subnets)]
    if mode != "open":
        chain = chain_name(network)
        lines.append(shlex.join(["iptables", "-w", "-N", chain]))
        lines += [shlex.join(["iptables", "-w", "-A", chain, *rule]) for rule in chain_rules(mode, subnets)]
        lines += [shlex.join(["iptables", "-w", "-I", hook, "-s", subnet, "-m", "comment", "--comment",
                              f"clonekit {network}", "-j", chain])
                  for hook in HOOK_CHAINS for subnet in subnets]
    return "\n".join(lines) + "\n"


class HostShell(Protocol):
    """Runs a POSIX shell script as root on the Docker host of the previews."""

    def run(self, script: str, *, what: str) -> str: ...


def _result(code: int, stdout: str, stderr: str, what: str) -> str:
    if code == NO_IPTABLES:
        raise PreviewError("previews.egress needs iptables on the Docker host, and it is not installed",
                           hint="apt-get install iptables there, or set previews.egress: open")
    if code != 0:
        raise PreviewError(f"{what} failed: {stderr.strip()[-1500:]}",
                           hint="previews.egress rules need root on the Docker host; or set previews.egress: open")
    return stdout


class LocalHost:
    """This machine (a local engine): ``sh`` here."""

    def run(self, script: str, *, what: str) -> str:
        try:
            done = subprocess.run(["sh", "-s"], input=PRELUDE + script, capture_output=True, text=True,
                                  timeout=IPTABLES_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PreviewError(f"{what} failed: {exc}") from exc
        return _result(done.returncode, done.stdout, done.stderr, what)


class EngineHost:
    """The host of a remote engine, entered from a throwaway container (host PID namespace, then
    ``nsenter`` into PID 1's mount and network namespaces)."""

    CAPABILITIES = ("NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE")  # iptables; setns; opening /proc/1/ns

    def __init__(self, engine: DockerEngine, image: str = HELPER_IMAGE) -> None:
        self.engine = engine
        self.image = image

    def argv(self) -> list[str]:
        caps = [arg for cap in self.CAPABILITIES for arg in ("--cap-add", cap)]
        return ["run", "--rm", "-i", "--pid", "host", "--network", "host", *caps,
                "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--label", "clonekit.egress=1", "--log-driver", "none",
                self.image, "nsenter", "-t", "1", "-m", "-n", "/bin/sh", "-s"]

    def run(self, script: str, *, what: str) -> str:
        argv = [*self.engine.base_argv, *self.argv()]
        try:
            done = subprocess.run(argv, input=PRELUDE + script, capture_output=True, text=True, env=self.engine.env,
                                  timeout=IPTABLES_TIMEOUT_SECONDS + stall_timeout())
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PreviewError(f"{what} on {self.engine.host} failed: {exc}") from exc
        return _result(done.returncode, done.stdout, done.stderr, f"{what} on {self.engine.host}")


def host_of(engine: DockerEngine | None) -> HostShell:
    return LocalHost() if engine is None or engine.is_local else EngineHost(engine)


def apply(network: str, mode: str, subnets: Sequence[str], *, host: HostShell | None = None) -> None:
    """Install (or replace) the rules of one preview network."""
    if mode not in MODES:
        raise PreviewError(f"unknown egress mode {mode!r}")
    if mode != "open" and not subnets:
        raise PreviewError(f"network {network} has no IPv4 subnet to filter")
    (host or LocalHost()).run(apply_script(network, mode, subnets), what=f"previews.egress rules for {network}")
    if mode != "open":
        log.info("egress %s for network %s (%s)", mode, network, ", ".join(subnets))


def remove(network: str, *, host: HostShell | None = None) -> None:
    """Remove the rules of one preview network (nothing to do when there are none)."""
    (host or LocalHost()).run(remove_script(network), what=f"remove the previews.egress rules of {network}")


def active(network: str, *, host: HostShell | None = None) -> bool:
    chain = chain_name(network)
    out = (host or LocalHost()).run(f"iptables -w -S {chain} >/dev/null 2>&1 && echo yes || echo no\n",
                                    what=f"look for the previews.egress rules of {network}")
    return out.strip() == "yes"

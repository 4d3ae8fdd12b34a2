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

This module knows nothing of previews: it takes a network's name and subnets.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from collections.abc import Sequence

from ..errors import PreviewError

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


def _iptables(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("iptables")
    if binary is None:
        raise PreviewError("previews.egress needs iptables on the Docker host, and it is not installed",
                           hint="apt-get install iptables, or set previews.egress: open")
    try:
        done = subprocess.run([binary, "-w", *args], capture_output=True, text=True, timeout=IPTABLES_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreviewError(f"iptables {' '.join(args)} failed: {exc}") from exc
    if check and done.returncode != 0:
        raise PreviewError(f"iptables {' '.join(args)} failed: {done.stderr.strip()}",
                           hint="previews.egress rules need root on the Docker host; or set previews.egress: open")
    return done


def apply(network: str, mode: str, subnets: Sequence[str]) -> None:
    """Install (or replace) the rules of one preview network."""
    remove(network)
    if mode == "open":
        return
    if mode not in MODES:
        raise PreviewError(f"unknown egress mode {mode!r}")
    if not subnets:
        raise PreviewError(f"network {network} has no IPv4 subnet to filter")
    chain = chain_name(network)
    _iptables(["-N", chain])
    for rule in chain_rules(mode, subnets):
        _iptables(["-A", chain, *rule])
    for hook in HOOK_CHAINS:
        for subnet in subnets:
            _iptables(["-I", hook, "-s", subnet, "-m", "comment", "--comment", f"clonekit {network}", "-j", chain])
    log.info("egress %s for network %s (%s)", mode, network, ", ".join(subnets))


def remove(network: str) -> None:
    """Remove the rules of one preview network (nothing to do when there are none)."""
    chain = chain_name(network)
    if _iptables(["-S", chain], check=False).returncode != 0:
        return
    for hook in HOOK_CHAINS:
        listing = _iptables(["-S", hook]).stdout.splitlines()
        for line in listing:
            words = line.split()
            if words[:1] == ["-A"] and words[-2:] == ["-j", chain]:
                _iptables(["-D", hook, *_unquote(words[2:])], check=False)
    _iptables(["-F", chain], check=False)
    _iptables(["-X", chain], check=False)


def _unquote(words: list[str]) -> list[str]:
    """``iptables -S`` quotes a comment with spaces; rejoin it into one argument."""
    out: list[str] = []
    buffer: list[str] | None = None
    for word in words:
        if buffer is not None:
            buffer.append(word)
            if word.endswith('"'):
                out.append(" ".join(buffer)[1:-1])
                buffer = None
        elif word.startswith('"') and not (word.endswith('"') and len(word) > 1):
            buffer = [word]
        else:
            out.append(word.strip('"'))
    return out


def active(network: str) -> bool:
    return _iptables(["-S", chain_name(network)], check=False).returncode == 0

"""IP addresses inside free text: every IPv4 and IPv6 form, in any position.

IPv6 is found in two steps: a cheap pattern finds runs of hex digits, dots and at least two
colons (``[[User talk:2001:db8::1|talk]]``, ``[fe80::1%eth0]:443``, ``::ffff:192.0.2.1``), then
the ``ipaddress`` module decides which part of a run is an address. A run is tried from its
left, longest window first, on colon boundaries, so the ``talk:`` before an address or the
``:443`` after a bracket stays text. Windows must hold a decimal digit or three groups
(``Feed::add`` and ``std::`` are code, not addresses) and must not start or end inside a word. Times (``12:30:45``)
and MAC addresses (``00:1a:2b:3c:4d:5e``) do not parse as IPv6 and are left alone; an 8-group
hex string that parses as IPv6 is treated as one.

IPv4 is a dotted quad of 0-255 that is not part of a longer dotted number: a sentence's final
dot does not hide it (``from 192.0.2.1.``), a version number such as ``1.2.3.4.5`` is not one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

IPV4_TEXT_RE = re.compile(
    r"(?<![\d.])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d|0\d{1,2})(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d|0\d{1,2})){3}(?!\d|\.\d)"
)
# starts only where a run of hex digits, dots and colons starts (linear on long hex strings)
_V6_RUN = re.compile(r"(?<![0-9A-Fa-f.:])(?:[0-9A-Fa-f.]*+:){2,}[0-9A-Fa-f.:]*+")
_MAX_V6_CHARS = 45  # ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255
_DIGIT = re.compile(r"\d")
_V4_HINT = re.compile(r"\d\.\d{1,3}\.\d")  # a cheap scan before the exact one


def _groups(candidate: str) -> int:
    return sum(1 for group in candidate.split(":") if group)


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _v6_in_run(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The addresses inside one run ``text[start:end]``: leftmost first, each as long as it parses."""
    colons = [i for i in range(start, end) if text[i] == ":"]
    dots = [i for i in range(start, end) if text[i] == "."]
    starts = sorted({start, *(i + 1 for i in colons + dots), *(i for i in colons if i + 1 < end and text[i + 1] == ":")})
    ends = sorted({end, end - len(text[start:end]) + len(text[start:end].rstrip(".")), *colons,
                   *(i + 2 for i in colons if i + 1 < end and text[i + 1] == ":")}, reverse=True)
    pos = start
    for s in starts:
        if s < pos or (s > 0 and (_word_char(text[s - 1]) or text[s - 1] == ".") and s == start):
            continue
        for e in ends:
            if e - s < 2 or e - s > _MAX_V6_CHARS:
                continue
            if e < len(text) and e == end and _word_char(text[e]):
                continue
            candidate = text[s:e]
            colons_in = candidate.count(":")
            if "::" not in candidate and colons_in != 7 and not (colons_in == 6 and "." in candidate):
                continue  # cannot be IPv6: eight groups, or "::", or six groups and an IPv4 tail
            if colons_in < 2 or (_DIGIT.search(candidate) is None and _groups(candidate) < 3):
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield s, e
            pos = e
            break


def iter_ipv6(text: str) -> Iterator[tuple[int, int, ipaddress.IPv6Address]]:
    """(start, end, address) of every IPv6 address in ``text``; a zone (``%eth0``) stays outside."""
    if "::" not in text and text.count(":") < 6:
        return  # every IPv6 text form has "::" or at least six colons
    for run in _V6_RUN.finditer(text):
        if run.end() - run.start() < 2 or ("::" not in run.group() and run.group().count(":") < 6):
            continue  # a time of day, a ratio, "http:": no address fits
        for s, e in _v6_in_run(text, run.start(), run.end()):
            yield s, e, ipaddress.IPv6Address(text[s:e])


def iter_ipv4(text: str) -> Iterator[tuple[int, int, str]]:
    for match in IPV4_TEXT_RE.finditer(text):
        yield match.start(), match.end(), match.group()


def replace_ips(text: str, v4: Callable[[str], str], v6: Callable[[str], str]) -> str:
    """``text`` with every IPv4 address replaced by ``v4(found)`` and IPv6 by ``v6(found)``.

    IPv6 first: an IPv4-mapped ``::ffff:192.0.2.1`` is one IPv6 address, replaced whole."""
    if "::" in text or text.count(":") >= 6:
        parts: list[str] = []
        last = 0
        for s, e, _ in iter_ipv6(text):
            parts += [text[last:s], v6(text[s:e])]
            last = e
        if parts:
            text = "".join(parts) + text[last:]
    if text.count(".") >= 3 and _V4_HINT.search(text) is not None:
        text = IPV4_TEXT_RE.sub(lambda m: v4(m.group()), text)
    return text

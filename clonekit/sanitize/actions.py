"""Sanitization actions: deterministic, keyed value transforms.

Every pseudonym is derived from ``HMAC-SHA256(secret, action + value)``: the same input gives the
same output in every table and every night (joins keep working, unchanged rows deduplicate),
and nobody without the secret can map a pseudonym back. An action is built once per column
(``build_action``) into a plain ``value -> value`` function; nothing is parsed per row.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from .._compiled import speedups
from . import passwords, phpserialize
from .detect import EMAIL_RE, iter_phones
from .iptext import replace_ips
from .wordlists import FIRST_NAMES, LAST_NAMES, LOREM_WORDS, STREET_SUFFIXES

ValueFn = Callable[[Any], Any]
BytesFn = Callable[[bytes], bytes]

TAG_CHARS = 15  # hex, 60 bits: no collision in practice below billions of distinct values
CACHE_ENTRIES = 8192  # per column; values repeat (hostnames, the same commenter's email)
DEFAULT_EMAIL_DOMAIN = "example.com"  # RFC 2606: mail to it reaches no one
DEFAULT_URL_HOST = "www.example.com"
IPV4_DOC_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737
IPV6_DOC_PREFIX = bytes.fromhex("20010db8")  # RFC 3849: 2001:db8::/32
LOREM_TEXT = " ".join(LOREM_WORDS) + " "
compiled = speedups  # clonekit/_speedups.c, or None: built without a C compiler, or turned off
_DIGIT = re.compile(r"\d")  # any script's decimal digits, as PHONE_RE finds them
# What an address, an IP or a phone number holds; any non-ASCII byte too (scrub's IP patterns
# read \d, which is any Unicode digit): a value without any of these is one scrub cannot change.
_SCRUB_TARGET_BYTES = re.compile(rb"[0-9@:\x80-\xff]")


@dataclass(frozen=True)
class ActionSpec:
    """A parsed rule action: ``email``, ``{set: ""}``, ``{email: {domain: keep}}``..."""

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def describe(self) -> str:
        """For logs and the manifest: the action and option names, never a ``set`` value."""
        if not self.options:
            return self.name
        if self.name == "set":
            return "set"
        return f"{self.name}({', '.join(sorted(self.options))})"


@dataclass(frozen=True)
class Target:
    """What an action writes into: the column's kind and limits."""

    kind: str  # text binary int decimal temporal enum other
    max_chars: int | None = None
    unique: bool = False
    nullable: bool = True


def column_kind(data_type: str, binary: bool = False) -> str:
    t = data_type.lower()
    if t in ("enum", "set"):
        return "enum"
    if binary or t in ("blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary", "bit"):
        return "binary"
    if t in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json"):
        return "text"
    if t in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint"):
        return "int"
    if t in ("decimal", "numeric", "float", "double", "real"):
        return "decimal"
    if t in ("date", "datetime", "timestamp", "time", "year"):
        return "temporal"
    return "other"


class Keyed:
    """HMAC-SHA256 with the project secret; ``domain`` separates actions.

    The HMAC pads are hashed once and their states copied per call: the same bytes as
    ``hmac.digest(secret, msg, "sha256")`` at a quarter of the cost (OpenSSL 3 sets up an HMAC
    context per call), which matters at several digests per row. With the compiled module, one
    call into it per digest (clonekit/_speedups.c: SHA-256 from the pads' states, no Python frame)."""

    __slots__ = ("_inner", "_outer", "secret", "digest", "states")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        inner_pad, outer_pad = bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
        self._inner = hashlib.sha256(inner_pad)
        self._outer = hashlib.sha256(outer_pad)
        # digest(domain, value) -> HMAC-SHA256(secret, domain + value)
        self.digest: Callable[[bytes, str | bytes], bytes] = self.digest_python
        # the pads' SHA-256 states for the compiled digest and pseudonyms, or None
        self.states: tuple[bytes, bytes] | None = None
        if compiled is not None:
            self.states = (compiled.sha256_pad_state(inner_pad), compiled.sha256_pad_state(outer_pad))
            self.digest = functools.partial(compiled.hmac_digest, *self.states)

    def __repr__(self) -> str:
        return "Keyed(<secret>)"

    def digest_python(self, domain: bytes, value: str | bytes) -> bytes:
        if value.__class__ is str:
            value = value.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
        inner = self._inner.copy()
        inner.update(domain)
        inner.update(value)  # type: ignore[arg-type]
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@dataclass(frozen=True)
class ActionEnv:
    keyed: Keyed
    dev_password: str = "clonekit"
    keep_values: frozenset[str] = frozenset()  # casefolded staff logins and emails


def tag(digest: bytes, chars: int = TAG_CHARS) -> str:
    """Up to 15 hex characters (60 bits) from the end of a digest: hex is the cheapest encoding."""
    return digest[-8:].hex()[:chars]


def pick(words: tuple[str, ...], digest: bytes, at: int) -> str:
    return words[(digest[at] << 8 | digest[at + 1]) % len(words)]


_FIRST_LOWER = tuple(n.lower() for n in FIRST_NAMES)
_LAST_LOWER = tuple(n.lower() for n in LAST_NAMES)


def fit_with_tag(head: str, sep: str, tail_tag: str, suffix: str, limit: int | None) -> str:
    """``head + sep + tag + suffix`` within ``limit`` characters, shortening ``head`` first so the
    uniqueness tag survives."""
    full = f"{head}{sep}{tail_tag}{suffix}"
    if limit is None or len(full) <= limit:
        return full
    room = limit - len(sep) - len(tail_tag) - len(suffix)
    if room >= 1:
        return f"{head[:room]}{sep}{tail_tag}{suffix}"
    room = limit - len(suffix)
    if room >= 1:
        return f"{tail_tag[:room]}{suffix}"
    return tail_tag[:limit]


# --- the pseudonym builders: (value, limit) -> str -------------------------------------------

StrBuilder = Callable[[str, "int | None"], str]


def email_builder(env: ActionEnv, domain_option: str | None) -> StrBuilder:
    digest = env.keyed.digest
    keep_domain = domain_option == "keep"
    fixed_suffix = "@" + (domain_option if domain_option and not keep_domain else DEFAULT_EMAIL_DOMAIN)
    first, last = _FIRST_LOWER, _LAST_LOWER
    n_first, n_last = len(first), len(last)

    def email(value: str, limit: int | None) -> str:
        norm = value.strip().casefold()
        d = digest(b"email\0", norm)
        suffix = "@" + norm.rpartition("@")[2] if keep_domain and "@" in norm else fixed_suffix
        name = f"{first[(d[0] << 8 | d[1]) % n_first]}.{last[(d[2] << 8 | d[3]) % n_last]}"
        out = f"{name}.{tag(d)}{suffix}"
        if limit is None or len(out) <= limit:
            return out
        return fit_with_tag(name, ".", tag(d), suffix, limit)

    return email


def username_builder(env: ActionEnv) -> StrBuilder:
    digest = env.keyed.digest
    first, last = _FIRST_LOWER, _LAST_LOWER
    n_first, n_last = len(first), len(last)

    def username(value: str, limit: int | None) -> str:
        d = digest(b"username\0", value.strip().casefold())
        name = f"{first[(d[0] << 8 | d[1]) % n_first]}{last[(d[2] << 8 | d[3]) % n_last]}"
        out = f"{name}_{tag(d)}"
        if limit is None or len(out) <= limit:
            return out
        return fit_with_tag(name, "_", tag(d), "", limit)

    return username


def first_name_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed
    return lambda value, limit: pick(FIRST_NAMES, keyed.digest(b"first_name\0", value.strip().casefold()), 0)[:limit]


def last_name_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed
    return lambda value, limit: pick(LAST_NAMES, keyed.digest(b"last_name\0", value.strip().casefold()), 0)[:limit]


def name_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed

    def name(value: str, limit: int | None) -> str:
        d = keyed.digest(b"name\0", value.strip().casefold())
        return f"{pick(FIRST_NAMES, d, 0)} {pick(LAST_NAMES, d, 2)}"[:limit]

    return name


def address_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed

    def address(value: str, limit: int | None) -> str:
        d = keyed.digest(b"address\0", value.strip().casefold())
        number = 1 + int.from_bytes(d[4:6], "big") % 9999
        return f"{number} {pick(LAST_NAMES, d, 0)} {pick(STREET_SUFFIXES, d, 2)}"[:limit]

    return address


def _phone_digits(keyed: Keyed, digits: str) -> str:
    d = keyed.digest(b"phone\0", digits)
    while len(d) < len(digits):
        d += keyed.digest(b"phone+\0", d)
    # keep the first digit (country code or trunk prefix) so numbers stay plausible
    return digits[:1] + "".join(str(b % 10) for b in d[: len(digits) - 1])


def _digits_rewritten(keyed: Keyed, value: str) -> str:
    r"""Every decimal digit of ``value`` replaced (keyed on the digits' values), everything else
    kept. Digits of any script count, as re's ``\d`` finds them: a number typed in full-width
    (０３０ １２３４) or Arabic-Indic digits is replaced like its ASCII twin, each new digit written
    in the script of the one it replaces."""
    if value.isascii():
        digits = "".join(ch for ch in value if "0" <= ch <= "9")
        if not digits:
            return value
        new = iter(_phone_digits(keyed, digits))
        return "".join(next(new) if "0" <= ch <= "9" else ch for ch in value)
    found = [(i, unicodedata.decimal(ch)) for i, ch in enumerate(value) if ch.isdecimal()]
    if not found:
        return value
    out = list(value)
    for (i, old), new_digit in zip(found, _phone_digits(keyed, "".join(str(d) for _, d in found)), strict=True):
        out[i] = chr(ord(value[i]) - old + int(new_digit))  # (each script's digits run 0-9 in a row)
    return "".join(out)


def phone_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed

    def phone(value: str, limit: int | None) -> str:
        return _digits_rewritten(keyed, value)[:limit]

    return phone


def _ipv4(keyed: Keyed, value: str) -> str:
    d = keyed.digest(b"ip\0", value.strip().casefold())
    return f"{IPV4_DOC_NETS[d[0] % 3]}.{1 + d[1] % 254}"


def _ipv6_packed(keyed: Keyed, value: str) -> bytes:
    d = keyed.digest(b"ip\0", value.strip().casefold())
    return IPV6_DOC_PREFIX + d[:12]


def canonical_ipv6(value: str) -> str:
    """One spelling per IPv6 address (``[2001:DB8:0::1]`` → ``2001:db8::1``), so every form of an
    address gets the same pseudonym; anything that does not parse is returned as it is."""
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    try:
        return str(ipaddress.IPv6Address(text.partition("%")[0]))
    except ValueError:
        return value


def ip_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed

    def ip(value: str, limit: int | None) -> str:
        if ":" in value:
            return str(ipaddress.IPv6Address(_ipv6_packed(keyed, canonical_ipv6(value))))[:limit]
        return _ipv4(keyed, value)[:limit]

    return ip


def url_builder(env: ActionEnv, host: str | None) -> StrBuilder:
    keyed = env.keyed
    host = host or DEFAULT_URL_HOST

    def url(value: str, limit: int | None) -> str:
        d = keyed.digest(b"url\0", value.strip().casefold())
        scheme = "http" if value.lower().startswith("http://") else "https"
        path = f"{pick(_FIRST_LOWER, d, 0)}-{pick(_LAST_LOWER, d, 2)}"
        return fit_with_tag(f"{scheme}://{host}/{path}", "-", tag(d, 8), "", limit)

    return url


def lorem_builder(env: ActionEnv) -> StrBuilder:
    keyed = env.keyed
    corpus = LOREM_TEXT
    doubled = corpus * 2  # any window of up to len(corpus) characters is one slice

    def lorem(value: str, limit: int | None) -> str:
        size = len(value) if limit is None else min(len(value), limit)
        d = keyed.digest(b"text\0", value)
        start = int.from_bytes(d[:4], "big") % len(corpus)
        if size <= len(corpus):
            text = doubled[start : start + size]
        else:
            text = (corpus[start:] + corpus * (1 + size // len(corpus)))[:size]
        return text[:1].upper() + text[1:]

    return lorem


# the display name before an address in angle brackets: up to four words, optionally quoted
_DISPLAY_NAME = re.compile(
    r"(?P<q>\"?)(?P<name>(?:[^\W\d_][\w'.-]*[ \t]+){0,3}[^\W\d_][\w'.-]*)(?P=q)[ \t]*<(?P<mail>" + EMAIL_RE.pattern + r")>"
)


def scrub_builder(env: ActionEnv) -> StrBuilder:
    """Free text kept, but e-mail addresses, IP addresses (v4 and v6, any form: iptext.py) and
    phone numbers inside replaced."""
    email = email_builder(env, None)
    keyed = env.keyed
    keep = env.keep_values

    name = name_builder(env)

    def replace_email(match: re.Match[str]) -> str:
        found = match.group()
        return found if found.casefold() in keep else email(found, None)

    def replace_display_name(match: re.Match[str]) -> str:
        if match.group("mail").casefold() in keep:
            return match.group()
        return f"{match.group('q')}{name(match.group('name'), None)}{match.group()[match.end('name') - match.start():]}"

    def replace_v4(found: str) -> str:
        return _ipv4(keyed, found)

    def replace_v6(found: str) -> str:
        return str(ipaddress.IPv6Address(_ipv6_packed(keyed, canonical_ipv6(found))))

    def scrub(value: str, limit: int | None) -> str:
        if "@" in value:
            if "<" in value:  # "Jane Doe <jane@example.org>": the name goes with the address
                value = _DISPLAY_NAME.sub(replace_display_name, value)
            value = EMAIL_RE.sub(replace_email, value)
        digits = 0 if _DIGIT.search(value) is None else len(_DIGIT.findall(value))
        value = replace_ips(value, replace_v4, replace_v6)  # counts colons and dots first: cheap
        if digits >= 8:  # a phone number has at least 8 digits
            parts: list[str] = []
            last = 0
            for match in iter_phones(value):
                parts.append(value[last : match.start()])
                parts.append(_digits_rewritten(keyed, value[match.start() : match.end()]))  # (as written)
                last = match.end()
            if parts:
                parts.append(value[last:])
                value = "".join(parts)
        return value if limit is None else value[:limit]

    return scrub


_SMALL_NUMBER = re.compile(r"[+-]?\d{1,3}")  # a checkbox, a quantity, a rating: kept
_NUMBER = re.compile(r"[+-]?\d[\d ]*(?:[.,]\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")
_URL_VALUE = re.compile(r"(?i)(?:https?://|www\.)\S+")
GUESS_HINTS = ("name", "first_name", "last_name", "address", "text")
GUESS_TEXT_MODES = ("replace", "scrub", "redact")
GUESS_DATE_JITTER_DAYS = 365


def guess_builder(env: ActionEnv, hint: str = "text", text_mode: str = "replace") -> StrBuilder:
    """Pseudonymize by what the value looks like, whatever its column or key is called.

    E-mail → ``email``, IP → ``ip``, URL → ``url``, phone → ``phone``, ISO date → shifted by up to
    a year, other numbers → digits replaced, small numbers (``1``, ``-3``, ``250``) and empty
    values kept; any other text → the ``hint`` pseudonym (``name``, ``first_name``, ``last_name``,
    ``address``) or, without a hint, ``text_mode`` (lorem of the same length, scrubbed, redacted).
    For form submissions (Webform, WPForms, Gravity Forms...) whose keys site builders choose."""
    keep = env.keep_values
    keyed = env.keyed
    email = email_builder(env, None)
    ip = ip_builder(env)
    url = url_builder(env, None)
    phone = phone_builder(env)
    by_hint: dict[str, StrBuilder] = {
        "name": name_builder(env), "first_name": first_name_builder(env), "last_name": last_name_builder(env),
        "address": address_builder(env),
    }
    rest = by_hint.get(hint) or {"scrub": scrub_builder, "redact": redact_builder}.get(text_mode, lorem_builder)(env)

    def guess(value: str, limit: int | None) -> str:
        text = value.strip()
        if not text or _SMALL_NUMBER.fullmatch(text):
            return value[:limit]
        if "@" in text and EMAIL_RE.fullmatch(text):
            return value[:limit] if text.casefold() in keep else email(text, limit)
        if (":" in text or text.count(".") == 3) and _is_ip_text(text):
            return ip(text, limit)
        if _URL_VALUE.fullmatch(text):
            return url(text, limit)
        if _ISO_DATE.fullmatch(text):
            moved = _shift_text(keyed, text, GUESS_DATE_JITTER_DAYS)
            return (moved if moved is not None else _digits_rewritten(keyed, text))[:limit]
        if _NUMBER.fullmatch(text) or (text[0] in "+(0123456789" and any(m.start() == 0 and m.end() == len(text) for m in iter_phones(text))):
            return (phone(text, limit) if len(_DIGIT.findall(text)) >= 8 else _digits_rewritten(keyed, text)[:limit])
        return rest(value, limit)

    return guess


def _is_ip_text(text: str) -> bool:
    try:
        ipaddress.ip_address(canonical_ipv6(text) if ":" in text else text)
    except ValueError:
        return False
    return True


def hash_builder(env: ActionEnv, length: int | None) -> StrBuilder:
    keyed = env.keyed

    def hashed(value: str, limit: int | None) -> str:
        size = min(x for x in (length, limit, 64) if x is not None)
        return keyed.digest(b"hash\0", value).hex()[:size]

    return hashed


def redact_builder(env: ActionEnv) -> StrBuilder:
    return lambda value, limit: "redacted"[:limit]


def _memo(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A per-column cache of results: the last CACHE_ENTRIES distinct inputs (least recently used
    dropped first; functools' C implementation costs no more than a dict on inputs that never
    repeat, and keeps the values that do repeat, such as a commenter's address, as they recur)."""
    return functools.lru_cache(maxsize=CACHE_ENTRIES)(fn)


# --- wrapping a builder for one column --------------------------------------------------------


def _uniquified(builder: StrBuilder, env: ActionEnv) -> StrBuilder:
    """For UNIQUE columns with an action that may repeat (names, phones...): append a keyed tag."""
    keyed = env.keyed

    def unique(value: str, limit: int | None) -> str:
        return fit_with_tag(builder(value, None), "-", tag(keyed.digest(b"unique\0", value)), "", limit)

    return unique


def text_action(builder: StrBuilder, target: Target, env: ActionEnv, *, unique_safe: bool, keep_staff: bool = False,
                compiled_as: tuple[int, str] | None = None) -> ValueFn:
    """A builder made into a value function for one column: decoding, limits, cache, staff.

    ``compiled_as`` (the compiled module's pseudonym kind and e-mail suffix or URL host) names a
    builder the compiled module has too (email, username, IPv4, url): str and bytes values are
    then done in one C call, and the function built here takes the rest (IPv6, non-ASCII URLs,
    results over the column's length, other types)."""
    if target.unique and not unique_safe:
        builder = _uniquified(builder, env)
    limit = target.max_chars
    keep = env.keep_values if keep_staff else frozenset()

    def pseudonym(value: str) -> str:
        if not value or (keep and value.strip().casefold() in keep):
            return value
        return builder(value, limit)

    # values repeat (hostnames, a commenter's address), except in a UNIQUE column: no cache there
    on_text = pseudonym if target.unique else _memo(pseudonym)

    if target.kind == "binary":

        def on_bytes(value: Any) -> Any:
            if isinstance(value, (bytes, bytearray)):
                out = on_text(bytes(value).decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
                return out if limit is None else out[:limit]
            return on_text(str(value))

        return on_bytes

    def on_value(value: Any) -> Any:
        if value.__class__ is str:
            return on_text(value)
        if isinstance(value, (bytes, bytearray)):
            return on_text(bytes(value).decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return on_text(str(value))

    if compiled_as is not None and compiled is not None and env.keyed.states is not None and builder_is_plain(target, unique_safe):
        kind, suffix = compiled_as
        spec = (kind, *env.keyed.states, _FIRST_LOWER, _LAST_LOWER, suffix, -1 if limit is None else limit,
                keep or None)
        return functools.partial(compiled.pseudonym, spec, on_value)
    return on_value


def builder_is_plain(target: Target, unique_safe: bool) -> bool:
    """The builder runs as it is on a text column (no uniqueness tag added, no bytes cut)."""
    return target.kind != "binary" and (unique_safe or not target.unique)


# the compiled module's pseudonym kinds (clonekit/_speedups.c)
PSEUDO_EMAIL, PSEUDO_USERNAME, PSEUDO_IPV4, PSEUDO_URL = 0, 1, 2, 3


def _compiled_parts(fn: ValueFn) -> tuple[Callable[..., Any], tuple[Any, ...], ValueFn] | None:
    """(the compiled function, its spec, the Python function) of a compiled pseudonym's value
    function, or None for any other function."""
    if compiled is not None and isinstance(fn, functools.partial) and fn.func is compiled.pseudonym:
        return fn.func, fn.args[0], fn.args[1]
    return None


# --- actions with their own value handling ------------------------------------------------------


def _build_phone(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    text = text_action(phone_builder(env), target, env, unique_safe=False)
    if target.kind != "int":
        return text

    def phone_int(value: Any) -> Any:
        if isinstance(value, int) and value > 0:
            digits = str(value)
            return int(_phone_digits(env.keyed, digits))
        return value

    return phone_int


def _build_ip(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    text = text_action(ip_builder(env), target, env, unique_safe=False, compiled_as=(PSEUDO_IPV4, ""))
    keyed = env.keyed
    if target.kind == "int":
        return lambda value: int(ipaddress.IPv4Address(_ipv4(keyed, str(value)))) if isinstance(value, int) else value
    if target.kind == "binary":

        def ip_bytes(value: Any) -> Any:
            if isinstance(value, bytes) and len(value) == 16:
                return _ipv6_packed(keyed, value.hex())
            if isinstance(value, bytes) and len(value) == 4:
                return ipaddress.IPv4Address(_ipv4(keyed, value.hex())).packed
            return text(value)

        return ip_bytes
    return text


def _build_hash(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    length = spec.options.get("length")
    if target.kind == "int":
        keyed = env.keyed

        def hash_int(value: Any) -> Any:
            if not isinstance(value, int) or isinstance(value, bool):
                return value
            size = len(str(abs(value)))
            out = int.from_bytes(keyed.digest(b"hash\0", str(value))[:8], "big") % (10**size)
            return -out if value < 0 else out

        return hash_int
    return text_action(hash_builder(env, length), target, env, unique_safe=True)


def _build_set(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    value = spec.options.get("value")
    if isinstance(value, str) and target.max_chars is not None:
        value = value[: target.max_chars]
    if isinstance(value, str) and target.kind == "binary":
        value = value.encode()
    if isinstance(value, bool):
        value = int(value)
    return lambda _old: value


def _build_null(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    return lambda _old: None


def _build_text(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    mode = spec.options.get("mode", "scrub" if spec.name == "scrub" else "replace")
    builder = scrub_builder(env) if mode == "scrub" else lorem_builder(env)
    # scrubbed text keeps most of the original, so it is as unique as the original
    fn = text_action(builder, target, env, unique_safe=mode == "scrub")
    if mode == "scrub" and compiled is not None and target.kind != "binary":
        # text that opens none of scrub's gates (no '@', no IP shape, fewer than 8 digits) is
        # returned as it is without entering Python
        return functools.partial(compiled.scrub_gate, fn, -1 if target.max_chars is None else target.max_chars)
    return fn if mode == "scrub" else _compiled_words(fn, "text", target, env, guess=False)


def _jitter_seconds(keyed: Keyed, value: Any, days: int) -> int:
    span = days * 86400
    d = keyed.digest(b"date\0", str(value))
    return int.from_bytes(d[:8], "big") % (2 * span + 1) - span


_DATE_TEXT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def _shift_text(keyed: Keyed, text: str, days: int) -> str | None:
    """An ISO date or date-time in text, shifted by up to ± ``days`` in its own format; None when
    the text is not one."""
    for fmt in _DATE_TEXT_FORMATS:
        try:
            parsed = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return (parsed + dt.timedelta(seconds=_jitter_seconds(keyed, parsed.isoformat(), days))).strftime(fmt)
    return None


def _build_date(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    days = int(spec.options.get("jitter_days", 30))
    keyed = env.keyed

    def jitter(value: Any) -> Any:
        if days == 0:
            return value
        if isinstance(value, dt.datetime):
            return value + dt.timedelta(seconds=_jitter_seconds(keyed, value.isoformat(), days))
        if isinstance(value, dt.date):
            return value + dt.timedelta(days=_jitter_seconds(keyed, value.isoformat(), days) // 86400)
        if isinstance(value, int) and not isinstance(value, bool):
            return value + _jitter_seconds(keyed, value, days) if value > 0 else value
        if isinstance(value, (str, bytes)):
            out = _shift_text(keyed, value.decode() if isinstance(value, bytes) else value, days)
            if out is not None:
                return out.encode() if isinstance(value, bytes) else out
        return value

    return jitter


PASSWORD_FORMATS = ("auto", "wordpress", "drupal", "bcrypt", "argon2id", "argon2i", "mediawiki", "joomla", "magento2", "md5", "plain")


def _build_password(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    fmt = spec.options.get("format", "auto")
    keyed = env.keyed
    password = env.dev_password
    salts: dict[str, bytes] = {}

    def hashed(kind: str) -> str:
        salt = salts.get(kind)
        if salt is None:
            salt = salts[kind] = keyed.digest(b"password-salt\0", kind)
        return passwords.hash_for(kind, password, salt)  # cached: computed once per run and format

    def pass_fn(value: Any) -> Any:
        if value is None or value == "" or value == b"":
            return value
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        out = hashed(passwords.format_of(text) if fmt == "auto" else fmt)
        return out.encode() if isinstance(value, bytes) else out

    return pass_fn


# --- structured values: JSON paths and PHP-serialized ------------------------------------------

_PATH_STEP = re.compile(r"\.\.(?P<deep>[^.\[]+)|\.(?P<key>[^.\[]+)|\[(?P<index>\d+|\*)\]|\[['\"](?P<qkey>[^'\"]+)['\"]\]")


def parse_json_path(path: str) -> tuple[tuple[str, Any], ...]:
    """``$.a.b[0].c``, ``$.items[*].email``, ``$..email`` (any depth). Raises ValueError."""
    if not path.startswith("$"):
        raise ValueError("a JSON path starts with $")
    steps: list[tuple[str, Any]] = []
    pos = 1
    while pos < len(path):
        match = _PATH_STEP.match(path, pos)
        if not match:
            raise ValueError(f"cannot read the path at {path[pos:]!r}")
        pos = match.end()
        if match.group("deep"):
            steps.append(("deep", match.group("deep")))
        elif match.group("key") is not None:
            steps.append(("key", "*" if match.group("key") == "*" else match.group("key")))
        elif match.group("qkey") is not None:
            steps.append(("key", match.group("qkey")))
        else:
            index = match.group("index")
            steps.append(("index", "*" if index == "*" else int(index)))
    if not steps:
        raise ValueError("the path selects the whole document; use a column action instead")
    return tuple(steps)


def _json_apply(node: Any, steps: tuple[tuple[str, Any], ...], fn: ValueFn) -> Any:
    if not steps:
        if node is None or isinstance(node, (dict, list, bool)):
            return node
        return fn(node if isinstance(node, str) else str(node))
    kind, arg = steps[0]
    rest = steps[1:]
    if kind == "key" and isinstance(node, dict):
        if arg == "*":
            for k in node:
                node[k] = _json_apply(node[k], rest, fn)
        elif arg in node:
            node[arg] = _json_apply(node[arg], rest, fn)
    elif kind == "index" and isinstance(node, list):
        if arg == "*":
            for i in range(len(node)):
                node[i] = _json_apply(node[i], rest, fn)
        elif arg < len(node):
            node[arg] = _json_apply(node[arg], rest, fn)
    elif kind == "deep":
        if isinstance(node, dict):
            for k in list(node):
                if k == arg:
                    node[k] = _json_apply(node[k], rest, fn)
                else:
                    node[k] = _json_apply(node[k], steps, fn)
        elif isinstance(node, list):
            for i in range(len(node)):
                node[i] = _json_apply(node[i], steps, fn)
    return node


def _build_json(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    inner = Target(kind="text")
    compiled = [(parse_json_path(path), build_action(sub, inner, env)) for path, sub in spec.options["paths"].items()]
    fallback = text_action(scrub_builder(env), target, env, unique_safe=True)

    @_memo
    def on_text(value: str) -> str:
        try:
            doc = json.loads(value)
        except ValueError:
            return fallback(value)  # not JSON: still scrub what looks personal
        separators = (", ", ": ") if ", " in value else (",", ":")
        before = json.dumps(doc, ensure_ascii=False, separators=separators)
        for steps, fn in compiled:
            doc = _json_apply(doc, steps, fn)
        out = json.dumps(doc, ensure_ascii=False, separators=separators)
        if out == before:
            return value  # untouched documents keep their exact bytes
        return out  # never cut: a truncated document is invalid; the server refuses it loudly

    def json_fn(value: Any) -> Any:
        if isinstance(value, bytes):
            return on_text(value.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return on_text(value) if isinstance(value, str) else value

    return json_fn


def _php_key_name(key: bytes | int | None) -> str | None:
    if not isinstance(key, bytes):
        return None
    # private and protected object properties are "\0Class\0name" and "\0*\0name"
    return key.rpartition(b"\0")[2].decode("utf-8", "replace").casefold()


def _build_php(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    inner = Target(kind="text")
    by_key = [(pattern.casefold(), build_action(sub, inner, env)) for pattern, sub in spec.options.get("keys", {}).items()]
    values_mode = spec.options.get("values", "scrub")
    scrub = scrub_builder(env)
    guess = guess_builder(env)
    redact = redact_builder(env)

    def text_key_fn(fn: ValueFn) -> BytesFn:
        fast = _compiled_parts(fn)
        fn = _python_behind(fn)  # a word builder's Python function: its cache serves the keys' repeated values

        def keyed_value(raw: bytes) -> bytes:
            out = fn(raw.decode("utf-8", "surrogateescape"))
            return raw if out is None else str(out).encode("utf-8", "surrogateescape")

        if fast is not None:  # the pseudonym as bytes, in C; what it hands over as above
            return functools.partial(fast[0], fast[1], keyed_value)
        return keyed_value

    def keep_value(raw: bytes) -> bytes:
        return raw

    def redact_value(raw: bytes) -> bytes:
        return redact("", None).encode() if raw else raw

    def guess_value(raw: bytes) -> bytes:
        return guess(raw.decode("utf-8", "surrogateescape"), None).encode("utf-8", "surrogateescape") if raw else raw

    may_hold_personal = _SCRUB_TARGET_BYTES.search

    def scrub_value(raw: bytes) -> bytes:
        if may_hold_personal(raw) is None:
            # ASCII without an address, a number or a colon (an IPv6 address may hold no decimal
            # digit: dead:beef::1), or an empty string: nothing for scrub to replace
            return raw
        return scrub(raw.decode("utf-8", "surrogateescape"), None).encode("utf-8", "surrogateescape")

    by_value: BytesFn = {"keep": keep_value, "redact": redact_value, "guess": guess_value}.get(values_mode, scrub_value)
    key_fns: dict[Hashable, BytesFn] = {}  # array keys repeat: each key's function is found once

    def fn_for(key: bytes | int | None) -> BytesFn:
        name = _php_key_name(key) if by_key else None
        found = None
        if name is not None:
            found = next((fn for pattern, fn in by_key if fnmatchcase(name, pattern)), None)
        chosen = by_value if found is None else text_key_fn(found)
        if len(key_fns) < CACHE_ENTRIES:
            key_fns[key] = chosen
        return chosen

    # one function per key; the compiled walk looks it up itself and skips scrub where it changes nothing
    rewrite = phpserialize.RewriteByKey(key_fns, fn_for, scrub_value if by_value is scrub_value else None)
    limit = target.max_chars

    @_memo
    def on_bytes(value: bytes) -> bytes:
        try:
            return phpserialize.rewrite_strings(value, rewrite)
        except phpserialize.PhpSerializeError:
            # not serialized (or truncated): treat as free text, scrubbed
            out = scrub(value.decode("utf-8", "surrogateescape"), None).encode("utf-8", "surrogateescape")
            return out if limit is None else out[:limit]

    def php_fn(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return on_bytes(bytes(value))
        if isinstance(value, str):
            return on_bytes(value.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")
        return value

    if compiled is not None:
        # bytes straight into the compiled walk (serialized values rarely repeat: no cache of
        # values; its keys are resolved once, and scrub's gate and the pseudonyms run on a value's
        # bytes); what it hands over, and anything else, through php_fn
        walk = (rewrite.fns, rewrite.fn_for, rewrite.keeps_plain, compiled.key_cache())
        return functools.partial(compiled.php_value, walk, php_fn)
    return php_fn


# --- the registry ---------------------------------------------------------------------------

OptionCheck = Callable[[Any], "str | None"]  # returns what was expected, or None when fine
STRINGISH = frozenset({"text", "binary"})
ANY_KIND = frozenset({"text", "binary", "int", "decimal", "temporal", "enum", "other"})


def _is_domain(value: Any) -> str | None:
    if value == "keep" or (isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value)):
        return None
    return "keep or a domain such as example.com"


def _is_host(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d+)?", value):
        return None
    return "a host name such as www.example.com"


def _one_of(*choices: str) -> OptionCheck:
    return lambda value: None if value in choices else " | ".join(choices)


def _int_range(low: int, high: int) -> OptionCheck:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"an integer from {low} to {high}"

    return check


def _scalar(value: Any) -> str | None:
    return None if value is None or isinstance(value, (str, int, float, bool)) else "a string, a number or null"


@dataclass(frozen=True)
class ActionDef:
    name: str
    build: Callable[[ActionSpec, Target, ActionEnv], ValueFn]
    kinds: frozenset[str]
    unique_safe: bool  # different inputs give different outputs
    options: Mapping[str, OptionCheck] = field(default_factory=dict)
    applies_to_null: bool = False  # ``set`` writes its value over NULL too
    short_option: str | None = None  # ``{set: ""}`` means ``{set: {value: ""}}``
    keeps_staff: bool = False  # values listed in keep_accounts pass unchanged


def _simple(builder_factory: Callable[[ActionEnv], StrBuilder], *, unique_safe: bool,  # noqa: ANN202
            compiled_kind: str | None = None):
    def build(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
        fn = text_action(builder_factory(env), target, env, unique_safe=unique_safe)
        return fn if compiled_kind is None else _compiled_words(fn, compiled_kind, target, env, guess=False)

    return build


def _build_email(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    domain = spec.options.get("domain")
    fast = None if domain == "keep" else (PSEUDO_EMAIL, "@" + (domain or DEFAULT_EMAIL_DOMAIN))
    return text_action(email_builder(env, domain), target, env, unique_safe=True, keep_staff=True, compiled_as=fast)


def _build_username(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    return text_action(username_builder(env), target, env, unique_safe=True, keep_staff=True,
                       compiled_as=(PSEUDO_USERNAME, ""))


def _build_url(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    host = spec.options.get("host")
    return text_action(url_builder(env, host), target, env, unique_safe=False,
                       compiled_as=(PSEUDO_URL, host or DEFAULT_URL_HOST))


_GUESS_HINT_KINDS = {"text": 0, "name": 1, "first_name": 2, "last_name": 3, "address": 4}  # clonekit/_speedups.c


def _compiled_words(fn: ValueFn, kind: str, target: Target, env: ActionEnv, *, guess: bool) -> ValueFn:
    """``fn`` (text_action's value function of a word builder: name, first_name, last_name,
    address, or lorem for text) with the compiled module in front: str values in C, where it is
    sure (with ``guess``, guess's tests first: clonekit/_speedups.c's guess_value); anything else
    through fn and its cache. ``fn`` itself without the compiled module, or on a column where the
    builder does not run as it is (UNIQUE, binary)."""
    if compiled is None or env.keyed.states is None or not builder_is_plain(target, False):
        return fn
    spec = (_GUESS_HINT_KINDS[kind], *env.keyed.states, _FIRST_LOWER, _LAST_LOWER, FIRST_NAMES, LAST_NAMES,
            STREET_SUFFIXES, LOREM_TEXT, -1 if target.max_chars is None else target.max_chars, env.keep_values or None,
            guess)
    return functools.partial(compiled.guess_value, spec, fn)


def _python_behind(fn: ValueFn) -> ValueFn:
    """The Python value function behind a compiled one (a pseudonym from text_action or a word
    builder from _compiled_words), or ``fn`` itself."""
    fast = _compiled_parts(fn)
    if fast is not None:
        return fast[2]
    if compiled is not None and isinstance(fn, functools.partial) and fn.func is compiled.guess_value:
        return fn.args[1]  # (spec, fn): _compiled_words's layout
    return fn


def _build_guess(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    hint, text_mode = spec.options.get("hint", "text"), spec.options.get("text", "replace")
    fn = text_action(guess_builder(env, hint, text_mode), target, env, unique_safe=False)
    if hint == "text" and text_mode != "replace":
        return fn  # scrubbed or redacted text: Python
    # blank values, small numbers, e-mail addresses and digit-free text (the hint's pseudonym or
    # lorem) in C; the rest through fn and its cache
    return _compiled_words(fn, hint, target, env, guess=True)


def _build_keep(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    return lambda value: value


ACTIONS: dict[str, ActionDef] = {
    a.name: a
    for a in (
        ActionDef("keep", _build_keep, ANY_KIND, True),
        ActionDef("null", _build_null, ANY_KIND, True),
        ActionDef("set", _build_set, ANY_KIND, False, {"value": _scalar}, applies_to_null=True, short_option="value"),
        ActionDef("email", _build_email, STRINGISH, True, {"domain": _is_domain}, short_option="domain", keeps_staff=True),
        ActionDef("username", _build_username, STRINGISH, True, keeps_staff=True),
        ActionDef("first_name", _simple(first_name_builder, unique_safe=False, compiled_kind="first_name"), STRINGISH, False),
        ActionDef("last_name", _simple(last_name_builder, unique_safe=False, compiled_kind="last_name"), STRINGISH, False),
        ActionDef("name", _simple(name_builder, unique_safe=False, compiled_kind="name"), STRINGISH, False),
        ActionDef("phone", _build_phone, STRINGISH | {"int"}, False),
        ActionDef("address", _simple(address_builder, unique_safe=False, compiled_kind="address"), STRINGISH, False),
        ActionDef("ip", _build_ip, STRINGISH | {"int"}, False),
        ActionDef("url", _build_url, STRINGISH, False, {"host": _is_host}, short_option="host"),
        ActionDef("text", _build_text, STRINGISH, False, {"mode": _one_of("replace", "scrub")}, short_option="mode"),
        ActionDef("scrub", _build_text, STRINGISH, True),
        ActionDef("hash", _build_hash, STRINGISH | {"int"}, True, {"length": _int_range(4, 64)}, short_option="length"),
        ActionDef("redact", _simple(redact_builder, unique_safe=False), STRINGISH, False),
        ActionDef("date", _build_date, frozenset({"temporal", "int", "text"}), False, {"jitter_days": _int_range(0, 36500)}, short_option="jitter_days"),
        ActionDef("password", _build_password, STRINGISH, False, {"format": _one_of(*PASSWORD_FORMATS)}, short_option="format"),
        ActionDef("json", _build_json, STRINGISH, False, {"paths": lambda v: None}),
        ActionDef("php", _build_php, STRINGISH, False, {"keys": lambda v: None, "values": _one_of("scrub", "keep", "redact", "guess")}),
        ActionDef("guess", _build_guess, STRINGISH, False, {"hint": _one_of(*GUESS_HINTS), "text": _one_of(*GUESS_TEXT_MODES)},
                  short_option="hint"),
    )
}


def build_action(spec: ActionSpec, target: Target, env: ActionEnv) -> ValueFn:
    """The value function for one column (or one path inside a JSON/PHP value)."""
    return ACTIONS[spec.name].build(spec, target, env)

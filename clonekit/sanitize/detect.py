"""Recognising personal data: by column name (strict mode, scan) and by value (scan, text scrub)."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

# --- by column name ------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")

TEXT_KINDS = frozenset({"text", "binary"})
NUMBER_KINDS = frozenset({"int"})
TEMPORAL_KINDS = frozenset({"temporal"})

# (reason, token sets that must all be present, column kinds the reason applies to)
_NAME_PATTERNS: tuple[tuple[str, tuple[frozenset[str], ...], frozenset[str]], ...] = (
    ("email", (frozenset({"mail"}), frozenset({"email"}), frozenset({"emailaddress"}), frozenset({"mailaddress"})), TEXT_KINDS),
    (
        "ip",
        (frozenset({"ip"}), frozenset({"ipaddress"}), frozenset({"ipv4"}), frozenset({"ipv6"}), frozenset({"hostname"}),
         frozenset({"remote", "addr"}), frozenset({"remoteaddr"}), frozenset({"clientip"})),
        TEXT_KINDS | NUMBER_KINDS,
    ),
    (
        "phone",
        (frozenset({"phone"}), frozenset({"telephone"}), frozenset({"tel"}), frozenset({"mobile"}), frozenset({"fax"}),
         frozenset({"phonenumber"}), frozenset({"cellphone"})),
        TEXT_KINDS | NUMBER_KINDS,
    ),
    ("first name", (frozenset({"first", "name"}), frozenset({"firstname"}), frozenset({"givenname"}), frozenset({"forename"})), TEXT_KINDS),
    ("last name", (frozenset({"last", "name"}), frozenset({"lastname"}), frozenset({"surname"}), frozenset({"familyname"})), TEXT_KINDS),
    ("person name", (frozenset({"full", "name"}), frozenset({"fullname"}), frozenset({"display", "name"}), frozenset({"displayname"})), TEXT_KINDS),
    (
        "address",
        (frozenset({"address"}), frozenset({"street"}), frozenset({"postcode"}), frozenset({"zipcode"}), frozenset({"zip"}),
         frozenset({"postal", "code"}), frozenset({"postalcode"})),
        TEXT_KINDS | NUMBER_KINDS,
    ),
    ("iban", (frozenset({"iban"}), frozenset({"bank", "account"}), frozenset({"bankaccount"})), TEXT_KINDS),
    ("card number", (frozenset({"card", "number"}), frozenset({"cardnumber"}), frozenset({"creditcard"}), frozenset({"credit", "card"}), frozenset({"cc", "number"})), TEXT_KINDS | NUMBER_KINDS),
    ("national id", (frozenset({"ssn"}), frozenset({"social", "security"}), frozenset({"passport"})), TEXT_KINDS | NUMBER_KINDS),
    ("date of birth", (frozenset({"birth"}), frozenset({"birthday"}), frozenset({"birthdate"}), frozenset({"dob"})), TEXT_KINDS | TEMPORAL_KINDS),
    ("password", (frozenset({"pass"}), frozenset({"password"}), frozenset({"passwd"}), frozenset({"pwd"})), TEXT_KINDS),
    ("login", (frozenset({"username"}), frozenset({"login"}), frozenset({"nickname"})), TEXT_KINDS),
)


def name_tokens(column_name: str) -> frozenset[str]:
    spaced = _CAMEL.sub("_", column_name)
    return frozenset(t.lower() for t in _SPLIT.split(spaced) if t)


@lru_cache(maxsize=4096)
def personal_name_reason(column_name: str, kind: str) -> str | None:
    """Why a column's NAME suggests personal data (``"email"``, ``"ip"``...), or None.

    Works on name tokens (``comment_author_IP`` → comment, author, ip) so ``zip`` or
    ``description`` do not look like ``ip``."""
    tokens = name_tokens(column_name)
    for reason, alternatives, kinds in _NAME_PATTERNS:
        if kind not in kinds:
            continue
        for needed in alternatives:
            if needed <= tokens:
                return reason
    return None


# --- by value ------------------------------------------------------------------------------

EMAIL_RE = re.compile(r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}\b")
IPV4_RE = re.compile(r"(?<![\d.])(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?![\d.])")
# A phone number: optional +country, groups of digits separated by space, dot, dash or in
# parentheses. A separator or a leading + is required, so bare integers (ids, timestamps) are not phones.
PHONE_RE = re.compile(
    # (area code) then groups: German area codes have up to 5 digits, "(04549) 24780"
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?\d{1,6}(?:[ .-]\d{1,6}){0,6}|\d{1,6}(?:[ .-]\d{1,6}){1,6})(?![\w-]|\.\d)"
    r"|(?<![\w+])\+\d{8,15}(?!\w)"
    # national numbers written without separators: "0590529992"
    r"|(?<![\w+.-])0\d{8,11}(?![\w-]|\.\d)"
)
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$|^\d{1,2}:\d{2}")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
CARD_RE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def is_phone(text: str) -> bool:
    """A phone-shaped match: 8 to 15 digits, not a date, an IP or a version number."""
    digits = _digits(text)
    if not 8 <= len(digits) <= 15:
        return False
    if _DATE_LIKE.match(text.strip()) or IPV4_RE.fullmatch(text.strip()):
        return False
    return True


def iter_phones(text: str):  # noqa: ANN201 - generator of re.Match
    for match in PHONE_RE.finditer(text):
        if is_phone(match.group()):
            yield match


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_card_number(text: str) -> bool:
    """13-19 digits, a known card prefix (Visa, Mastercard, Amex, Discover, JCB...) and a valid Luhn sum."""
    digits = _digits(text)
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return False
    return bool(re.match(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9])|35", digits))


@lru_cache(maxsize=1)
def _name_sets() -> tuple[frozenset[str], frozenset[str]]:
    from .wordlists import FIRST_NAMES, LAST_NAMES

    return frozenset(n.casefold() for n in FIRST_NAMES), frozenset(n.casefold() for n in LAST_NAMES)


def is_person_name(text: str) -> bool:
    """``Jane Doe`` / ``Doe, Jane`` / a known first or last name alone."""
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    if not 1 <= len(words) <= 4 or not all(re.fullmatch(r"[^\W\d_][^\W\d_'.-]*", w) for w in words):
        return False
    firsts, lasts = _name_sets()
    folded = [w.casefold() for w in words]
    if len(words) == 1:
        return folded[0] in firsts or folded[0] in lasts
    return any(w in firsts for w in folded) and all(w[:1].isupper() for w in words)


def value_kinds(text: str, keep: frozenset[str] = frozenset()) -> set[str]:
    """Kinds of personal data one value is, or contains (for scan). Addresses in ``keep`` (the
    staff accounts) are not personal data to report."""
    kinds: set[str] = set()
    stripped = text.strip()
    if not stripped or stripped.casefold() in keep:
        return kinds
    if "@" in text and any(m.group().casefold() not in keep for m in EMAIL_RE.finditer(text)):
        kinds.add("email")
    if len(stripped) <= 45 and is_ip(stripped):
        kinds.add("ip")
    elif len(stripped) <= 24 and PHONE_RE.fullmatch(stripped) and is_phone(stripped):
        kinds.add("phone")
    elif len(stripped) > 24 and any(True for _ in iter_phones(text)):
        kinds.add("phone in text")
    if any(iban_valid(m.group()) for m in IBAN_RE.finditer(text.upper())):
        kinds.add("iban")
    for match in CARD_RE.finditer(text):
        if is_card_number(match.group()):
            kinds.add("card")
            break
    if len(stripped) <= 60 and is_person_name(stripped):
        kinds.add("person name")
    return kinds

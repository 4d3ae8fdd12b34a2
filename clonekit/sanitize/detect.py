"""Recognising personal data: by column name (strict mode, scan) and by value (scan, text scrub)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

# --- by column name ------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[\W_]+")

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
    (
        "first name",
        (frozenset({"first", "name"}), frozenset({"firstname"}), frozenset({"given", "name"}), frozenset({"givenname"}),
         frozenset({"forename"}), frozenset({"prenom"}), frozenset({"vorname"}), frozenset({"voornaam"}),
         frozenset({"imie"}), frozenset({"primer", "nombre"}), frozenset({"primeiro", "nome"})),
        TEXT_KINDS,
    ),
    (
        "last name",
        (frozenset({"last", "name"}), frozenset({"lastname"}), frozenset({"surname"}), frozenset({"family", "name"}),
         frozenset({"familyname"}), frozenset({"nachname"}), frozenset({"familienname"}), frozenset({"achternaam"}),
         frozenset({"apellido"}), frozenset({"apellidos"}), frozenset({"cognome"}), frozenset({"sobrenome"}),
         frozenset({"apelido"}), frozenset({"nazwisko"}), frozenset({"nom", "famille"})),
        TEXT_KINDS,
    ),
    (
        "person name",
        (frozenset({"full", "name"}), frozenset({"fullname"}), frozenset({"real", "name"}), frozenset({"realname"}),
         frozenset({"display", "name"}), frozenset({"displayname"}), frozenset({"nom", "complet"}),
         frozenset({"vollername"}), frozenset({"voller", "name"}), frozenset({"nombre", "completo"}),
         frozenset({"nome", "completo"}), frozenset({"volledige", "naam"}), frozenset({"contact", "name"}),
         frozenset({"customer", "name"}), frozenset({"author", "name"}), frozenset({"billing", "name"}),
         frozenset({"shipping", "name"})),
        TEXT_KINDS,
    ),
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
    ("login", (frozenset({"username"}), frozenset({"user", "name"}), frozenset({"login"}), frozenset({"nickname"})), TEXT_KINDS),
)


# Words that name a person in one language and anything in others (``nom`` of a product,
# ``nombre`` of a category): they count only alone or with words that say whose name it is.
_AMBIGUOUS_NAME_WORDS = {"nom": "last name", "nombre": "first name", "nome": "person name", "naam": "person name",
                         "name": "person name"}
_PERSON_CONTEXT = frozenset({
    "user", "users", "customer", "client", "clients", "contact", "author", "member", "person", "persona", "people",
    "billing", "shipping", "subscriber", "employee", "patient", "student", "owner", "utilisateur", "adherent",
    "kunde", "benutzer", "usuario", "cliente", "utente", "gebruiker", "klant", "uzytkownik", "klient", "signer",
    "applicant", "guest", "buyer", "recipient", "sender", "delivery", "invoice", "account", "profile", "the", "de",
    "du", "do", "da", "del", "van",
})
_NAME_EXCLUDED_TOKENS = frozenset({"name"})  # "name" alone is every table's label: only in context


def name_tokens(column_name: str) -> frozenset[str]:
    """Lower-case ASCII words of a column name: ``comment_author_IP`` → comment, author, ip;
    ``prénom`` → prenom."""
    spaced = _CAMEL.sub("_", column_name)
    plain = unicodedata.normalize("NFKD", spaced).encode("ascii", "ignore").decode()
    return frozenset(t.lower() for t in _SPLIT.split(plain) if t)


def _ambiguous_name_reason(tokens: frozenset[str]) -> str | None:
    for word, reason in _AMBIGUOUS_NAME_WORDS.items():
        if word not in tokens:
            continue
        rest = tokens - {word}
        if word in _NAME_EXCLUDED_TOKENS and not rest:
            continue
        if rest <= _PERSON_CONTEXT:
            return reason
    return None


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
    if kind in TEXT_KINDS:
        return _ambiguous_name_reason(tokens)
    return None


# --- by value ------------------------------------------------------------------------------

EMAIL_RE = re.compile(r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}\b")
IPV4_RE = re.compile(r"(?<![\d.])(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?![\d.])")
# A phone number: optional +country, groups of digits separated by space, dot, dash or in
# parentheses. A separator or a leading + is required, so bare integers (ids, timestamps) are not phones.
PHONE_RE = re.compile(
    # (area code) then groups: German area codes have up to 5 digits, "(04549) 24780"
    # Subscriber parts run to 8 digits and a slash may separate the area code (German: "030 12345678",
    # "0171/1234567"); dates are told apart by is_phone.
    r"(?<![\w+./-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?\d{1,8}(?:[ ./-]\d{1,8}){0,6}|\d{1,6}(?:[ ./-]\d{1,8}){1,6})(?![\w/-]|\.\d)"
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


_EIGHT_DIGITS = re.compile(r"\d(?:\D*\d){7}")  # a phone has 8 digits or more: text with fewer has none


class _AsciiDigits(dict):  # type: ignore[type-arg]
    """str.translate table: every decimal digit of any script to its ASCII digit, anything else
    kept (filled as met). One code point for one: positions stay those of the text."""

    def __missing__(self, code: int) -> int:
        char = chr(code)
        self[code] = ord("0") + unicodedata.decimal(char) if char.isdecimal() else code
        return self[code]  # type: ignore[no-any-return]


_ASCII_DIGITS = _AsciiDigits()


def ascii_digits(text: str) -> str:
    """``text`` with digits of other scripts (full-width ０-９, Arabic-Indic ٠-٩...) as ASCII ones,
    the same length: a phone number typed in them is found as its ASCII twin is."""
    return text if text.isascii() else text.translate(_ASCII_DIGITS)


def iter_phones(text: str):  # noqa: ANN201 - generator of re.Match
    """The phone numbers in ``text``, as matches over ``ascii_digits(text)``: use their spans
    (``text[m.start():m.end()]``), not ``m.group()``, to get the number as written."""
    if len(text) > 24 and _EIGHT_DIGITS.search(text) is None:  # long text: one cheap scan first
        return
    for match in PHONE_RE.finditer(ascii_digits(text)):
        if is_phone(match.group()):
            yield match


def is_ip(text: str) -> bool:
    if "." not in text and ":" not in text:  # neither dotted nor colon-separated: no address (no exception to raise)
        return False
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


NameSets = tuple[frozenset[str], frozenset[str]]
_NAME_DATA = Path(__file__).with_name("data") / "person_names.txt"
_NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-])*")
# particles of surnames written in several words: "Le Gall", "van der Berg", "de la Fuente"
_PARTICLES = frozenset({"le", "la", "de", "du", "des", "da", "das", "do", "dos", "di", "del", "della", "van", "von",
                        "der", "den", "ter", "ten", "zu", "y", "e", "mac", "mc", "o'", "st", "saint", "sainte", "d'"})


def read_name_list(text: str) -> NameSets:
    """The ``[first]`` and ``[last]`` sections of a person-name list, case-folded."""
    firsts: set[str] = set()
    lasts: set[str] = set()
    current: set[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line in ("[first]", "[last]"):
            current = firsts if line == "[first]" else lasts
        elif current is not None:
            current.add(line.casefold())
    return frozenset(firsts), frozenset(lasts)


@lru_cache(maxsize=1)
def name_sets() -> NameSets:
    """First and last names of the languages agencies serve (data/person_names.txt, drawn from
    Faker's person providers by scripts/person_names.py) and the pseudonym word lists."""
    from .wordlists import FIRST_NAMES, LAST_NAMES

    firsts, lasts = read_name_list(_NAME_DATA.read_text(encoding="utf-8"))
    return (firsts | {n.casefold() for n in FIRST_NAMES}, lasts | {n.casefold() for n in LAST_NAMES})


def is_person_name(text: str, names: NameSets | None = None) -> bool:
    """``Jane Doe`` / ``Doe, Jane`` / ``Erwan Le Gall`` / a known first or last name alone.

    Two to five capitalised words: a known first name among them, or a known surname (one word
    or several, "Le Gall") ending the value or starting it before a comma."""
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    if not 1 <= len(words) <= 5 or not all(_NAME_WORD.fullmatch(w) for w in words):
        return False
    firsts, lasts = names or name_sets()
    folded = [w.casefold() for w in words]
    if len(words) == 1:  # machine words ("comment", "publish") are lower case; names are not
        return words[0][:1].isupper() and (folded[0] in firsts or folded[0] in lasts)
    if not all(w[:1].isupper() or f in _PARTICLES for w, f in zip(words, folded, strict=True)):
        return False
    if any(w in firsts or "-" in w and all(p in firsts for p in w.split("-")) for w in folded):
        return True  # "Jean-Pierre Martin": each part of a compound first name is known
    # a surname of several words ("Erwan Le Gall", "Maria van Dijk") at the end: a strong sign
    # even with a first name the list lacks. A single known surname after an unknown word is
    # not enough ("Sample Page", "Summer Sale" are page titles).
    for cut in range(1, len(words) - 1):
        if folded[cut] in _PARTICLES and (" ".join(folded[cut:]) in lasts or folded[-1] in lasts):
            return len(words[0]) > 1
    return False


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
    elif len(stripped) <= 24 and PHONE_RE.fullmatch(digits_ascii := ascii_digits(stripped)) and is_phone(digits_ascii):
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


# --- what the values are stored as ---------------------------------------------------------

_HEX_IPV4 = re.compile(r"[0-9A-F]{8}")  # MediaWiki's IPUtils::toHex of an IPv4 address
_HEX_IPV6 = re.compile(r"v6-([0-9A-F]{32})")  # ... and of an IPv6 address
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # below 32 but TAB, LF, CR
_BASE64 = re.compile(rb"[A-Za-z0-9+/_-]{64,}={0,2}")
_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\x04\x22\x4d\x18", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def decoded_ip(value: object, binary_width: int | None = None) -> str | None:
    """An IP address stored encoded: 4 or 16 bytes in a BINARY/VARBINARY(4|16) column
    (``INET6_ATON``), or hex text (``C0A80001``, ``v6-20010DB8...``); None otherwise.

    16 bytes are taken for an address only where addresses live (IPv4-mapped, global unicast
    2000::/3, unique local fc00::/7, link local fe80::/10), never a UUID's version layout."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if binary_width not in (4, 16) or len(raw) not in (4, 16):
            # MediaWiki keeps its hex form in VARBINARY/TINYBLOB columns (ipb_range_start...)
            return decoded_ip(raw.decode("ascii"), None) if raw.isascii() and 8 <= len(raw) <= 35 else None
        if len(raw) == 4:
            return str(ipaddress.IPv4Address(raw))
        address = ipaddress.IPv6Address(raw)
        uuid_like = raw[6] >> 4 in (1, 4, 5, 6, 7) and raw[8] >> 6 == 2
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        if (not uuid_like and (raw[0] >> 5 == 1 or raw[0] & 0xFE == 0xFC or raw[:2] == b"\xfe\x80")):
            return str(address)
        return None
    if isinstance(value, str):
        text = value.strip()
        if _HEX_IPV4.fullmatch(text):
            return str(ipaddress.IPv4Address(bytes.fromhex(text)))
        match = _HEX_IPV6.fullmatch(text)
        if match:
            return str(ipaddress.IPv6Address(bytes.fromhex(match.group(1))))
    return None


def opaque_kind(value: object) -> str | None:
    """Why clonekit cannot read a value: ``compressed``, ``binary`` or ``encoded`` (long base64),
    or None for text it can inspect."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        return None
    if len(raw) < 16:
        return None
    if raw.startswith(_MAGIC):
        return "compressed"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw[: len(raw) - 4].decode("utf-8", "replace")  # a value cut short may end mid-character
        if text.count("\ufffd") > len(text) // 50:
            return "binary"
    controls = len(_CONTROL_CHARS.findall(text))
    if controls > len(text) // 20:
        return "binary"
    if len(raw) >= 128 and _BASE64.fullmatch(raw.strip()):
        return "encoded"
    return None


# Tables whose rows copy other data in a form clonekit cannot inspect row by row: rendered
# pages, serialized objects, session payloads, search indexes of every page's text.
_SENSITIVE_TABLE_WORDS = (
    ("cache", "a cache"), ("session", "a session store"), ("sessions", "a session store"),
    ("searchindex", "a search index"), ("search", "a search index"), ("fulltext", "a search index"),
)


def sensitive_table_reason(table_name: str) -> str | None:
    """``"a cache"`` for ``cache_page`` / ``objectcache`` / ``wp_wc_sessions``..., or None."""
    tokens = name_tokens(table_name)
    for word, reason in _SENSITIVE_TABLE_WORDS:
        if word in tokens or any(t.endswith(word) and word in ("cache", "searchindex") for t in tokens):
            return reason
    return None

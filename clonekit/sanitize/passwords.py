"""Password hashes in the applications' own formats, so developers log in with one known password.

- WordPress: phpass portable hashes ``$P$`` (md5 iterated; every WordPress version accepts them).
- Drupal 7 and later: ``$S$`` (sha512 iterated, Drupal's ``_password_crypt``).
- bcrypt ``$2y$`` (Drupal 10.1+, Joomla 3.2+, Laravel, Symfony: PHP ``password_hash``).
- argon2 ``$argon2id$`` / ``$argon2i$`` (PHP ``password_hash(PASSWORD_ARGON2ID)``: Laravel,
  Symfony, Joomla 4+), with PHP's default cost (m=65536 KiB, t=4, p=1).
- MediaWiki ``:pbkdf2:sha512:30000:64:<salt>:<hash>`` (its default since 1.24; every MediaWiki
  reads the parameters from the string, so any configuration verifies it).
- Joomla's legacy ``md5(password . salt):salt`` (Joomla 1.5 to 3.1; later versions still verify it).
- Magento 2 ``sha256(salt . password):salt:1`` (every Magento 2.2+ verifies it, and upgrades it to
  argon2id at the first login).

Salts come from the caller, so the same dev password gives the same hash every night and the
users table deduplicates between snapshots.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import re
from functools import lru_cache

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DRUPAL_HASH_LENGTH = 55
WORDPRESS_COUNT_LOG2 = 13  # PasswordHash(8, true) writes log2 8 + 5: the "B" of $P$B
DRUPAL_COUNT_LOG2 = 16  # Drupal 8+ default; Drupal 7 used 15


def itoa64_encode(data: bytes, count: int) -> str:
    """phpass' base64 variant (little-endian groups of 3 bytes)."""
    out = []
    i = 0
    while True:
        value = data[i]
        i += 1
        out.append(ITOA64[value & 0x3F])
        if i < count:
            value |= data[i] << 8
        out.append(ITOA64[(value >> 6) & 0x3F])
        if i >= count:
            break
        i += 1
        if i < count:
            value |= data[i] << 16
        out.append(ITOA64[(value >> 12) & 0x3F])
        if i >= count:
            break
        i += 1
        out.append(ITOA64[(value >> 18) & 0x3F])
        if i >= count:
            break
    return "".join(out)


def _crypt_iterated(algo: str, password: str, setting: str) -> str | None:
    """phpass/Drupal ``_password_crypt``: returns the full hash for a 12-character setting."""
    setting = setting[:12]
    if len(setting) < 12 or setting[0] != "$" or setting[2] != "$":
        return None
    count_log2 = ITOA64.find(setting[3])
    if not 7 <= count_log2 <= 30:
        return None
    salt = setting[4:12].encode()
    secret = password.encode()
    count = 1 << count_log2
    digest = hashlib.new(algo, salt + secret).digest()
    for _ in range(count):
        digest = hashlib.new(algo, digest + secret).digest()
    return setting + itoa64_encode(digest, len(digest))


def _setting(prefix: str, count_log2: int, salt6: bytes) -> str:
    if len(salt6) < 6:
        raise ValueError("a phpass salt needs 6 bytes")
    return prefix + ITOA64[count_log2] + itoa64_encode(salt6[:6], 6)


def phpass_hash(password: str, salt6: bytes, count_log2: int = WORDPRESS_COUNT_LOG2) -> str:
    """WordPress ``$P$`` hash (34 characters)."""
    result = _crypt_iterated("md5", password, _setting("$P$", count_log2, salt6))
    assert result is not None
    return result


def drupal_hash(password: str, salt6: bytes, count_log2: int = DRUPAL_COUNT_LOG2) -> str:
    """Drupal 7+ ``$S$`` hash (55 characters)."""
    result = _crypt_iterated("sha512", password, _setting("$S$", count_log2, salt6))
    assert result is not None
    return result[:DRUPAL_HASH_LENGTH]


def check_password(password: str, stored: str) -> bool:
    """Verify against every format this module writes, and the legacy ones ``format_of`` reads.

    An independent check for tests and ``clonekit`` users: written from each application's
    documented layout, not from the functions that make the hashes."""
    if stored.startswith(":"):
        return _check_mediawiki(password, stored)
    if stored.startswith(("$argon2id$", "$argon2i$")):
        return _check_argon2(password, stored)
    if _MAGENTO2.fullmatch(stored):
        hashed, salt, versions = stored.split(":", 2)
        recreated = password
        for version in versions.split(":"):
            if version not in ("0", "1"):
                return False  # argon2id generations: checked by PHP's sodium in the tests
            recreated = hashlib.new("md5" if version == "0" else "sha256", (salt + recreated).encode()).hexdigest()
        return recreated == hashed
    if _JOOMLA_MD5.fullmatch(stored):
        hashed, _, salt = stored.partition(":")
        return hashlib.md5((password + salt).encode()).hexdigest() == hashed  # noqa: S324 - the app's format
    if _MD5_HEX.fullmatch(stored):
        return hashlib.md5(password.encode()).hexdigest() == stored  # noqa: S324 - the app's format
    if stored.startswith(("$P$", "$H$")):
        return _crypt_iterated("md5", password, stored) == stored
    if stored.startswith("$S$"):
        full = _crypt_iterated("sha512", password, stored)
        return full is not None and full[:DRUPAL_HASH_LENGTH] == stored
    if stored.startswith(("$2y$", "$2b$", "$2a$")):
        bcrypt = _bcrypt()
        if bcrypt is None:
            raise RuntimeError("bcrypt hashes need the bcrypt package")
        return bcrypt.checkpw(password.encode(), ("$2b$" + stored[4:]).encode())
    return False


def _optional(module: str):  # noqa: ANN202 - a module, or None when not installed
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _bcrypt():  # noqa: ANN202
    return _optional("bcrypt")


def bcrypt_available() -> bool:
    return _bcrypt() is not None


BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def bcrypt_hash(password: str, salt_bytes: bytes, cost: int = 10) -> str:
    """PHP ``password_hash(PASSWORD_BCRYPT)`` format (``$2y$``) with a given salt."""
    bcrypt = _bcrypt()
    if bcrypt is None:
        raise RuntimeError("bcrypt hashes need the bcrypt package")
    # 22 salt characters; the last one only carries 4 bits, so pick it from a valid subset.
    chars = [BCRYPT_ALPHABET[b & 0x3F] for b in salt_bytes[:21]]
    chars.append(".Oeu"[salt_bytes[21 % len(salt_bytes)] & 0x3])
    salt = f"$2b${cost:02d}$" + "".join(chars)
    hashed = bcrypt.hashpw(password.encode(), salt.encode()).decode()
    return "$2y$" + hashed[4:]


# --- the other PHP applications ---------------------------------------------------------------

MEDIAWIKI_PBKDF2 = ("sha512", 30000, 64)  # MediaWiki's $wgPasswordConfig['pbkdf2'] default
ARGON2_PHP_DEFAULTS = (65536, 4, 1)  # PHP PASSWORD_ARGON2_DEFAULT_MEMORY_COST, TIME_COST, THREADS
SALT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_MAGENTO2 = re.compile(r"[0-9a-f]{32,128}:[^:]{1,128}:\d+(?:_\d+)*(?::\d+(?:_\d+)*)*")
_JOOMLA_MD5 = re.compile(r"[0-9a-f]{32}:[A-Za-z0-9./]{16,64}")
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _salt_text(salt: bytes, size: int) -> str:
    return "".join(SALT_ALPHABET[b % len(SALT_ALPHABET)] for b in (salt * (1 + size // len(salt)))[:size])


def mediawiki_hash(password: str, salt16: bytes) -> str:
    """MediaWiki ``:pbkdf2:`` (Pbkdf2Password): PBKDF2-HMAC, salt and hash base64 in the string."""
    algo, rounds, length = MEDIAWIKI_PBKDF2
    salt = salt16[:16]
    derived = hashlib.pbkdf2_hmac(algo, password.encode(), salt, rounds, length)
    return f":pbkdf2:{algo}:{rounds}:{length}:{_b64(salt)}:{_b64(derived)}"


def _check_mediawiki(password: str, stored: str) -> bool:
    parts = stored.split(":")
    kind = parts[1] if len(parts) > 2 else ""
    if kind == "A" and len(parts) == 3:  # MWOldPassword: md5(password)
        return hashlib.md5(password.encode()).hexdigest() == parts[2]  # noqa: S324 - the app's format
    if kind == "B" and len(parts) == 4:  # MWSaltedPassword: md5(salt . "-" . md5(password))
        inner = hashlib.md5(password.encode()).hexdigest()  # noqa: S324 - the app's format
        return hashlib.md5(f"{parts[2]}-{inner}".encode()).hexdigest() == parts[3]  # noqa: S324
    if kind == "pbkdf2" and len(parts) == 7:
        algo, rounds, length, salt, hashed = parts[2:]
        derived = hashlib.pbkdf2_hmac(algo, password.encode(), base64.b64decode(salt), int(rounds), int(length))
        return _b64(derived) == hashed
    return False


def joomla_md5_hash(password: str, salt: bytes) -> str:
    """Joomla's legacy ``md5(password . salt):salt`` with a 32-character salt (MD5Handler)."""
    text = _salt_text(salt, 32)
    return hashlib.md5((password + text).encode()).hexdigest() + ":" + text  # noqa: S324 - the app's format


def magento2_hash(password: str, salt: bytes) -> str:
    """Magento 2 ``sha256(salt . password):salt:1`` (Encryptor, hash version 1)."""
    text = _salt_text(salt, 32)
    return hashlib.sha256((text + password).encode()).hexdigest() + ":" + text + ":1"


def _argon2():  # noqa: ANN202
    return _optional("argon2.low_level")


def argon2_available() -> bool:
    return _argon2() is not None


def argon2_hash(password: str, salt16: bytes, variant: str = "argon2id") -> str:
    """PHP ``password_hash(PASSWORD_ARGON2ID)`` (or ``ARGON2I``) format with PHP's default cost."""
    low_level = _argon2()
    if low_level is None:
        raise RuntimeError("argon2 hashes need the argon2-cffi package")
    memory, time_cost, threads = ARGON2_PHP_DEFAULTS
    kind = low_level.Type.ID if variant == "argon2id" else low_level.Type.I
    out = low_level.hash_secret(password.encode(), salt16[:16], time_cost=time_cost, memory_cost=memory,
                                parallelism=threads, hash_len=32, type=kind)
    return out.decode("ascii")


def _check_argon2(password: str, stored: str) -> bool:
    low_level = _argon2()
    if low_level is None:
        raise RuntimeError("argon2 hashes need the argon2-cffi package")
    kind = low_level.Type.ID if stored.startswith("$argon2id$") else low_level.Type.I
    try:
        return low_level.verify_secret(stored.encode(), password.encode(), kind)
    except Exception:  # noqa: BLE001 - argon2-cffi raises its own VerificationError family
        return False


def format_of(stored: str) -> str:
    """The format an application wrote ``stored`` in, for ``password: {format: auto}``.

    Unknown values (and ``$P$``/``$H$``, WordPress 6.8 ``$wp$2y$``) give ``wordpress``: phpass,
    which WordPress and Drupal both accept."""
    if stored.startswith(("$P$", "$H$", "$wp$")):
        return "wordpress"
    if stored.startswith(("$S$", "$U$S$")):
        return "drupal"
    if stored.startswith(("$2y$", "$2b$", "$2a$")):
        return "bcrypt"
    if stored.startswith("$argon2id$"):
        return "argon2id"
    if stored.startswith("$argon2i$"):
        return "argon2i"
    if stored.startswith((":pbkdf2", ":A:", ":B:", ":bcrypt:", ":argon2:")):
        return "mediawiki"
    if _MAGENTO2.fullmatch(stored):
        return "magento2"
    if _JOOMLA_MD5.fullmatch(stored):
        return "joomla"
    if _MD5_HEX.fullmatch(stored):
        return "md5"
    return "wordpress"


@lru_cache(maxsize=64)
def hash_for(kind: str, password: str, salt: bytes) -> str:
    """``password`` in format ``kind`` with a caller-chosen salt (the same every night).

    Cached: the iterated hashes are slow on purpose, and every column, table and plan of a run
    asks for the same few."""
    if kind == "drupal":
        return drupal_hash(password, salt)
    if kind == "bcrypt" and bcrypt_available():
        return bcrypt_hash(password, salt)
    if kind in ("argon2id", "argon2i"):
        if argon2_available():
            return argon2_hash(password, salt, kind)
        return hash_for("bcrypt", password, salt)  # PHP's password_verify accepts bcrypt too
    if kind == "mediawiki":
        return mediawiki_hash(password, salt)
    if kind == "joomla":
        return joomla_md5_hash(password, salt)
    if kind == "magento2":
        return magento2_hash(password, salt)
    if kind == "md5":
        return hashlib.md5(password.encode()).hexdigest()  # noqa: S324 - the app's legacy format
    if kind == "plain":
        return password
    return phpass_hash(password, salt)

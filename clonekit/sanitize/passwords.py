"""Password hashes in the applications' own formats, so developers log in with one known password.

- WordPress: phpass portable hashes ``$P$`` (md5 iterated; every WordPress version accepts them).
- Drupal 7 and later: ``$S$`` (sha512 iterated, Drupal's ``_password_crypt``).
- bcrypt ``$2y$`` (Drupal 10.1+, PHP ``password_hash``), when the ``bcrypt`` package is present.

Salts come from the caller, so the same dev password gives the same hash every night and the
users table deduplicates between snapshots.
"""

from __future__ import annotations

import hashlib

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
    """Verify against ``$P$``/``$H$`` (phpass), ``$S$`` (Drupal) or bcrypt hashes."""
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


def _bcrypt():  # noqa: ANN202 - optional dependency
    try:
        import bcrypt
    except ImportError:
        return None
    return bcrypt


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

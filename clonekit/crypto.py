"""Client-side encryption: AES-256-GCM with a key from an environment variable.

From the 32-byte master key, HKDF derives one key for chunk ids (HMAC-SHA256, so names reveal
nothing about content) and one for data. config.json holds a key check so a wrong key is
refused before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError, IntegrityError

KEY_BYTES = 32
NONCE_BYTES = 12
ALGORITHM = "AES-256-GCM"


def load_key(env_name: str) -> bytes:
    """The 32-byte key from ``$env_name`` (hex or base64); ConfigError when missing or malformed."""
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise ConfigError(
            f"the store encryption key variable {env_name} is not set",
            hint=f"export {env_name}=$(openssl rand -hex 32) and keep it safe: without it the snapshots cannot be read",
        )
    key: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        key = bytes.fromhex(value)
    else:
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != KEY_BYTES:
        raise ConfigError(
            f"the store encryption key in {env_name} is not 32 bytes in hex (64 characters) or base64",
            hint="generate one with `openssl rand -hex 32`",
        )
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"clonekit " + purpose).derive(master)


class Cipher:
    """Keyed chunk ids and AEAD sealing. Thread-safe (no mutable state)."""

    def __init__(self, master: bytes) -> None:
        self._id_key = _derive(master, b"chunk-id")
        self._aead = AESGCM(_derive(master, b"data"))
        self._check_key = _derive(master, b"key-check")

    def __repr__(self) -> str:
        return "Cipher(<key hidden>)"

    def chunk_id(self, data: bytes) -> str:
        return hmac.new(self._id_key, data, hashlib.sha256).hexdigest()

    def key_check(self, repo_id: str) -> str:
        return hmac.new(self._check_key, repo_id.encode(), hashlib.sha256).hexdigest()

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def open(self, blob: bytes | memoryview, aad: bytes, what: str) -> bytes:
        # a memoryview (the stored object past its header) is decrypted without a copy of it
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise IntegrityError(f"{what}: authentication failed (corrupted, or not sealed with this key)") from exc

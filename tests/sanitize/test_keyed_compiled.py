"""The compiled HMAC-SHA256 (clonekit/_speedups.c) gives hmac.digest's bytes.

Every pseudonym starts from ``Keyed.digest``; with the compiled module it is one C call (SHA-256
from the pads' states). Checked against the standard library's HMAC and the Python path for
secrets shorter than, equal to and longer than a block, messages across every block boundary,
str values with multibyte characters and lone surrogates, and bytes-like values.
"""

from __future__ import annotations

import hmac
import random

import pytest

from clonekit.sanitize import actions
from clonekit.sanitize.actions import Keyed

needs_compiled = pytest.mark.skipif(actions.compiled is None, reason="the compiled module did not build "
                                    "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")


@needs_compiled
def test_keyed_uses_the_compiled_digest() -> None:
    assert Keyed(b"s").digest.__class__.__name__ == "partial"


@needs_compiled
@pytest.mark.parametrize("secret_size", [0, 1, 32, 63, 64, 65, 200])
def test_compiled_hmac_matches_the_standard_library(secret_size: int) -> None:
    rng = random.Random(secret_size)
    secret = rng.randbytes(secret_size)
    keyed = Keyed(secret)
    for size in [*range(0, 140), 1000, 5000]:
        domain = rng.choice([b"", b"email\0", b"phone+\0", b"d" * 70])
        raw = rng.randbytes(size)
        expected = hmac.digest(secret, domain + raw, "sha256")
        assert keyed.digest(domain, raw) == expected == keyed.digest_python(domain, raw)
        assert keyed.digest(domain, bytearray(raw)) == expected and keyed.digest(domain, memoryview(raw)) == expected
        text = "".join(chr(rng.choice([0x41, 0x7F, 0xE9, 0x65E5, 0xDCFF, 0x1F600])) for _ in range(size % 40))
        assert keyed.digest(domain, text) == hmac.digest(secret, domain + text.encode("utf-8", "surrogatepass"),
                                                          "sha256") == keyed.digest_python(domain, text)


@needs_compiled
def test_compiled_hmac_refuses_what_it_cannot_hash() -> None:
    with pytest.raises(TypeError):
        Keyed(b"s").digest(b"d", 42)  # type: ignore[arg-type]


_BOTH_IMPLEMENTATIONS = """
import hmac, random, sys
from clonekit import _speedups
from clonekit.sanitize.actions import Keyed
rng = random.Random(7)
for secret_size in (0, 32, 64, 65):
    secret = rng.randbytes(secret_size)
    keyed = Keyed(secret)
    for size in (*range(0, 140), 1000):
        raw = rng.randbytes(size)
        assert keyed.digest(b"email\\0", raw) == hmac.digest(secret, b"email\\0" + raw, "sha256"), (secret_size, size)
print(_speedups.sha256_impl)
"""


@pytest.mark.parametrize("no_sha_ni", ["", "1"])
def test_both_sha256_compressions_give_hmac_digest(no_sha_ni: str) -> None:
    """The x86 SHA-extension compression (chosen at import when the CPU has it) and the portable
    one: each checked against the standard library in a fresh interpreter (the choice is made
    once, at import), whichever this CPU offers."""
    import os
    import subprocess
    import sys

    from .test_phpserialize_compiled import speedups

    if speedups is None:
        pytest.skip("the compiled module did not build (tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")
    env = {**os.environ, "CLONEKIT_NO_SHA_NI": no_sha_ni}
    env.pop("CLONEKIT_PURE_PYTHON", None)
    done = subprocess.run([sys.executable, "-c", _BOTH_IMPLEMENTATIONS], env=env, capture_output=True, text=True, check=True)
    if no_sha_ni:
        assert done.stdout.strip() == "portable"
    else:
        assert done.stdout.strip() in ("portable", "x86 SHA extensions")

"""Preview names from branch names: DNS labels (``feature/Élan_42`` → ``feature-elan-42``)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from ..errors import UsageError

MAX_LABEL_CHARS = 63


def slugify(text: str) -> str:
    """Lowercase ASCII letters, digits and '-', no leading/trailing '-', at most 63 characters
    (a longer name keeps its start and ends with 6 hex of its hash, so two long branches differ)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not slug:
        raise UsageError(f"{text!r} has no letter or digit to make a preview name from")
    if len(slug) > MAX_LABEL_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        slug = slug[: MAX_LABEL_CHARS - 7].rstrip("-") + "-" + digest
    return slug

"""Slack-compatible incoming webhook: a JSON ``{"text": ...}`` POST to a URL named by an env var.

A notification that cannot be delivered is logged and never fails the operation it reports on.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

from .config import NotifyConfig

log = logging.getLogger("clonekit.notify")
TIMEOUT_SECONDS = 10


def send_webhook(config: NotifyConfig, text: str) -> bool:
    """Post ``text``; returns whether it was delivered. The URL (a secret) is never logged."""
    if not config.webhook_env:
        return False
    url = os.environ.get(config.webhook_env)
    if not url:
        log.warning("notify.webhook_env names %s but it is not set: no notification sent", config.webhook_env)
        return False
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - URL is the user's own
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("webhook notification failed: %s", type(exc).__name__)
        return False

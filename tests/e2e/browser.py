"""Headless Chromium driven over its DevTools pipe (no websocket library, no driver): open a page
with extra request headers (HTTP basic auth for every request, subresources included), return its
HTML and a PNG screenshot."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
NAVIGATION_ATTEMPTS = 8
# Every stylesheet of the page arrived (a load can end with some missing when the network changed).
STYLESHEETS_LOADED = """Array.from(document.querySelectorAll('link[rel=stylesheet]')).every(l => {
  try { return l.sheet !== null && l.sheet.cssRules.length > 0; } catch (e) { return false; } })"""


class Chromium:
    def __init__(self, user_data_dir: Path, extra_flags: list[str]) -> None:
        binary = shutil.which("chromium")
        assert binary, "chromium is installed by scripts/services.sh"
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # DevTools reads commands on fd 3 and writes answers on fd 4
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", *extra_flags, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_child, 1 << 20)
            assert chunk, "chromium closed its DevTools pipe"
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                assert "error" not in answer, answer
                return answer.get("result") or {}
            self.events.append(answer)

    def evaluate(self, expression: str, session: str) -> Any:
        try:
            result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        except AssertionError:  # an error answer: the page went away under the evaluation
            return None
        return (result.get("result") or {}).get("value")

    def wait_event(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read())

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)


def open_page(url: str, headers: dict[str, str], screenshot: Path, user_data_dir: Path,
              extra_flags: list[str]) -> str:
    """Load ``url`` with ``headers`` on every request; save a 1280x900 PNG; return the page's HTML."""
    browser = Chromium(user_data_dir, extra_flags)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Network.enable", session=session)
        browser.call("Network.setExtraHTTPHeaders", {"headers": headers}, session=session)
        browser.call("Page.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        for _ in range(NAVIGATION_ATTEMPTS):
            # Containers coming and going on this machine change its interfaces; Chromium then
            # aborts a load with ERR_NETWORK_CHANGED: load again (bounded).
            browser.events.clear()
            error = browser.call("Page.navigate", {"url": url}, session=session).get("errorText")
            if error:
                continue
            browser.wait_event("Page.loadEventFired")
            # None when the page changed under the evaluation (a late event of an aborted load)
            html = str(browser.evaluate("document.documentElement.outerHTML", session))
            if "ERR_NETWORK_CHANGED" not in html and browser.evaluate(STYLESHEETS_LOADED, session) is True:
                break
        else:
            raise AssertionError(f"chromium could not load {url}: {error or 'network changed'}")
        data = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        screenshot.write_bytes(base64.b64decode(data))
        return str(html)
    finally:
        browser.close()

"""A small threaded HTTP proxy that breaks a share of S3 requests, for fault-injection tests.

Modes: ``500`` (InternalError), ``503`` (ServiceUnavailable), ``slowdown`` (503 SlowDown),
``reset`` (connection closed before the request reaches the server), ``drop`` (the server DID
handle the request, then the connection is closed with no answer), ``truncate`` (the answer
is cut in the middle of its body) and, only when asked, ``corrupt`` (one bit of a GET answer's
body flipped) and ``stall`` (the request is read and never answered: an endpoint that accepts
connections and hangs, until the proxy is closed). ``max_faults`` stops injecting after that many; ``reject_conditional`` answers
501 NotImplemented to writes with If-None-Match, like providers that lack conditional writes.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ALL_MODES = ("500", "503", "slowdown", "reset", "drop", "truncate")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "expect", "te", "upgrade"}
ERRORS = {
    "501": (501, "NotImplemented", "A header you provided implies functionality that is not implemented."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        failure_rate: float = 0.0,
        modes: tuple[str, ...] = ALL_MODES,
        seed: int = 7,
        max_faults: int | None = None,
        reject_conditional: bool = False,
    ) -> None:
        parsed = urlparse(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.failure_rate = failure_rate
        self.modes = modes
        self.max_faults = max_faults
        self.reject_conditional = reject_conditional
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.closing = threading.Event()  # ends the stalled requests
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    def decide(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            if self._rng.random() >= self.failure_rate:
                return None
            if self.max_faults is not None and self.counts["faults"] >= self.max_faults:
                return None
            mode = self._rng.choice(self.modes)
            self.counts[mode] += 1
            self.counts["faults"] += 1
            return mode


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return None

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _proxy(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._read_body()
        if self.command == "PUT" and "/chunks/" in self.path:
            with proxy._lock:
                proxy.counts["PUT chunks"] += 1
        mode = proxy.decide()
        if proxy.reject_conditional and self.command == "PUT" and "If-None-Match" in self.headers:
            mode = "501"
            with proxy._lock:
                proxy.counts["501"] += 1
        if mode == "corrupt" and self.command != "GET":
            mode = None
        if mode == "reset":
            self._hang_up()
            return
        if mode == "stall":
            proxy.closing.wait()
            self._hang_up()
            return
        if mode in ERRORS:
            status, code, message = ERRORS[mode]
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>fault</RequestId></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if mode == "drop" or (mode == "truncate" and (self.command == "HEAD" or len(data) < 2)):
            self._hang_up()
            return
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() not in ("content-length", "date", "server"):
                self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "corrupt" and data:
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0x01
            data = bytes(flipped)
        if mode == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._hang_up()
            return
        self.wfile.write(data)

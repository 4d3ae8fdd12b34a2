"""A Docker engine that accepts connections and never answers ends `clonekit list` with a clear
failure (exit 1) naming the engine, within the configured stall timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

GUARD_SECONDS = 300  # only keeps a broken build from hanging the suite


def test_list_against_a_stalled_engine_fails_clearly(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # take connections, read nothing, answer nothing
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    config = tmp_path / "clonekit.yml"
    config.write_text(f"project: site\nstore: {tmp_path / 'store'}\nsources:\n  prod:\n    files: [{tmp_path}]\n"
                      f"previews:\n  docker_host: tcp://127.0.0.1:{port}\n")
    try:
        done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "list"], capture_output=True,
                              text=True, env={**os.environ, "CLONEKIT_STALL_TIMEOUT": "2"}, timeout=GUARD_SECONDS)
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert done.returncode == 1, done.stderr
    assert f"Docker engine tcp://127.0.0.1:{port} did not answer within 2 s" in done.stderr
    assert "CLONEKIT_STALL_TIMEOUT" in done.stderr and "Traceback" not in done.stderr
    assert accepted  # the client really connected and waited

"""Content-defined chunking of a byte stream (FastCDC, via the Cython ``fastcdc`` package).

A file smaller than MIN_CHUNK_BYTES is one chunk. Larger ones are cut where the rolling gear
hash says, so an edit in the middle of a big file changes only the chunks around it. Cut points
depend only on the content, never on how the stream was read (block sizes, network packets).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator

# fastcdc prints a notice on stdout when its compiled module is missing: keep stdout clean
# (it carries --json output) and say it in the log instead.
with contextlib.redirect_stdout(io.StringIO()):
    from fastcdc import fastcdc
if "fastcdc_cy" not in getattr(fastcdc, "__module__", ""):
    logging.getLogger("clonekit.files").warning("fastcdc runs in pure Python here: large files chunk slowly")

MIN_CHUNK_BYTES = 512 * 1024
AVG_CHUNK_BYTES = 1024 * 1024
MAX_CHUNK_BYTES = 8 * 1024 * 1024
READ_BLOCK_BYTES = MAX_CHUNK_BYTES  # per reader thread: the buffer stays under 2 x this (flat memory)


def iter_chunks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Cut what ``read(n)`` returns (until b"") into chunks."""
    first = _read_full(read, MIN_CHUNK_BYTES)
    if len(first) < MIN_CHUNK_BYTES:  # a small file (the short read was the end): one chunk
        if first:
            yield first
        return
    buffer = first
    eof = False
    while True:
        if not eof:
            block = _read_full(read, READ_BLOCK_BYTES)
            eof = len(block) < READ_BLOCK_BYTES
            buffer = buffer + block if buffer else block
        if eof:
            for chunk in fastcdc(buffer, MIN_CHUNK_BYTES, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES):
                yield buffer[chunk.offset : chunk.offset + chunk.length]
            return
        consumed = 0
        for chunk in fastcdc(buffer, MIN_CHUNK_BYTES, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES):
            # A cut closer than MAX_CHUNK_BYTES to the buffer's end may be an artefact of the end.
            if chunk.offset + MAX_CHUNK_BYTES > len(buffer):
                break
            yield buffer[chunk.offset : chunk.offset + chunk.length]
            consumed = chunk.offset + chunk.length
        buffer = buffer[consumed:]


def _read_full(read: Callable[[int], bytes], size: int) -> bytes:
    parts = []
    wanted = size
    while wanted > 0:
        data = read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts) if len(parts) != 1 else parts[0]

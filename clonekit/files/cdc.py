"""Content-defined chunking of a byte stream (FastCDC, via the Cython ``fastcdc`` package).

A file smaller than MIN_CHUNK_BYTES is one chunk. Larger ones are cut where the rolling gear
hash says, so an edit in the middle of a big file changes only the chunks around it. Cut points
depend only on the content, never on how the stream was read (block sizes, network packets).

The stream is read into one reusable buffer (``readinto``) and cut in place through
memoryviews: the only allocation per chunk is the chunk itself, handed to the store. A capture
that allocated a fresh read block, a joined buffer and a leftover copy per block left glibc's
per-thread arenas holding hundreds of MiB of freed buffers (docs/benchmarks.md, issue 18).
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
READ_BLOCK_BYTES = MAX_CHUNK_BYTES  # read at least this much per refill of the buffer
BUFFER_BYTES = MAX_CHUNK_BYTES + READ_BLOCK_BYTES  # one per large file being chunked (storer.py)

ReadInto = Callable[[memoryview], int]  # fills a prefix of the view, returns its length; 0 at the end


def iter_chunks(readinto: ReadInto, buffer: bytearray | None = None) -> Iterator[bytes]:
    """Cut what ``readinto`` fills (until it returns 0) into chunks, through ``buffer``.

    ``buffer`` (at least BUFFER_BYTES, reused from file to file) must not be shared with another
    caller until the iterator is exhausted or closed."""
    if buffer is None:
        buffer = bytearray(BUFFER_BYTES)
    if len(buffer) < BUFFER_BYTES:
        raise ValueError(f"iter_chunks needs a buffer of at least {BUFFER_BYTES} bytes")
    view = memoryview(buffer)
    end = 0
    while True:
        capacity = len(view)
        end = _fill(readinto, view, end, capacity)
        eof = end < capacity
        consumed = 0
        for chunk in fastcdc(view[:end], MIN_CHUNK_BYTES, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES):
            # A cut closer than MAX_CHUNK_BYTES to the data's end may be an artefact of the end.
            if not eof and chunk.offset + MAX_CHUNK_BYTES > end:
                break
            consumed = chunk.offset + chunk.length
            yield bytes(view[chunk.offset : consumed])
        if eof:
            return
        # Keep the uncut tail (under MAX_CHUNK_BYTES) at the front and read after it.
        view[: end - consumed] = view[consumed:end]
        end -= consumed


def _fill(readinto: ReadInto, view: memoryview, at: int, until: int) -> int:
    while at < until:
        got = readinto(view[at:until])
        if not got:
            break
        at += got
    return at


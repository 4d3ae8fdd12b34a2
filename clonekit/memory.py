"""Keep the process's memory flat while many threads pass large buffers around.

glibc gives each thread that allocates its own arena (up to 8 per core) and an arena keeps
what was freed in it. A capture passes megabyte chunks between its reader threads and the
store's compressor/upload threads: with ~13 such threads each arena held its own peak, and a
files capture of a 1.4 GB tree peaked at 236 MiB resident for ~130 MiB of live buffers, even
with the chunker reading into reused buffers (files/cdc.py). Two arenas shared by every thread
bring it to 156-175 MiB for the same CPU (docs/benchmarks.md, issue 18). The earlier cure, a
fixed 1 MiB mmap threshold, held memory as flat but doubled the system time (every big buffer a
fresh mmap, its pages faulted in and zeroed again).

glibc fixes its arena limit when the process has about 8 arenas, so this must run before a
capture starts its threads: the CLI calls it first thing and so does every ChunkWriter (the
library path, ``Project.snapshot``). In a host process that already has many arenas it does
nothing harmful, only less. Between the phases of a snapshot (database, then each file tree),
``give_back_free_memory`` hands what the arenas hold free back to the system.

Within a phase, the buffers passed between threads (chunks of 0.5-8 MiB, their compressed and
decompressed forms) come from the arenas too: glibc raises its mmap threshold to the largest
buffer freed, and the holes such buffers leave are kept resident. A pipelined clone held 45-80
MiB free that way beside 50-80 MiB in use (mallinfo2 sampled through a whole top-scale clone,
docs/benchmarks.md). ``FreeMemoryEvery`` gives that back every 16 MiB of chunks that passed
through (``GIVE_BACK``, counted by the store's writer and reader): a fixed mmap threshold would
do it for every buffer, at twice the system time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading

log = logging.getLogger("clonekit.memory")

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2
# Bytes of chunks passed through (stored, or read back) between two give-backs. Each give-back
# costs page faults when the freed pages are used again. The top-scale pipelined clone peaked at
# 186-201 MiB with 16 MiB (main: 206-225), 193-211 with 32 MiB, for 2-4 s more system time of
# its ~25 s of CPU (docs/benchmarks.md, issue 18).
GIVE_BACK_EVERY_BYTES = 16 << 20


@functools.cache
def share_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at ARENAS; False (and nothing done) on another C library."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, ARENAS))
    if not done:
        log.debug("mallopt(M_ARENA_MAX) refused; memory may grow with fragmentation")
    return done


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def give_back_free_memory() -> bool:
    """glibc's ``malloc_trim(0)``: free pages of every arena go back to the system; False elsewhere."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))


class FreeMemoryEvery:
    """Counts the bytes of buffers a phase frees (thread-safe); every ``every_bytes`` of them,
    ``give_back_free_memory()``. One per process is enough (``GIVE_BACK``): a trim covers every
    arena, whichever thread counted."""

    def __init__(self, every_bytes: int = GIVE_BACK_EVERY_BYTES) -> None:
        self.every_bytes = every_bytes
        self.given_back = 0  # times memory was given back (tests)
        self._lock = threading.Lock()
        self._since = 0

    def freed(self, size: int) -> None:
        with self._lock:
            self._since += size
            due = self._since >= self.every_bytes
            if due:
                self._since = 0
                self.given_back += 1
        if due:
            give_back_free_memory()


GIVE_BACK = FreeMemoryEvery()

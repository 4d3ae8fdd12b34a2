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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger("clonekit.memory")

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


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

"""The snapshot format on top of any store: content-addressed chunks, manifests written last.

Layout (docs/format.md): ``config.json``, ``chunks/ab/cd/<id>``, ``snapshots/<id>.json``,
``locks/``, ``bad/<id>`` (chunks found corrupt, set aside so that the next snapshot stores a
good copy). Every object is an envelope ``CK`` + version + flags + payload; the payload is
zstd-compressed and, with encryption on, sealed with AES-256-GCM bound to the object's name.
Every read is verified against the chunk id (hash of the plain bytes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

import zstandard

from .config import StoreConfig, env_number
from .crypto import ALGORITHM, Cipher, load_key
from .errors import ConfigError, IntegrityError, LockedError, NotFoundError, StoreError
from .manifest import CHUNK_ID, Manifest, ManifestHead, SharedRecords
from .memory import GIVE_BACK, share_malloc_arenas
from .owner import Owner
from .pools import ordered_map
from .retry import poll
from .store import MissingObjectError, Store, open_store

log = logging.getLogger("clonekit.repository")
T = TypeVar("T")
M = TypeVar("M", Manifest, ManifestHead)

FORMAT_VERSION = 1
CONFIG_KEY = "config.json"
CHUNKS_PREFIX = "chunks/"
SNAPSHOTS_PREFIX = "snapshots/"
# new_snapshot_id(): <source>-<YYYYMMDD-HHMMSS UTC>-<random hex>
_SNAPSHOT_ID_PARTS = re.compile(r"^(?P<source>[a-z0-9][a-z0-9-]*)-(?P<stamp>\d{8}-\d{6})-[0-9a-f]{4,}$")
LOCKS_PREFIX = "locks/"
BAD_PREFIX = "bad/"  # corrupt chunks set aside: bad/<id> holds the bytes that failed their check
DEFAULT_ZSTD_LEVEL = 1  # docs/benchmarks.md: half the CPU of level 3 for 14% more bytes; the capture is CPU-bound
# Plain bytes handed to the writer and not yet stored: 8 uploads of ~2 MiB chunks in flight with room
# to spare; more only raised the peak memory of a capture (docs/benchmarks.md, issue 18).
MAX_PENDING_BYTES = 48 << 20
# Chunks read ahead by iter_chunks, in bytes (about): a window of 2 x workers chunks of uploads
# (images: chunks of several MiB each) held 60+ MiB at once in a clone's file restore.
READ_AHEAD_BYTES = 24 << 20
MANIFESTS_AHEAD = 4  # manifests fetched ahead of the one being parsed: a few stored forms in memory, not all
FIRST_GUESS_CHUNK_BYTES = 4 << 20  # before any chunk has arrived
MAX_CHUNK_PLAIN_BYTES = 1 << 30  # refuse to decompress beyond this: guards against bombs
LOCK_STALE_SECONDS = env_number("CLONEKIT_LOCK_STALE_SECONDS", 1800)
LOCK_WAIT_SECONDS = env_number("CLONEKIT_LOCK_WAIT_SECONDS", 300.0)
HEAD_CHECK_LIMIT = 256  # commit: beyond this many reused chunks, one listing beats a HEAD each

MAGIC = b"CK"
ENVELOPE_VERSION = 1
FLAG_ZSTD = 0x01
FLAG_SEALED = 0x80
HEADER_BYTES = 4

_tls = threading.local()


def chunk_key(chunk_id: str) -> str:
    return f"{CHUNKS_PREFIX}{chunk_id[:2]}/{chunk_id[2:4]}/{chunk_id}"


def manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}.json"


def bad_key(chunk_id: str) -> str:
    return f"{BAD_PREFIX}{chunk_id}"


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _CompressorPool:
    """zstd compressors lent to the threads that compress, at most one per core at once.

    A compressor is not safe to share between threads, and each keeps its working memory (~1.3
    MiB at level 1) for as long as it lives: one per upload thread held 8 of them, and 8 chunks
    compressed at once on 2 cores (docs/benchmarks.md). Compressing is CPU-bound: more at once
    than cores only adds memory."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._free: queue.LifoQueue[tuple[int, zstandard.ZstdCompressor] | None] = queue.LifoQueue()
        for _ in range(self.size):
            self._free.put(None)
        self.made = 0  # compressors made so far (tests)

    @contextmanager
    def borrow(self, level: int) -> Iterator[zstandard.ZstdCompressor]:
        held = self._free.get()  # waits while every compressor is in use
        try:
            if held is None or held[0] != level:
                held = (level, zstandard.ZstdCompressor(level=level))
                self.made += 1
            yield held[1]
        finally:
            self._free.put(held)


_COMPRESSORS = _CompressorPool(_usable_cores())


def _catalog(found: list[M], unreadable: list[UnreadableManifest], source: str | None) -> Catalog[M]:
    if source is not None:
        found = [m for m in found if m.source == source]
        unreadable = [u for u in unreadable if _id_source(u.id) in (source, None)]
    return Catalog(tuple(sorted(found, key=lambda m: (m.created_at, m.id))), tuple(sorted(unreadable, key=lambda u: u.id)))


def _parse_with(parse: Callable[[str, bytes], M], blob: bytes, snapshot_id: str) -> M:
    return parse(snapshot_id, blob)


def _tolerantly(snapshot_id: str, read: Callable[[str], T]) -> T | UnreadableManifest | None:
    """``read(snapshot_id)``; None when the manifest was deleted since the listing (a prune: not a
    snapshot any more), an UnreadableManifest when it cannot be read or parsed."""
    try:
        return read(snapshot_id)
    except NotFoundError:
        return None
    except (IntegrityError, StoreError) as exc:
        return UnreadableManifest(snapshot_id, manifest_key(snapshot_id), exc.message)


def _decompress_stream(payload: bytes | memoryview) -> bytes:
    """A zstd frame that does not record its size, read in pieces: ``decompress`` would make an
    output buffer of MAX_CHUNK_PLAIN_BYTES first. The same bound holds."""
    out = bytearray()
    reader = _decompressor().stream_reader(payload, read_across_frames=True)
    while piece := reader.read(1 << 20):
        out += piece
        if len(out) > MAX_CHUNK_PLAIN_BYTES:
            raise zstandard.ZstdError(f"more than {MAX_CHUNK_PLAIN_BYTES} bytes once decompressed")
    return bytes(out)


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_tls, "decompressor", None)
    if d is None:
        d = _tls.decompressor = zstandard.ZstdDecompressor()
    return d


@dataclass(frozen=True)
class ChunkRef:
    id: str  # hex SHA-256 of the plain bytes (keyed HMAC-SHA256 when the store is encrypted)
    size: int  # plain bytes

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size}


@dataclass(frozen=True)
class WriterStats:
    chunks: int = 0  # put() calls
    new_chunks: int = 0  # objects this writer uploaded
    plain_bytes: int = 0  # bytes handed to put()
    new_plain_bytes: int = 0
    stored_bytes: int = 0  # stored size of the distinct chunks referenced
    new_stored_bytes: int = 0  # stored bytes newly written


@dataclass(frozen=True)
class BadObject:
    key: str
    reason: str


@dataclass(frozen=True)
class UnreadableManifest:
    """A manifest in the listing that cannot be read or parsed: named, never silently skipped."""

    id: str
    key: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "reason": self.reason}


@dataclass(frozen=True)
class Catalog(Generic[M]):
    """Every manifest of the store: the readable ones (oldest first) and the unreadable ones;
    whole (``Repository.catalog``) or their heads (``Repository.heads``)."""

    manifests: tuple[M, ...]
    unreadable: tuple[UnreadableManifest, ...]


@dataclass(frozen=True)
class VerifyReport:
    snapshot_id: str
    chunks_checked: int
    bytes_checked: int
    bad: tuple[BadObject, ...]

    @property
    def ok(self) -> bool:
        return not self.bad

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id,
            "ok": self.ok,
            "chunks_checked": self.chunks_checked,
            "bytes_checked": self.bytes_checked,
            "bad": [{"key": b.key, "reason": b.reason} for b in self.bad],
        }


@dataclass(frozen=True)
class RepoConfig:
    format_version: int
    repository_id: str
    created_at: str
    zstd_level: int = DEFAULT_ZSTD_LEVEL
    encryption: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        body = {
            "format_version": self.format_version,
            "repository_id": self.repository_id,
            "created_at": self.created_at,
            "compression": {"codec": "zstd", "level": self.zstd_level},
            "encryption": self.encryption,
            "layout": {"chunks": "chunks/ab/cd/<id>", "snapshots": "snapshots/<id>.json", "locks": "locks/"},
        }
        return json.dumps(body, sort_keys=True, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, url: str) -> RepoConfig:
        try:
            raw = json.loads(data)
            version = int(raw["format_version"])
            if version > FORMAT_VERSION:
                raise ConfigError(
                    f"the store {url} uses format {version}; this clonekit reads up to {FORMAT_VERSION}",
                    hint="upgrade clonekit",
                )
            return cls(
                format_version=version,
                repository_id=str(raw["repository_id"]),
                created_at=str(raw.get("created_at", "")),
                zstd_level=int((raw.get("compression") or {}).get("level", DEFAULT_ZSTD_LEVEL)),
                encryption=raw.get("encryption"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{url}/config.json is not a clonekit store configuration ({exc!r})") from exc


class Repository:
    """Snapshots in one store. Thread-safe."""

    def __init__(self, store: Store, config: RepoConfig, cipher: Cipher | None, *, workers: int = 8) -> None:
        self.store = store
        self.config = config
        self.url = store.url
        self.workers = workers
        self._cipher = cipher
        self._mutex = threading.Lock()
        self._chunk_index: dict[str, int] | None = None  # id -> stored size, loaded on first write
        self._set_aside: frozenset[str] = frozenset()  # ids in bad/ when the chunk index was listed
        self._manifest_cache: dict[str, Manifest] = {}
        self._head_cache: dict[str, ManifestHead] = {}  # heads read, or made from the manifests read whole
        self._head_pairs: dict[tuple[str, int], tuple[str, int]] = {}  # the heads' chunk references, each once
        self._pairs_stale = False  # a head left the cache: rebuild _head_pairs at the next heads()
        self._shared = SharedRecords()  # entries and chunk references of the manifests read, held once
        self._shared_stale = False  # a manifest left the cache: rebuild _shared at the next catalog
        self._written_here: set[str] = set()  # chunks this object uploaded itself: commit need not re-check them

    def __repr__(self) -> str:
        return f"Repository({self.url!r})"

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, store: StoreConfig | Store, *, create: bool = True) -> Repository:
        """Open the repository at ``store``, creating ``config.json`` on first use when ``create``."""
        cipher: Cipher | None = None
        key_env: str | None = None
        workers = 8
        level: int | None = None
        url = store.url
        if isinstance(store, StoreConfig):
            key_env = store.encryption_key_env
            level = store.compression_level
            workers = max(1, store.upload_workers)
            if key_env:
                cipher = Cipher(load_key(key_env))  # a bad key variable fails before any I/O
        try:
            if isinstance(store, StoreConfig):
                backend = open_store(store, workers=workers, create=create)
            else:
                backend = store
            url = backend.url
            data = backend.get(CONFIG_KEY)
        except MissingObjectError:
            if not create:
                raise NotFoundError(
                    f"no clonekit store at {url}", hint="check the store URL, or run `clonekit snapshot SOURCE` to create it"
                ) from None
            fresh = RepoConfig(
                format_version=FORMAT_VERSION,
                repository_id=uuid.uuid4().hex,
                created_at=datetime.now(UTC).isoformat(),
                zstd_level=level or DEFAULT_ZSTD_LEVEL,
            )
            if cipher is not None:
                fresh = replace(
                    fresh,
                    encryption={
                        "algorithm": ALGORITHM,
                        "chunk_ids": "HMAC-SHA256",
                        "key_env": key_env,
                        "key_check": cipher.key_check(fresh.repository_id),
                    },
                )
            if backend.put_if_absent(CONFIG_KEY, fresh.to_json()):
                log.info("created clonekit store %s", url)
            data = backend.get(CONFIG_KEY)  # another run may have created it first: theirs wins
        config = RepoConfig.from_json(data, url)
        _check_encryption(config, cipher, key_env, url)
        if level is not None:  # this run's new chunks; any level reads back the same (zstd frames)
            config = replace(config, zstd_level=level)
        return cls(backend, config, cipher, workers=workers)

    # -- chunks ----------------------------------------------------------------------------------

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    def chunk_id(self, data: bytes) -> str:
        if self._cipher is not None:
            return self._cipher.chunk_id(data)
        return hashlib.sha256(data).hexdigest()

    def writer(self, *, workers: int | None = None, max_pending_bytes: int = MAX_PENDING_BYTES) -> ChunkWriter:
        return ChunkWriter(self, workers=workers or self.workers, max_pending_bytes=max_pending_bytes)

    def encode(self, key: str, plain: bytes) -> bytes:
        """The stored form of ``plain`` under ``key``: envelope, zstd, optionally sealed."""
        with _COMPRESSORS.borrow(self.config.zstd_level) as compressor:
            payload: bytes = compressor.compress(plain)
        flags = FLAG_ZSTD
        if len(payload) >= len(plain):  # incompressible: store as is (and hold one copy less meanwhile)
            flags, payload = 0, plain
        return self._envelope(key, flags, payload)

    def encode_pieces(self, key: str, pieces: Callable[[], Iterable[bytes]]) -> bytes:
        """``encode`` of the concatenation of what ``pieces()`` yields, without ever holding it
        whole: the manifest of a tree of 100,000 files is 40 MB of JSON and 6 MB stored. The zstd
        frame does not record its size (``decode`` then reads it as a stream); ``pieces`` is called
        again only for a payload that does not compress (not a manifest in practice)."""
        size = 0
        with _COMPRESSORS.borrow(self.config.zstd_level) as compressor:
            stream = compressor.compressobj()
            parts = []
            for piece in pieces():
                size += len(piece)
                parts.append(stream.compress(piece))
            parts.append(stream.flush())
        payload = b"".join(parts)
        del parts
        if len(payload) >= size:
            return self.encode(key, b"".join(pieces()))
        return self._envelope(key, FLAG_ZSTD, payload)

    def _envelope(self, key: str, flags: int, payload: bytes) -> bytes:
        if self._cipher is not None:
            flags |= FLAG_SEALED
            payload = self._cipher.seal(payload, key.encode())
        return MAGIC + bytes((ENVELOPE_VERSION, flags)) + payload

    def decode(self, key: str, blob: bytes) -> bytes:
        if len(blob) < HEADER_BYTES or blob[:2] != MAGIC:
            raise IntegrityError(f"{key}: not a clonekit object (bad header)")
        version, flags = blob[2], blob[3]
        if version != ENVELOPE_VERSION:
            raise IntegrityError(f"{key}: unknown object version {version}")
        payload: bytes | memoryview = memoryview(blob)[HEADER_BYTES:]  # no copy of the stored bytes
        if flags & FLAG_SEALED:
            if self._cipher is None:
                raise IntegrityError(f"{key}: object is encrypted but the store is opened without a key")
            payload = self._cipher.open(payload, key.encode(), key)
        elif self._cipher is not None:
            raise IntegrityError(f"{key}: object is not encrypted in an encrypted store")
        if flags & FLAG_ZSTD:
            try:
                if zstandard.frame_content_size(payload) == -1:  # written as a stream (encode_pieces)
                    return _decompress_stream(payload)
                return _decompressor().decompress(payload, max_output_size=MAX_CHUNK_PLAIN_BYTES)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"{key}: cannot decompress ({exc})") from exc
        return bytes(payload)

    def get_chunk(self, chunk_id: str) -> bytes:
        """The plain bytes of a chunk, verified against its id.

        A chunk that fails its check is read once more before IntegrityError: a damaged
        transfer is not a damaged object.
        """
        try:
            return self._read_chunk(chunk_id)
        except IntegrityError as first:
            if isinstance(first.__cause__, MissingObjectError):
                raise
            log.warning("chunk %s failed its check; reading it again", chunk_id[:16])
        try:
            return self._read_chunk(chunk_id)
        except IntegrityError as second:
            if isinstance(second.__cause__, MissingObjectError) or not self.quarantine(chunk_id):
                raise
            raise IntegrityError(
                second.message,
                hint=f"it was moved to {bad_key(chunk_id)}; the next `clonekit snapshot` of the source stores a good copy",
            ) from second

    def _read_chunk(self, chunk_id: str) -> bytes:
        key = chunk_key(chunk_id)
        try:
            blob = self.store.get(key)
        except MissingObjectError as exc:
            aside = f" (a corrupt copy was set aside as {bad_key(chunk_id)})" if self.store.exists(bad_key(chunk_id)) else ""
            raise IntegrityError(
                f"chunk {chunk_id} is missing from the store {self.url}{aside}",
                hint="the next `clonekit snapshot` of the source stores it again if the source still has that data",
            ) from exc
        return self._check_chunk(chunk_id, key, blob)

    def _check_chunk(self, chunk_id: str, key: str, blob: bytes) -> bytes:
        plain = self.decode(key, blob)
        actual = self.chunk_id(plain)
        if actual != chunk_id:
            raise IntegrityError(f"chunk {chunk_id} is corrupt: its content hashes to {actual[:16]}...")
        return plain

    def quarantine(self, chunk_id: str) -> bool:
        """Set a corrupt chunk aside: its bytes go to ``bad/<id>`` and ``chunks/.../<id>`` is removed,
        so every later snapshot sees it missing and stores a good copy (dedup trusts only the listing).

        The object is read and checked once more first: a copy that is good by now (healed by a
        concurrent snapshot) stays. True when the chunk was set aside. A store that refuses the
        move (read-only) leaves the object in place, with a warning.
        """
        key = chunk_key(chunk_id)
        try:
            blob = self.store.get(key)
        except MissingObjectError:
            return False
        except StoreError as exc:
            log.warning("chunk %s is corrupt but could not be set aside: %s", chunk_id, exc.message)
            return False
        try:
            self._check_chunk(chunk_id, key, blob)
            return False
        except IntegrityError as exc:
            reason = exc.message
        try:
            self.store.put(bad_key(chunk_id), blob)
            self.store.delete(key)
        except StoreError as exc:
            log.warning("chunk %s is corrupt but could not be set aside: %s", chunk_id, exc.message)
            return False
        self._forget_chunk(chunk_id)
        log.warning("%s; moved to %s: the next snapshot stores a good copy", reason, bad_key(chunk_id))
        return True

    def quarantined(self) -> dict[str, tuple[int, datetime]]:
        """Chunks set aside as corrupt: id -> (size, when)."""
        return {
            info.key[len(BAD_PREFIX) :]: (info.size, info.modified)
            for info in self.store.list(BAD_PREFIX)
            if CHUNK_ID.match(info.key[len(BAD_PREFIX) :])
        }

    def delete_quarantined(self, chunk_id: str) -> None:
        self.store.delete(bad_key(chunk_id))

    def iter_chunks(self, ids: Iterable[str], *, workers: int = 8, read_ahead_bytes: int = READ_AHEAD_BYTES) -> Iterator[bytes]:
        """Chunks in the order of ``ids``, fetched ahead in parallel: at most 2 x workers chunks, and
        no more than about ``read_ahead_bytes`` (by the mean size of the chunks so far), in memory."""
        pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ck-read")
        window: deque[Future[bytes]] = deque()
        source = iter(ids)
        most = 2 * max(1, workers)
        received = count = 0
        try:
            while True:
                mean = received / count if count else FIRST_GUESS_CHUNK_BYTES
                wanted = max(1, min(most, int(read_ahead_bytes // max(mean, 1))))
                while len(window) < wanted:
                    following = next(source, None)
                    if following is None:
                        break
                    window.append(pool.submit(self.get_chunk, following))
                if not window:
                    return
                data = window.popleft().result()
                received += len(data)
                count += 1
                yield data
                GIVE_BACK.freed(len(data))  # the consumer is done with it (memory.py)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def has_chunk(self, chunk_id: str) -> bool:
        return self.store.exists(chunk_key(chunk_id))

    def list_chunks(self) -> dict[str, tuple[int, datetime]]:
        """Every stored chunk: id -> (stored size, modified time)."""
        found: dict[str, tuple[int, datetime]] = {}
        for info in self.store.list(CHUNKS_PREFIX):
            name = info.key.rsplit("/", 1)[-1]
            if CHUNK_ID.match(name):
                found[name] = (info.size, info.modified)
        return found

    def _known_chunks(self) -> dict[str, int]:
        """Stored chunks (id -> stored size), listed once per writer (see ``_drop_chunk_index``):
        dedup without a HEAD per chunk, and a chunk deleted or set aside since is stored again.

        A chunk with a ``bad/<id>`` beside it (a move cut short by a kill, or a store that
        refused the delete) is left out: it is suspect, and its good copy is written over it.
        """
        with self._mutex:
            if self._chunk_index is None:
                listed = self.list_chunks()
                self._set_aside = frozenset(self.quarantined())
                self._chunk_index = {cid: size for cid, (size, _) in listed.items() if cid not in self._set_aside}
            return self._chunk_index

    def _set_aside_chunks(self) -> frozenset[str]:
        """Ids under bad/ as of the last listing (``_known_chunks``)."""
        with self._mutex:
            return self._set_aside

    def _drop_chunk_index(self) -> None:
        """A writer is done: the next one lists the store afresh (a long-lived process must not
        trust a listing that predates a deletion by hand or a lifecycle rule)."""
        with self._mutex:
            self._chunk_index = None

    def _remember_chunk(self, chunk_id: str, stored_size: int, *, written_here: bool) -> None:
        with self._mutex:
            if written_here:
                self._written_here.add(chunk_id)
            if self._chunk_index is not None:
                self._chunk_index[chunk_id] = stored_size

    def _forget_chunk(self, chunk_id: str) -> None:
        with self._mutex:
            if self._chunk_index is not None:
                self._chunk_index.pop(chunk_id, None)
            self._written_here.discard(chunk_id)

    # -- manifests -------------------------------------------------------------------------------

    def commit(self, manifest: Manifest) -> None:
        """Publish ``manifest``: every chunk it names must exist; the manifest is written last."""
        with self.lock(exclusive=False):
            with self._mutex:
                to_check = sorted(manifest.chunk_ids() - self._written_here)
            missing = self._missing_chunks(to_check)
            if missing:
                for chunk_id in missing:  # the next writer of this object stores them again
                    self._forget_chunk(chunk_id)
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise IntegrityError(
                    f"snapshot {manifest.id} not committed: {len(missing)} referenced chunk(s) are missing: {shown}",
                    hint="run the snapshot again: it stores what is missing (they vanished while this one ran)",
                )
            key = manifest_key(manifest.id)
            if not self.store.put_if_absent(key, self.encode_pieces(key, manifest.json_pieces)):
                # Either a retried write that had in fact succeeded, or a real clash of ids.
                if self.read_manifest(manifest.id).to_json() != manifest.to_json():
                    raise StoreError(f"snapshot {manifest.id} already exists in {self.url}")
        with self._mutex:
            self._manifest_cache[manifest.id] = manifest
        self._shared.adopt(manifest)
        log.info("committed snapshot %s (%d chunks)", manifest.id, len(manifest.chunk_ids()))

    def _missing_chunks(self, ids: Sequence[str]) -> list[str]:
        """Which of ``ids`` are not in the store now. Many ids: one fresh listing (a request per
        1,000 keys) instead of a HEAD per chunk; S3 listings are strongly consistent."""
        if not ids:
            return []
        if len(ids) > HEAD_CHECK_LIMIT:
            present_now = self.list_chunks().keys()
            return [cid for cid in ids if cid not in present_now]
        with ThreadPoolExecutor(min(self.workers, len(ids)), thread_name_prefix="ck-check") as pool:
            present = list(pool.map(self.has_chunk, ids))
        return [cid for cid, ok in zip(ids, present, strict=True) if not ok]

    def read_manifest(self, snapshot_id: str) -> Manifest:
        return self._parse_manifest(snapshot_id, self._fetch_manifest(snapshot_id))

    def _fetch_manifest(self, snapshot_id: str) -> bytes:
        try:
            return self.store.get(manifest_key(snapshot_id))
        except MissingObjectError as exc:
            raise NotFoundError(f"snapshot {snapshot_id} does not exist in {self.url}") from exc

    def _parse_manifest(self, snapshot_id: str, blob: bytes) -> Manifest:
        return self._parse(snapshot_id, blob, lambda text: Manifest.from_json(text, self._shared))

    def _parse_head(self, snapshot_id: str, blob: bytes) -> ManifestHead:
        return self._parse(snapshot_id, blob, lambda text: ManifestHead.from_json(text, self._head_pairs))

    def _parse(self, snapshot_id: str, blob: bytes, parse: Callable[[str], M]) -> M:
        key = manifest_key(snapshot_id)
        try:
            # Only the text is alive while it is parsed, not its bytes beside it: 40 MB each for a
            # tree of 100,000 files (docs/benchmarks.md).
            plain = [self.decode(key, blob)]
            del blob
            try:
                text = plain.pop().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise IntegrityError(f"manifest is not valid JSON: {exc}") from exc
            manifest = parse(text)
        except IntegrityError as exc:
            message = exc.message if exc.message.startswith(key) else f"{key}: {exc.message}"
            raise IntegrityError(f"snapshot {snapshot_id} is unreadable: {message}", hint=exc.hint) from exc
        if manifest.id != snapshot_id:
            raise IntegrityError(f"{key} holds snapshot {manifest.id!r}, not {snapshot_id!r}")
        return manifest

    def snapshot_ids(self) -> list[str]:
        """Ids of the committed snapshots, from the listing alone (no manifest is read)."""
        ids = []
        for info in self.store.list(SNAPSHOTS_PREFIX):
            name = info.key[len(SNAPSHOTS_PREFIX) :]
            if "/" not in name and name.endswith(".json"):
                ids.append(name[: -len(".json")])
        return ids

    def _cached_manifest(self, snapshot_id: str) -> Manifest:
        with self._mutex:
            cached = self._manifest_cache.get(snapshot_id)
        if cached is not None:
            return cached
        manifest = self.read_manifest(snapshot_id)
        with self._mutex:
            self._manifest_cache[snapshot_id] = manifest
        return manifest

    def manifests(self, source: str | None = None) -> list[Manifest]:
        """Committed, readable snapshots, oldest first (optionally of one source).

        An unreadable manifest is left out with a warning; ``catalog`` names them to the caller.
        """
        catalog = self.catalog(source)
        for bad in catalog.unreadable:
            log.warning("snapshot %s is unreadable (%s): %s", bad.id, bad.key, bad.reason)
        return list(catalog.manifests)

    def catalog(self, source: str | None = None) -> Catalog[Manifest]:
        """Every committed snapshot: the readable ones oldest first (optionally of one source), and
        every unreadable manifest with its key and the reason (of ``source`` when its id says so)."""
        ids = self.snapshot_ids()
        with self._mutex:
            todo = [i for i in ids if i not in self._manifest_cache]
        unreadable = self._read_each(todo, self._parse_manifest, self._manifest_cache)
        with self._mutex:
            self._forget_gone(set(ids))
            if self._shared_stale:  # the entries only forgotten manifests held are let go too
                self._shared_stale = False
                self._shared = SharedRecords()
                for kept in self._manifest_cache.values():
                    self._shared.adopt(kept)
            found = [self._manifest_cache[i] for i in ids if i in self._manifest_cache]
        return _catalog(found, unreadable, source)

    def heads(self, source: str | None = None) -> Catalog[ManifestHead]:
        """``catalog`` without the file trees' entries: each manifest is read as its head
        (``ManifestHead``), one at a time, so listing and pruning 30 snapshots of 100,000 files
        hold their chunk references, not their 3 million entries (docs/benchmarks.md)."""
        ids = self.snapshot_ids()
        with self._mutex:
            for snapshot_id, whole in self._manifest_cache.items():  # already read: its head is at hand
                if snapshot_id not in self._head_cache:
                    self._head_cache[snapshot_id] = ManifestHead.of(whole, self._head_pairs)
            todo = [i for i in ids if i not in self._head_cache]
        unreadable = self._read_each(todo, self._parse_head, self._head_cache)
        with self._mutex:
            self._forget_gone(set(ids))
            if self._pairs_stale:  # the references only forgotten heads held are let go too
                self._pairs_stale = False
                pairs: dict[tuple[str, int], tuple[str, int]] = {}
                for head in self._head_cache.values():
                    pairs.update((pair, pair) for pair in head.refs)
                self._head_pairs = pairs
            found = [self._head_cache[i] for i in ids if i in self._head_cache]
        return _catalog(found, unreadable, source)

    def _read_each(self, todo: list[str], parse: Callable[[str, bytes], M], into: dict[str, M]) -> list[UnreadableManifest]:
        """Fetch the manifests ``todo`` in parallel (a remote store's latency) and parse them one at
        a time (a parse holds the manifest's whole text beside what it makes) into ``into``."""
        unreadable: list[UnreadableManifest] = []
        if not todo:
            return unreadable
        with ThreadPoolExecutor(min(self.workers, len(todo)), thread_name_prefix="ck-manifest") as pool:
            fetching = ordered_map(pool, self._try_fetch_manifest, todo, MANIFESTS_AHEAD)
            for snapshot_id, fetched in zip(todo, fetching, strict=True):
                item = fetched if not isinstance(fetched, bytes) else _tolerantly(snapshot_id, partial(_parse_with, parse, fetched))
                del fetched
                if isinstance(item, UnreadableManifest):
                    unreadable.append(item)
                elif item is not None:
                    with self._mutex:
                        into[item.id] = item
        return unreadable

    def _forget_gone(self, present: set[str]) -> None:
        """Let go of the cached manifests and heads no longer in the store (under ``_mutex``)."""
        for snapshot_id in (set(self._manifest_cache) | set(self._head_cache)) - present:
            self._forget_cached(snapshot_id)

    def _forget_cached(self, snapshot_id: str) -> None:
        if self._manifest_cache.pop(snapshot_id, None) is not None:
            self._shared_stale = True
        if self._head_cache.pop(snapshot_id, None) is not None:
            self._pairs_stale = True

    def _try_read_manifest(self, snapshot_id: str) -> Manifest | UnreadableManifest | None:
        return _tolerantly(snapshot_id, self.read_manifest)

    def _try_fetch_manifest(self, snapshot_id: str) -> bytes | UnreadableManifest | None:
        return _tolerantly(snapshot_id, self._fetch_manifest)

    def latest(self, source: str | None = None) -> Manifest | None:
        """The newest snapshot (of ``source``), reading only the manifests that can be the newest:
        ids carry their source and UTC second, so a nightly run does not download the history."""
        ids = self.snapshot_ids()
        parsed = [(_SNAPSHOT_ID_PARTS.match(i), i) for i in ids]
        if not all(match for match, _ in parsed):  # an id of another shape: read them all
            found = self.manifests(source)
            return found[-1] if found else None
        stamps = [(m.group("stamp"), i) for m, i in parsed if m and (source is None or m.group("source") == source)]
        # Newest second first; an unreadable manifest is passed over (with a warning), so one
        # damaged file does not stop every later snapshot.
        for stamp in sorted({stamp for stamp, _ in stamps}, reverse=True):
            tied = []
            for i in (i for s, i in stamps if s == stamp):
                item = self._try_cached_manifest(i)
                if isinstance(item, UnreadableManifest):
                    log.warning("snapshot %s is unreadable (%s), passed over: %s", item.id, item.key, item.reason)
                elif item is not None:
                    tied.append(item)
            if tied:  # several in the same second: their manifests' times decide, as manifests() orders them
                return max(tied, key=lambda m: (m.created_at, m.id))
        return None

    def _try_cached_manifest(self, snapshot_id: str) -> Manifest | UnreadableManifest | None:
        with self._mutex:
            cached = self._manifest_cache.get(snapshot_id)
        if cached is not None:
            return cached
        item = self._try_read_manifest(snapshot_id)
        if isinstance(item, Manifest):
            with self._mutex:
                self._manifest_cache[snapshot_id] = item
        return item

    def resolve(self, spec: str) -> Manifest:
        """A full id, a unique id prefix, ``latest`` or ``SOURCE@latest``."""
        spec = spec.strip()
        if spec == "latest" or spec.endswith("@latest"):
            source = None if spec == "latest" else spec[: -len("@latest")]
            newest = self.latest(source)
            if newest is not None:
                return newest
            if source is None:
                raise NotFoundError(f"no snapshots in the store {self.url}", hint="take one with `clonekit snapshot SOURCE`")
            sources = sorted({m.source for m in self.heads().manifests})
            known = ", ".join(sources) if sources else "none yet"
            raise NotFoundError(
                f"no snapshot of source {source!r} in the store (sources with snapshots: {known})",
                hint=f"take one with `clonekit snapshot {source}`",
            )
        ids = self.snapshot_ids()
        if spec in ids:
            return self._cached_manifest(spec)
        matches = sorted(i for i in ids if spec and i.startswith(spec))
        if len(matches) == 1:
            return self._cached_manifest(matches[0])
        if len(matches) > 1:
            names = ", ".join(matches[:10]) + (" ..." if len(matches) > 10 else "")
            raise NotFoundError(f"{spec!r} is ambiguous: it matches {len(matches)} snapshots ({names})", hint="type more of the id")
        raise NotFoundError(
            f"no snapshot matches {spec!r} in the store {self.url}",
            hint="`clonekit snapshots` lists them; `latest` and `SOURCE@latest` are accepted too",
        )

    def delete_manifest(self, snapshot_id: str) -> None:
        self.store.delete(manifest_key(snapshot_id))
        with self._mutex:
            self._forget_cached(snapshot_id)

    def delete_chunk(self, chunk_id: str) -> None:
        self.store.delete(chunk_key(chunk_id))
        self._forget_chunk(chunk_id)

    # -- verify ----------------------------------------------------------------------------------

    def verify(self, manifest: Manifest, progress: Callable[..., None] | None = None, *, workers: int | None = None) -> VerifyReport:
        """Read every object of ``manifest`` back from the store and check it; names every bad one."""
        bad: list[BadObject] = []
        try:
            stored = self.read_manifest(manifest.id)
            if stored.to_json() != manifest.to_json():
                bad.append(BadObject(manifest_key(manifest.id), "stored manifest differs from the one given"))
        except (IntegrityError, StoreError, NotFoundError) as exc:
            bad.append(BadObject(manifest_key(manifest.id), exc.message))
        refs = manifest.chunk_refs()
        total = sum(max(0, s) for s in refs.values())
        if progress is not None:
            progress("verify", total=total)

        def check(item: tuple[str, int]) -> tuple[int, BadObject | None]:
            chunk_id, size = item
            try:
                plain = self.get_chunk(chunk_id)
            except (IntegrityError, StoreError) as exc:
                reason = exc.message if exc.hint is None else f"{exc.message} ({exc.hint})"
                return max(0, size), BadObject(chunk_key(chunk_id), reason)
            if size >= 0 and len(plain) != size:
                return size, BadObject(chunk_key(chunk_id), f"chunk {chunk_id} has {len(plain)} bytes, the manifest says {size}")
            return len(plain), None

        checked = 0
        with ThreadPoolExecutor(workers or self.workers, thread_name_prefix="ck-verify") as pool:
            for size, problem in pool.map(check, sorted(refs.items())):
                checked += size
                if problem is not None:
                    bad.append(problem)
                if progress is not None:
                    progress("verify", advance=size)
        return VerifyReport(manifest.id, len(refs), checked, tuple(bad))

    # -- locks -----------------------------------------------------------------------------------

    @contextmanager
    def lock(self, *, exclusive: bool, wait_seconds: float | None = None) -> Iterator[None]:
        """Store-wide advisory lock: many shared holders (snapshots) or one exclusive (prune).

        Waits up to ``wait_seconds`` (default CLONEKIT_LOCK_WAIT_SECONDS) then raises LockedError.
        Locks are refreshed while held; one not refreshed for LOCK_STALE_SECONDS is ignored. A
        lock whose owner ran on this host and is gone (killed) is removed at once (clonekit.owner).
        """
        wait = LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
        kind = "exclusive" if exclusive else "shared"
        key = f"{LOCKS_PREFIX}{kind}-{uuid.uuid4().hex}.json"
        body = json.dumps(
            {"kind": kind, **Owner.current().to_json(), "created_at": datetime.now(UTC).isoformat()}
        ).encode()
        blockers: list[str] = []

        def take() -> bool | None:
            nonlocal blockers
            self.store.put(key, body)
            blockers = self._lock_blockers(key, exclusive)
            if not blockers:
                return True
            self.store.delete(key)
            return None

        if poll(take, timeout=wait, interval=0.05, max_interval=2.0) is None:
            raise LockedError(
                f"the store {self.url} is locked by another clonekit run ({self._describe_locks(blockers)})",
                hint=(
                    "wait for it to finish and try again; a lock left by a killed run is taken over at once "
                    "on the host that ran it, and expires everywhere "
                    f"{LOCK_STALE_SECONDS // 60} minutes after its last refresh"
                ),
            )
        stop = threading.Event()
        refresher = threading.Thread(target=self._refresh_lock, args=(key, body, stop), name="ck-lock", daemon=True)
        refresher.start()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            stop.set()
            refresher.join()
            # After a failure (perhaps a stalled store), one attempt only: the run must end now, and
            # a lock left behind is taken over at once on this host (stale after LOCK_STALE_SECONDS).
            store = getattr(self.store, "inner", self.store) if failed else self.store
            try:
                store.delete(key)
            except StoreError as exc:  # never hide the body's own error; an orphan lock goes stale
                log.warning("could not remove lock %s: %s", key, exc.message)

    def _lock_blockers(self, own_key: str, exclusive: bool) -> list[str]:
        now = datetime.now(UTC)
        blockers = []
        for info in self.store.list(LOCKS_PREFIX):
            if info.key == own_key:
                continue
            if (now - info.modified).total_seconds() > LOCK_STALE_SECONDS:
                log.warning("ignoring stale lock %s (last refreshed %s)", info.key, info.modified.isoformat())
                continue
            if exclusive or info.key[len(LOCKS_PREFIX) :].startswith("exclusive-"):
                if not self._take_over_if_gone(info.key):
                    blockers.append(info.key)
        return blockers

    def _take_over_if_gone(self, key: str) -> bool:
        """Remove the lock ``key`` if its owner is a process of this host that is gone; True if removed."""
        try:
            owner = Owner.from_json(json.loads(self.store.get(key)))
        except MissingObjectError:
            return True  # released meanwhile
        except (StoreError, ValueError):
            return False
        if owner is None or not owner.is_gone():
            return False
        log.warning("taking over lock %s of %s: that process is gone (killed?)", key, owner)
        try:
            self.store.delete(key)
        except MissingObjectError:
            pass
        return True

    def _describe_locks(self, keys: list[str]) -> str:
        parts = []
        for key in keys[:3]:
            try:
                raw = json.loads(self.store.get(key))
                parts.append(f"{raw.get('kind')} lock of pid {raw.get('pid')} on {raw.get('host')} since {raw.get('created_at')}")
            except (StoreError, ValueError):
                parts.append(key)
        return "; ".join(parts)

    def _refresh_lock(self, key: str, body: bytes, stop: threading.Event) -> None:
        while not stop.wait(LOCK_STALE_SECONDS / 4):
            try:
                self.store.put(key, body)
            except StoreError as exc:  # the next refresh may succeed; the lock only expires much later
                log.warning("could not refresh lock %s: %s", key, exc.message)


def _id_source(snapshot_id: str) -> str | None:
    """The source named in a snapshot id (``prod-20261126-031500-1a2b``), None for another shape."""
    match = _SNAPSHOT_ID_PARTS.match(snapshot_id)
    return match.group("source") if match else None


def _check_encryption(config: RepoConfig, cipher: Cipher | None, key_env: str | None, url: str) -> None:
    enc = config.encryption
    if enc and cipher is None:
        raise ConfigError(
            f"the store {url} is encrypted: set store_options.encryption_key_env to the variable holding its key",
            hint=f"it was created with the key in ${enc.get('key_env')}" if enc.get("key_env") else None,
        )
    if not enc and cipher is not None:
        raise ConfigError(
            f"the store {url} was created without encryption, but encryption_key_env ({key_env}) is set",
            hint="use a new, empty store for encrypted snapshots, or remove encryption_key_env",
        )
    if enc and cipher is not None:
        if enc.get("algorithm") != ALGORITHM:
            raise ConfigError(f"the store {url} uses encryption {enc.get('algorithm')!r}, which this clonekit does not know")
        if cipher.key_check(config.repository_id) != enc.get("key_check"):
            raise ConfigError(f"the key in {key_env} does not open the store {url} (wrong key)")


class ChunkWriter:
    """Stores chunks in parallel with bounded memory. ``put`` is thread-safe; use as a context manager."""

    def __init__(self, repo: Repository, *, workers: int, max_pending_bytes: int) -> None:
        share_malloc_arenas()  # before this capture's threads pass chunks around (memory.py)
        self._repo = repo
        self._known = repo._known_chunks()
        self._set_aside = repo._set_aside_chunks()
        self._max_pending = max(1, max_pending_bytes)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ck-upload")
        self._cond = threading.Condition()
        self._pending_bytes = 0
        self._seen: set[str] = set()
        self._in_flight: set[str] = set()  # queued or being uploaded: not yet readable from the store
        self._error: BaseException | None = None
        self._closed = False
        self._aborted = False
        self._stats = _MutableStats()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def stats(self) -> WriterStats:
        with self._cond:
            return self._stats.frozen()

    def has(self, chunk_id: str) -> bool:
        """Whether the chunk is in the store (as listed when this writer started) or on its way
        there: what a snapshot may reference without storing it again. No request per call."""
        with self._cond:
            return chunk_id in self._seen or chunk_id in self._known

    def put(self, data: bytes) -> ChunkRef:
        """Hash now; compress and upload on a worker; block while too many bytes are pending."""
        if self._closed:
            raise StoreError("ChunkWriter.put() after close()")
        chunk_id = self._repo.chunk_id(data)
        size = len(data)
        ref = ChunkRef(chunk_id, size)
        with self._cond:
            self._raise_failure()
            self._stats.chunks += 1
            self._stats.plain_bytes += size
            if chunk_id in self._seen:
                return ref
            self._seen.add(chunk_id)
            stored = self._known.get(chunk_id)
            if stored is not None:
                self._stats.stored_bytes += stored
                return ref
            while self._pending_bytes > 0 and self._pending_bytes + size > self._max_pending:
                self._cond.wait()
                self._raise_failure()
            self._pending_bytes += size
            self._in_flight.add(chunk_id)
        self._pool.submit(self._upload, chunk_id, data)
        return ref

    def wait_stored(self, chunk_ids: Iterable[str]) -> None:
        """Block until every chunk of ``chunk_ids`` this writer was given is in the store (readable
        by ``Repository.get_chunk``); raise the first upload error instead. A pipelined clone
        loads a table from the store while the rest of its snapshot is still being captured."""
        wanted = set(chunk_ids)
        with self._cond:
            while True:
                self._raise_failure()
                if self._in_flight.isdisjoint(wanted):
                    return
                if self._aborted:
                    raise StoreError("the snapshot's upload stopped before these chunks were stored")
                self._cond.wait()

    def _upload(self, chunk_id: str, data: bytes) -> None:
        size = len(data)
        try:
            if self._error is not None:
                return
            key = chunk_key(chunk_id)
            blob = self._repo.encode(key, data)
            if chunk_id in self._set_aside:
                # Set aside as corrupt. A bad copy may still be in chunks/ (a move cut short by a
                # kill, a store that refused the delete): write over it, one atomic PUT/rename.
                self._repo.store.put(key, blob)
                self._repo.delete_quarantined(chunk_id)  # healed: the bad copy has served its purpose
                log.warning("chunk %s had been set aside as corrupt: a good copy is stored again", chunk_id)
                wrote = True
            else:
                wrote = self._repo.store.put_if_absent(key, blob)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by close()/put()
            with self._cond:
                if self._error is None:
                    self._error = exc
                self._pending_bytes -= size
                self._cond.notify_all()
            return
        self._repo._remember_chunk(chunk_id, len(blob), written_here=wrote)
        with self._cond:
            self._in_flight.discard(chunk_id)
            self._pending_bytes -= size
            self._stats.stored_bytes += len(blob)
            if wrote:
                self._stats.new_chunks += 1
                self._stats.new_plain_bytes += size
                self._stats.new_stored_bytes += len(blob)
            self._cond.notify_all()
        GIVE_BACK.freed(size)  # the chunk and its stored form are done with (memory.py)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait for every upload; raise the first error."""
        self._closed = True
        self._pool.shutdown(wait=True)
        self._repo._drop_chunk_index()
        with self._cond:
            self._raise_failure()

    def abort(self) -> None:
        """Stop: drop queued uploads, wait for running ones. Chunks already stored stay for the next run."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._repo._drop_chunk_index()
        with self._cond:
            self._aborted = True
            self._cond.notify_all()


@dataclass
class _MutableStats:
    chunks: int = 0
    new_chunks: int = 0
    plain_bytes: int = 0
    new_plain_bytes: int = 0
    stored_bytes: int = 0
    new_stored_bytes: int = 0

    def frozen(self) -> WriterStats:
        return WriterStats(
            chunks=self.chunks,
            new_chunks=self.new_chunks,
            plain_bytes=self.plain_bytes,
            new_plain_bytes=self.new_plain_bytes,
            stored_bytes=self.stored_bytes,
            new_stored_bytes=self.new_stored_bytes,
        )

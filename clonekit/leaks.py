"""``clonekit verify SNAPSHOT --leaks FILE``: prove that known personal values are nowhere in a snapshot.

FILE holds values that must not survive sanitization (real e-mail addresses, names, phone
numbers, IP addresses of the production), one a line. Every stored object of the snapshot is
read back decompressed: each table row field by field, each file's path and content, and the
manifest itself (table definitions, views and triggers, container configuration). A hit names
the line of FILE and the place (table, column and row numbers, file path, manifest key), never
the value.

A value is searched case-insensitively, as a whole word (``Riou`` is not found in ``Rioux``),
as written and as applications store it: escaped for the dump format, in JSON
(``\\u00e9``, ``\\/``) and URL-encoded (``%40``).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .files.restore import ChunkSource
from .manifest import Manifest

MIN_VALUE_CHARS = 4  # shorter values would be found everywhere
MAX_ROWS_LISTED = 5  # row numbers listed per table column; the count says how many more
_OVERLAP_BYTES = 1024  # a file's pieces are searched with this much of the previous one


@dataclass(frozen=True)
class LeakValue:
    line: int  # 1-based line of the values file
    text: str


@dataclass(frozen=True)
class Leak:
    line: int  # which value (its line in the values file)
    place: str  # "table" | "file" | "file name" | "manifest"
    where: str  # human form: "wp_users.user_email rows 2, 7" / "uploads: 2026/11/cv.txt"
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "place": self.place, "where": self.where, **dict(self.detail)}


@dataclass(frozen=True)
class LeakReport:
    snapshot_id: str
    values_file: str
    values: int  # values searched
    skipped_lines: tuple[int, ...]  # too short to search
    tables: int
    rows: int
    files: int
    bytes_searched: int
    leaks: tuple[Leak, ...]

    @property
    def ok(self) -> bool:
        return not self.leaks

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id,
            "values_file": self.values_file,
            "values": self.values,
            "skipped_lines": list(self.skipped_lines),
            "searched": {"tables": self.tables, "rows": self.rows, "files": self.files, "bytes": self.bytes_searched},
            "leaks": [leak.to_json() for leak in self.leaks],
            "ok": self.ok,
        }

    def describe(self) -> str:
        name = os.path.basename(self.values_file)
        lines = [f"LEAK line {leak.line} of {name}: {leak.place} {leak.where}" for leak in self.leaks]
        if self.skipped_lines:
            plural = "s" if len(self.skipped_lines) > 1 else ""
            lines.append(f"note: line{plural} {', '.join(map(str, self.skipped_lines))} of {name}: shorter than "
                         f"{MIN_VALUE_CHARS} characters, not searched")
        found = len({leak.line for leak in self.leaks})
        verdict = "no known value found" if self.ok else f"{found} of the values found in {len(self.leaks)} place(s)"
        lines.append(f"{self.snapshot_id}: {self.values} values searched in {self.tables} tables ({self.rows} rows), "
                     f"{self.files} files and the manifest: {verdict}")
        return "\n".join(lines)


def read_values(path: str | Path) -> tuple[list[LeakValue], list[int]]:
    """The values of FILE (one a line, blank lines ignored) and the lines too short to search."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file of personal values ({exc.strerror})",
                          hint="give a text file with one known personal value a line") from exc
    values: list[LeakValue] = []
    short: list[int] = []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if len(text) < MIN_VALUE_CHARS:
            short.append(number)
        else:
            values.append(LeakValue(number, text))
    if not values:
        raise ConfigError(f"{path}: no value to search (one known personal value a line, at least "
                          f"{MIN_VALUE_CHARS} characters)")
    return values, short


def _forms(text: str) -> set[bytes]:
    """The value as written and as applications and the dump format store it (lower case)."""
    forms = {text}
    escaped = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    forms.add(escaped)
    as_json = json.dumps(text)[1:-1]
    forms.update({as_json, as_json.replace("/", "\\/")})
    forms.update({urllib.parse.quote(text, safe=""), urllib.parse.quote_plus(text, safe="")})
    return {f.encode("utf-8").lower() for f in forms if f}


def _trie_pattern(words: Iterable[bytes]) -> bytes:
    """One regular expression for many words, factored by prefix: the engine follows only the
    prefixes that match, so the time grows with the data, not with the number of values."""
    root: dict[int, Any] = {}
    for word in words:
        node = root
        for byte in word:
            node = node.setdefault(byte, {})
        node[-1] = {}

    def build(node: dict[int, Any]) -> bytes:
        branches = [re.escape(bytes([byte])) + build(child) for byte, child in sorted(node.items()) if byte >= 0]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if -1 in node else body

    return build(root)


def _word_byte(data: bytes, index: int) -> bool:
    return 0 <= index < len(data) and (97 <= data[index] <= 122 or 48 <= data[index] <= 57)


class Matcher:
    """Every value at once: one prefix-factored regular expression finds candidates, each
    candidate is then checked against the values it may be (whole word, any stored form)."""

    def __init__(self, values: Sequence[LeakValue]) -> None:
        self.values = list(values)
        self._lines: dict[bytes, set[int]] = {}
        for value in self.values:
            for form in _forms(value.text):
                self._lines.setdefault(form, set()).add(value.line)
        self._lengths = sorted({len(f) for f in self._lines})
        self._any = re.compile(_trie_pattern(self._lines))

    def anything(self, data: bytes) -> bool:
        """Cheap first look: may ``data`` hold a value? (False means surely not.)"""
        return self._any.search(data.lower()) is not None

    def lines(self, data: bytes) -> list[int]:
        """Lines of the values that ``data`` holds, each as a whole word."""
        lowered = data.lower()
        found: set[int] = set()
        match = self._any.search(lowered)
        while match is not None:
            start, text = match.start(), match.group()
            for length in self._lengths:  # every value that starts here, not only the longest
                if length > len(text):
                    break
                lines = self._lines.get(text[:length])
                if lines and not (
                    (_word_byte(text, 0) and _word_byte(lowered, start - 1))
                    or (_word_byte(text, length - 1) and _word_byte(lowered, start + length))
                ):
                    found.update(lines)
            match = self._any.search(lowered, start + 1)
        return sorted(found)


def find_leaks(repo: ChunkSource, manifest: Manifest, values: Sequence[LeakValue], skipped: Sequence[int],
               values_file: str) -> LeakReport:
    """Search every table row, file, manifest field and any other chunk of a snapshot for ``values``."""
    from .db.codec import unescape
    from .files import iter_files
    from .files.entries import iter_entries, tree_chunk_ids
    from .files.tree import decode_name, entry_path

    matcher = Matcher(values)
    leaks: list[Leak] = []
    searched = rows_total = files = 0
    seen_chunks: set[str] = set()

    database = manifest.database or {}
    tables = list(database.get("tables", ()))
    for table in tables:
        columns = list(table.get("columns", ()))
        hits: dict[tuple[int, str], list[int]] = {}
        row = 0
        ids = [ref["id"] for ref in table.get("chunks", ())]
        seen_chunks.update(ids)
        for chunk in repo.iter_chunks(ids, workers=4):
            searched += len(chunk)
            if not matcher.anything(chunk):
                row += chunk.count(b"\n")
                continue
            for line in chunk.split(b"\n")[:-1] if chunk.endswith(b"\n") else chunk.split(b"\n"):
                row += 1
                if not matcher.anything(line):
                    continue
                for position, raw in enumerate(line.split(b"\t")):
                    name = columns[position] if position < len(columns) else f"#{position + 1}"
                    for value_line in matcher.lines(unescape(raw)):
                        hits.setdefault((value_line, name), []).append(row)
        rows_total += row
        for (value_line, column), rows in sorted(hits.items()):
            listed = ", ".join(map(str, rows[:MAX_ROWS_LISTED])) + (f" and {len(rows) - MAX_ROWS_LISTED} more"
                                                                    if len(rows) > MAX_ROWS_LISTED else "")
            leaks.append(Leak(value_line, "table", f"{table['name']}.{column} row{'s' if len(rows) > 1 else ''} {listed}",
                              {"table": table["name"], "column": column, "rows": rows[:100], "count": len(rows)}))

    for section in manifest.files:
        root = str(section.get("path", ""))
        seen_chunks.update(tree_chunk_ids(section))  # searched as the names they hold, decoded
        for item in iter_entries(section, repo):
            seen_chunks.update(ref["id"] for ref in item.get("chunks", ()))
            path = entry_path(item)
            names = [path] + [decode_name(item, k) for k in ("target", "link") if k in item or f"{k}_b64" in item]
            for value_line in sorted({line for name in names for line in matcher.lines(name)}):
                leaks.append(Leak(value_line, "file name", f"{root}: {os.fsdecode(path)}",
                                  {"root": root, "path": os.fsdecode(path)}))
        for path, pieces in iter_files(repo, section):
            files += 1
            found: set[int] = set()
            tail = b""
            for piece in pieces:
                data = tail + bytes(piece)
                searched += len(piece)
                found.update(matcher.lines(data))
                tail = data[-_OVERLAP_BYTES:]
            for value_line in sorted(found):
                leaks.append(Leak(value_line, "file", f"{root}: {os.fsdecode(path)} (content)",
                                  {"root": root, "path": os.fsdecode(path)}))

    other = sorted(manifest.chunk_ids() - seen_chunks)  # a section this version does not know: raw bytes
    for chunk_id, chunk in zip(other, repo.iter_chunks(other, workers=4), strict=True):
        searched += len(chunk)
        for value_line in matcher.lines(chunk):
            leaks.append(Leak(value_line, "chunk", chunk_id, {"chunk": chunk_id}))

    sections = {"database": manifest.database, "files": list(manifest.files), "services": manifest.services}
    for key_path, text in _strings(sections, ()):
        encoded = text.encode("utf-8", "surrogateescape")
        searched += len(encoded)
        for value_line in matcher.lines(encoded):
            where = ".".join(key_path)
            leaks.append(Leak(value_line, "manifest", where, {"key": where}))

    leaks.sort(key=lambda leak: (leak.line, leak.place, leak.where))
    return LeakReport(
        snapshot_id=manifest.id, values_file=values_file, values=len(values), skipped_lines=tuple(skipped),
        tables=len(tables), rows=rows_total, files=files, bytes_searched=searched, leaks=tuple(leaks),
    )


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string of the manifest sections (keys too) with its place, chunk lists left out
    (their data is searched above) and file entry names (searched decoded above)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("chunks", "entries"):  # searched above: data and decoded file names
                continue
            label = str(key)
            if isinstance(key, str):
                yield (*path, label), label
            yield from _strings(item, (*path, label))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            name = item.get("name") if isinstance(item, Mapping) else None
            yield from _strings(item, (*path, str(name) if isinstance(name, str) else f"[{index}]"))
    elif isinstance(value, str):
        yield path, value

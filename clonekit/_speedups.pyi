"""Types of the optional compiled module (clonekit/_speedups.c)."""

from collections.abc import Callable, Hashable

def rewrite_strings(data: bytes, rewrite: Callable[[bytes | int | None, bytes], bytes], nested: bool, /) -> bytes | None: ...
def rewrite_strings_by_key(
    data: bytes,
    fns: dict[Hashable, Callable[[bytes], bytes]],
    fn_for: Callable[[bytes | int | None], Callable[[bytes], bytes]],
    keeps_plain: Callable[[bytes], bytes] | None,
    nested: bool,
    /,
) -> bytes | None: ...
def transform_batch(
    data: bytes,
    transform: Callable[[tuple[object, ...]], tuple[object, ...]],
    decoders: tuple[tuple[int, Callable[[bytes], object] | None, bool], ...],
    value_field: Callable[[object, object], bytes],
    columns: tuple[object, ...],
    scale: int,
    /,
) -> tuple[bytes, list[int], int]: ...
def crc32(data: bytes, /) -> int: ...
def sha256_pad_state(block: bytes, /) -> bytes: ...
def hmac_digest(inner_state: bytes, outer_state: bytes, domain: bytes, value: str | bytes, /) -> bytes: ...
def bind_rows(data: bytes, start: int, width: int, rows: int, limit: int, /) -> tuple[bytes, bytes, int, int, int]: ...

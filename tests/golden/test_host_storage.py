"""The materialize warning about whole-file copies: overlay2 on a filesystem without reflink."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from clonekit.golden import COPY_UP_WARN_BYTES, warn_whole_file_copies
from clonekit.runtime.docker import DockerEngine


class Engine:
    def __init__(self, driver: str, backing: str) -> None:
        self.answer = (driver, backing)

    def storage(self) -> tuple[str, str]:
        return self.answer


def manifest(*sizes: int) -> SimpleNamespace:
    return SimpleNamespace(database={"tables": [{"name": f"t{i}", "bytes": size} for i, size in enumerate(sizes)]})


@pytest.mark.parametrize(("driver", "backing", "sizes", "warned"), [
    ("overlay2", "extfs", (10, COPY_UP_WARN_BYTES + 1), True),
    ("overlay2", "extfs", (10, COPY_UP_WARN_BYTES - 1), False),  # small tables: the copy is cheap
    ("overlay2", "xfs", (COPY_UP_WARN_BYTES * 4,), False),  # reflink: the copy is instant
    ("overlay2", "btrfs", (COPY_UP_WARN_BYTES * 4,), False),
    ("btrfs", "", (COPY_UP_WARN_BYTES * 4,), False),  # snapshots, no copy-up
    ("", "", (COPY_UP_WARN_BYTES * 4,), False),  # the engine did not tell
])
def test_warned_only_when_a_large_table_would_be_copied_whole(caplog, driver, backing, sizes, warned) -> None:
    caplog.set_level(logging.WARNING, logger="clonekit.golden")
    warn_whole_file_copies(Engine(driver, backing), manifest(*sizes))  # type: ignore[arg-type]
    assert bool(caplog.records) is warned
    if warned:
        assert "t1" in caplog.text and "docs/golden.md" in caplog.text


def test_no_database_no_warning(caplog) -> None:
    warn_whole_file_copies(Engine("overlay2", "extfs"), SimpleNamespace(database=None))  # type: ignore[arg-type]
    assert not caplog.records


def test_the_real_engine_tells_its_storage(docker) -> None:
    driver, backing = DockerEngine().storage()
    assert driver  # overlay2 here; its filesystem too
    assert backing or driver != "overlay2"

"""`latest` and `resolve` find a snapshot from the listing, reading only the manifests they return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from support import make_manifest

from clonekit.config import StoreConfig
from clonekit.repository import Repository


def _commit(repo: Repository, snapshot_id: str, source: str, at: datetime) -> None:
    repo.commit(make_manifest(snapshot_id=snapshot_id, source=source, at=at))


def test_latest_reads_only_the_newest_manifest(tmp_path: Path) -> None:
    config = StoreConfig(url=str(tmp_path / "store"))
    writer_repo = Repository.open(config)
    start = datetime(2026, 11, 1, 3, 15, tzinfo=UTC)
    for day in range(5):
        at = start + timedelta(days=day)
        _commit(writer_repo, f"prod-{at:%Y%m%d-%H%M%S}-aaaa", "prod", at)
        _commit(writer_repo, f"prod-eu-{at:%Y%m%d-%H%M%S}-bbbb", "prod-eu", at + timedelta(hours=1))
    # Two in the same second: the manifests' own times decide.
    tie = start + timedelta(days=4, minutes=1)
    _commit(writer_repo, f"prod-{tie:%Y%m%d-%H%M%S}-ffff", "prod", tie)
    _commit(writer_repo, f"prod-{tie:%Y%m%d-%H%M%S}-0000", "prod", tie + timedelta(microseconds=5))

    repo = Repository.open(config, create=False)
    reads: list[str] = []
    original = repo.read_manifest
    repo.read_manifest = lambda snapshot_id: (reads.append(snapshot_id), original(snapshot_id))[1]  # type: ignore[method-assign]

    newest = repo.latest("prod")
    assert newest is not None and newest.id.endswith("-0000")
    assert sorted(reads) == sorted(i for i in repo.snapshot_ids() if i.startswith(f"prod-{tie:%Y%m%d-%H%M%S}"))
    assert repo.resolve("prod-eu@latest").source == "prod-eu"
    assert repo.resolve("prod@latest").id == newest.id
    assert len(reads) == 3  # the two tied ones, then prod-eu's newest; nothing else
    assert repo.latest("staging") is None
    # Same order as the full listing gives.
    assert repo.manifests("prod")[-1].id == newest.id

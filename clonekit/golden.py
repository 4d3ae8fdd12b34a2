"""Golden copies: a snapshot loaded once on the preview host, so that previews start in seconds.

``materialize`` starts a database container from the source's database image (as a preview does),
loads the snapshot with the cold loader, stops the server cleanly (slow shutdown: nothing to
recover or purge at the next start) and commits the container into a local image: its layer holds
the loaded data directory. A preview's database container runs that image directly: overlayfs
gives it its own copy-on-write layer, so nothing is copied up front and its writes never reach
the golden image or another preview. The file trees a service mounts are copied into a container
of that service's image and committed too (``use_files_images`` points the preview at it), so files
are copy-on-write as well; a tree under a VOLUME of the service's image becomes a golden volume
instead, which a preview copies inside the engine.

Names and labels: images ``clonekit-golden/PROJECT-db:SNAPSHOT`` and
``clonekit-golden/PROJECT-files-SERVICE:SNAPSHOT``, volumes ``ck-golden-PROJECT-SNAPSHOT-KEY``, all labelled ``clonekit.project``, ``clonekit.snapshot`` and
``clonekit.golden`` (``db`` | ``files``). The record ``<state_dir>/golden/SNAPSHOT.json`` (0600)
says what exists and holds the golden copy's credentials: they are never in labels, argv, logs or
the image's configuration, and every preview replaces them with its own fresh credentials right
after start. ``clonekit.runtime.golden_record`` owns the record (``GoldenCopy``, read and written
whole); a preview finds it there with ``find_golden``.

Images that declare ``VOLUME /var/lib/mysql`` (the official mariadb and mysql images) would lose
the data at commit: for them the datadir moves to ``/var/lib/clonekit-mysql`` through a config file
in ``/etc/mysql/conf.d`` that the commit keeps.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Config
from .db import restore_database
from .db.endpoint import DbEndpoint
from .db.target import (
    CLEAN_SHUTDOWN_SQL,
    account_sql,
    bulk_load,
    find_replace_rows,
    find_replace_tables,
    root_sql,
    run_as_root,
    server_flavor,
    skipped,
    wait_for_database,
)
from .errors import ClonekitError, ConfigError, PreviewError
from .files import iter_tar
from .preview import (
    DB_TIMEOUT_SECONDS,
    fill_volume,
    preview_lock,
    remove_preview,
    run_preview_hooks,
    start_build_preview,
)
from .previews.plan import PREVIEWS_FOLDER
from .previews.slug import slugify
from .private_file import write_private
from .progress import ProgressFn, no_progress
from .runtime import compose as cmp
from .runtime import golden_engine as ge
from .runtime import golden_record as gr
from .runtime import service as svc
from .runtime import swarm as sw
from .runtime.docker import DockerEngine, folders_tar
from .runtime.golden_record import DEFAULT_DATADIR, GoldenCopy
from .runtime.service import in_container, resolve_image

log = logging.getLogger("clonekit.golden")

LABEL_GOLDEN = "clonekit.golden"  # db | files | build (a container being materialized)
GOLDEN_REPOSITORY = "clonekit-golden"
MOVED_DATADIR = "/var/lib/clonekit-mysql"
DATADIR_CNF = "etc/mysql/conf.d/zz-clonekit-datadir.cnf"
# Put into the golden image after its clean shutdown: a preview's server reads its table files
# through the host's page cache, where O_DIRECT (MariaDB's default) read every page from the disk
# in every preview (and, after overlayfs copied a table up, wrote the copy back first). The golden
# files are shared by all previews of the snapshot: cached once. ``loose-``: a server that does
# not know the option starts anyway; fsync stays the durability it had.
GOLDEN_CNF = "etc/mysql/conf.d/zz-clonekit-golden.cnf"
GOLDEN_CNF_TEXT = (b"# clonekit golden image: previews read the golden table files through the page cache\n"
                   b"[mysqld]\nloose-innodb_flush_method = fsync\n")
STOP_TIMEOUT_SECONDS = 900
HOOK_STOP_SECONDS = 30  # the build preview's other services, before its database shuts down


@dataclass(frozen=True)
class GoldenResult:
    snapshot_id: str
    image: str  # the golden database image ("" when the snapshot has no database)
    files_images_or_volumes: tuple[str, ...]  # the golden volumes, one per file tree a preview mounts
    seconds: float
    reused: bool = False  # it was materialized already: nothing was done
    hooks: tuple[Mapping[str, Any], ...] = ()  # the after_materialize hooks baked into it


# -- names and the record -------------------------------------------------------------------------


def db_image_name(config: Config, snapshot_id: str) -> str:
    return f"{GOLDEN_REPOSITORY}/{config.project}-db:{snapshot_id}"


def volume_name(config: Config, snapshot_id: str, key: str) -> str:
    return f"ck-golden-{config.project}-{snapshot_id}-{key}"


def record_path(config: Config, snapshot_id: str) -> Path:
    return gr.record_path(config.state_dir, snapshot_id)


def _labels(config: Config, manifest: Any, kind: str) -> dict[str, str]:
    return {cmp.LABEL_PROJECT: config.project, cmp.LABEL_SNAPSHOT: manifest.id, cmp.LABEL_SOURCE: manifest.source,
            LABEL_GOLDEN: kind}


def _label_changes(labels: Mapping[str, str]) -> list[str]:
    return [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]


def read_record(config: Config, snapshot_id: str) -> GoldenCopy | None:
    """The golden copy record of ``snapshot_id`` (None when there is none)."""
    return gr.read_record(config.state_dir, snapshot_id)


def is_materialized(config: Config, engine: DockerEngine, snapshot_id: str) -> bool:
    """The record exists and so does everything it names."""
    record = read_record(config, snapshot_id)
    return record is not None and gr.is_complete(engine, record)


# -- materialize ----------------------------------------------------------------------------------


def materialize(config: Config, repo: Any, manifest: Any, *, progress: ProgressFn | None = None) -> GoldenResult:
    """Load ``manifest`` once into a golden copy on the preview host; idempotent per snapshot."""
    progress = progress or no_progress
    engine = DockerEngine.for_previews(config.previews)
    started = time.monotonic()
    hooks = config.previews.hooks.get("after_materialize") or ()
    with preview_lock(config, f"golden-{manifest.id}"):
        existing = read_record(config, manifest.id)
        if existing is not None and gr.is_complete(engine, existing):
            if [(h["service"], h["run"]) for h in existing.hooks] != [(h.service, h.run) for h in hooks]:
                log.warning("the golden copy of %s was made with other previews.hooks.after_materialize than the "
                            "configured ones: `clonekit prune` removes it once it is not kept, or remove its record "
                            "%s to make it again", manifest.id, record_path(config, manifest.id))
            return GoldenResult(manifest.id, existing.db_image or "", existing.file_artifacts(),
                                time.monotonic() - started, reused=True, hooks=tuple(existing.hooks))
        if hooks:
            check_hooks(config, manifest)
        services = dict((manifest.services or {}).get("services") or {})
        db_image, datadir = "", DEFAULT_DATADIR
        db: cmp.DbCredentials | None = None  # the golden credentials
        replace_tables: dict[str, list[str]] = {}
        replace_rows: dict[str, Any] = {}
        volumes: dict[str, str] = {}
        files_images: dict[str, dict[str, Any]] = {}
        made_images: list[str] = []
        done = False
        try:
            if manifest.database is not None:
                progress("golden database", total=None)
                db_image, datadir, db, replace_tables, replace_rows = _materialize_database(config, repo, manifest, services, engine)
            files_images = _materialize_files_images(config, repo, manifest, services, engine, progress, made_images)
            baked = {path for item in files_images.values() for path in item["paths"]}
            volumes = _materialize_volumes(config, repo, manifest, services, engine, progress, skip=baked)
            golden = GoldenCopy(snapshot_id=manifest.id, db_image=db_image or None, datadir=datadir, db=db,
                                volumes=volumes, files_images=files_images, replace_tables=replace_tables,
                                replace_rows=replace_rows,
                                made_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if hooks:
                golden = _bake_hooks(config, repo, manifest, golden, engine, progress)
                files_images = {key: dict(item) for key, item in golden.files_images.items()}
            if config.previews.uses_swarm:  # every node pulls them from there
                progress("push to the registry", total=None)
                swarm = sw.Swarm(config.previews)
                for image in [db_image, *(item["image"] for item in files_images.values())]:
                    if image:
                        swarm.push(engine, image)
            gr.write_record(config.state_dir, golden)
            done = True
        finally:
            if not done:
                _remove_build_containers(config, engine, manifest)
                for image in [db_image, *made_images]:
                    if image:
                        _quietly(lambda image=image: ge.remove_image(engine, image))
                for name in engine.ids("volume", _labels(config, manifest, "files")):
                    _quietly(lambda name=name: engine.remove("volume", [name]))
    seconds = time.monotonic() - started
    log.info("materialized %s in %.1fs", manifest.id, seconds)
    warn_whole_file_copies(engine, manifest)
    return GoldenResult(manifest.id, db_image, (*(i["image"] for i in files_images.values()), *volumes.values()), seconds,
                        hooks=tuple(golden.hooks))


# A file overlayfs copies up whole when it is first opened for writing costs nothing on these
# (reflink), and its size in time and disk elsewhere (ext4): a table's file, for a preview reading
# or writing one row of it (InnoDB opens table files read-write).
REFLINK_FILESYSTEMS = frozenset({"xfs", "btrfs"})
COPY_UP_WARN_BYTES = 256 << 20


def warn_whole_file_copies(engine: DockerEngine, manifest: Any) -> None:
    """Tell, once per materialize, when a preview's first use of a large golden table will copy its
    whole file: overlay2 on a filesystem without reflink (ext4)."""
    tables = list((manifest.database or {}).get("tables") or [])
    largest = max(tables, key=lambda t: int(t.get("bytes") or 0), default=None)
    if largest is None or int(largest.get("bytes") or 0) < COPY_UP_WARN_BYTES:
        return
    driver, backing = engine.storage()
    if driver != "overlay2" or not backing or backing in REFLINK_FILESYSTEMS:
        return
    log.warning("the preview engine keeps its data on %s (overlay2): a preview's first use of a golden table "
                "(a read too: the server opens its file read-write) copies that table's whole file (the largest, %s, "
                "holds %d MB): time and disk in every preview that uses it. "
                "On XFS (reflink) or btrfs that copy is instant: see docs/golden.md, \"Preview host storage\"",
                backing, largest.get("name"), int(largest.get("bytes") or 0) // 10**6)


# -- after_materialize: hooks baked into the golden copy -------------------------------------------


def build_preview_name(snapshot_id: str) -> str:
    """The preview in which the ``after_materialize`` hooks of ``snapshot_id`` run (while materialize runs)."""
    return slugify(f"materialize-{snapshot_id}")  # (not "golden-...": materialize holds that lock)


def hooks_log_path(config: Config, snapshot_id: str) -> Path:
    return record_path(config, snapshot_id).with_suffix(".hooks.log")


def check_hooks(config: Config, manifest: Any) -> None:
    """Before any side effect: every ``after_materialize`` hook names a service of the snapshot."""
    services = (manifest.services or {}).get("services") or {}
    problems = [f"previews.hooks.after_materialize[{i}].service: snapshot {manifest.id} has no service {hook.service!r} "
                f"(services: {', '.join(sorted(services)) or 'none'})"
                for i, hook in enumerate(config.previews.hooks.get("after_materialize") or ())
                if hook.service not in services]
    if problems:
        raise ConfigError("cannot run the after_materialize hooks", problems=problems,
                          hint="a hook runs in a service of the snapshot's compose project (containers.compose_project)")


def _bake_hooks(config: Config, repo: Any, manifest: Any, golden: GoldenCopy, engine: DockerEngine,
                progress: Any) -> GoldenCopy:
    """Run ``previews.hooks.after_materialize`` in a build preview of ``golden``, then bake what they
    did into it: the build preview's database (cleanly shut down) is committed over the golden
    database image, the trees of the files images are made again from the build preview's
    containers, the golden volumes get the content of the build preview's copies. Returns the
    golden copy with the build preview's credentials (its accounts were re-keyed) and the hooks."""
    name = build_preview_name(manifest.id)
    log_file = hooks_log_path(config, manifest.id)
    write_private(log_file, "")  # 0600: the hooks' output may name things of the site
    services = dict((manifest.services or {}).get("services") or {})
    old_files_images = [engine.json(["image", "inspect", str(item["image"])], what="inspect a golden files image")[0]["Id"]
                        for item in golden.files_images.values()]
    with preview_lock(config, name):
        try:
            plan = start_build_preview(config, repo, manifest, name, golden, progress=progress)
            progress("after_materialize hooks", total=None)
            results = run_preview_hooks(config, engine, plan, "after_materialize", log_file, keep_hint="")
            progress("bake the hooks into the golden copy", total=None)
            containers = {c["Config"]["Labels"].get("com.docker.compose.service", ""): c["Id"]
                          for c in engine.containers({"com.docker.compose.project": plan.compose_project})}
            db_container = containers.get(plan.db_service) if golden.db_image and plan.db_service else None
            others = [cid for cid in containers.values() if cid != db_container]
            if others:  # nothing writes while the database shuts down and the trees are copied
                engine.cli(["stop", "-t", str(HOOK_STOP_SECONDS), *others], what=f"stop the build preview {name}")
            db, replace_tables = golden.db, golden.replace_tables
            if db_container is not None:
                replace_tables = _commit_build_database(config, manifest, golden, plan, engine, db_container)
                db = plan.db
            files_images = _materialize_files_images(
                config, repo, manifest, services, engine, progress, [],
                trees=lambda v: ge.copy_out(engine, containers[v.service], v.target))
            sections = [str(s.get("path")) for s in manifest.files]
            for volume in cmp.file_volumes(services, config.previews, sections):
                target = golden.volumes.get(volume.source_path)
                if target:
                    ge.replace_volume_content(engine, plan.volume_name(volume.key), target, image=plan.helper_image,
                                              labels=_labels(config, manifest, "build"))
        finally:
            remove_preview(config, name)
    for image_id in old_files_images:  # untagged by the new commits
        _quietly(lambda image_id=image_id: ge.remove_image(engine, image_id))
    # (the hooks may have changed rows: the rows recorded before them are not known now, so clones
    # scan the tables holding a string, replace_rows None)
    return replace(golden, db=db, replace_tables=replace_tables, replace_rows=None, files_images=files_images,
                   hooks=tuple(r.to_json() for r in results))


def _commit_build_database(config: Config, manifest: Any, golden: GoldenCopy, plan: Any, engine: DockerEngine,
                           container_id: str) -> dict[str, list[str]]:
    """Shut the build preview's database down cleanly and commit it as the golden database image;
    returns the tables holding a ``previews.replace`` string now (the hooks may have added some)."""
    container = engine.json(["container", "inspect", container_id], what="inspect the build preview's database")[0]
    with engine.reach(container, cmp.DEFAULT_DB_PORT) as (host, port):
        endpoint = DbEndpoint(host, port, plan.db.user, plan.db.password, plan.db.database)
        replace_tables = find_replace_tables(endpoint, list(config.previews.replace))  # (skipped ones too, as _materialize_database)
    run_as_root(in_container(engine, container_id, what="prepare a clean shutdown of the build preview's database"),
                plan.db.root_password, CLEAN_SHUTDOWN_SQL)
    engine.cli(["stop", "-t", str(STOP_TIMEOUT_SECONDS), container_id], what="stop the build preview's database")
    container = engine.json(["container", "inspect", container_id], what="inspect the build preview's database")[0]
    if container["State"].get("ExitCode") != 0:
        raise PreviewError(f"the database of the build preview of {manifest.id} did not shut down cleanly "
                           f"(exit code {container['State'].get('ExitCode')})")
    assert golden.db_image is not None
    base = svc.image_config(engine, golden.db_image)
    ge.commit(engine, container_id, golden.db_image,
              [*neutral_changes(container.get("Config") or {}, base), *_label_changes(_labels(config, manifest, "db"))])
    return replace_tables


def neutral_changes(container_config: Mapping[str, Any], image_config: Mapping[str, Any]) -> list[str]:
    """``docker commit --change`` lines that give an image committed from a preview's container the
    configuration of the image the container ran: a commit keeps the container's environment and
    labels, so every variable or label the preview added or changed gets the image's value back
    (empty when the image had none): no preview secret, URL or name stays in the image."""
    base_env = dict(entry.partition("=")[::2] for entry in image_config.get("Env") or [])
    changes = []
    for entry in container_config.get("Env") or []:
        key, _, value = entry.partition("=")
        if base_env.get(key) != value:
            changes.append(f"ENV {key}={json.dumps(base_env.get(key, ''))}")
    base_labels = image_config.get("Labels") or {}
    for key, value in (container_config.get("Labels") or {}).items():
        if base_labels.get(key) != value:
            changes.append(f"LABEL {key}={json.dumps(base_labels.get(key, ''))}")
    return [*changes, *start_config_changes(image_config)]


def _quietly(action: Any) -> None:
    try:
        action()
    except ClonekitError as exc:  # cleanup after a failure: the first error is the one to report
        log.error("cleanup after a failed materialize: %s", exc)


def _remove_build_containers(config: Config, engine: DockerEngine, manifest: Any) -> None:
    ids = engine.ids("container", {cmp.LABEL_PROJECT: config.project, cmp.LABEL_SNAPSHOT: manifest.id,
                                   LABEL_GOLDEN: "build"})
    _quietly(lambda: engine.remove("container", ids))


def _materialize_database(config: Config, repo: Any, manifest: Any, services: Mapping[str, Any],
                          engine: DockerEngine) -> tuple[str, str, cmp.DbCredentials, dict[str, list[str]], dict[str, Any]]:
    """(image, datadir, golden credentials, replace_tables, replace_rows) of the committed database."""
    db_service = config.previews.database_service
    service = services.get(db_service) or {}
    base_image = resolve_image(engine, service) if service else cmp.DEFAULT_DB_IMAGE
    image_config = svc.image_config(engine, base_image)
    # A VOLUME on the datadir would keep the data out of the commit: move the datadir.
    datadir = MOVED_DATADIR if DEFAULT_DATADIR in (image_config.get("Volumes") or {}) else DEFAULT_DATADIR
    section = manifest.database or {}
    user, database = cmp.db_defaults(services, db_service, str(section.get("database") or section.get("name") or "preview"))
    creds = cmp.DbCredentials(user=user, password=cmp.fresh_secret(), root_password=cmp.fresh_secret(), database=database)
    folder = record_path(config, manifest.id).parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # No secret in the environment: `docker commit` would keep the creating container's
    # configuration in the image. The accounts are made over the socket (SQL on stdin).
    env = {name: creds.database for name in cmp.DB_ENV["database"]}
    env |= {"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "1", "MYSQL_ALLOW_EMPTY_PASSWORD": "1"}

    name = f"ck-golden-{config.project}-{manifest.id}-build"
    _quietly(lambda: engine.remove("container", [name]) if engine.exists("container", name) else None)
    argv = ["create", "--name", name]
    if engine.is_local:  # a remote engine's database is reached through an SSH tunnel: nothing published
        argv += ["-p", f"127.0.0.1::{cmp.DEFAULT_DB_PORT}"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    for key, value in _labels(config, manifest, "build").items():
        argv += ["--label", f"{key}={value}"]
    entrypoint = list(service.get("entrypoint") or [])
    command = list(service.get("command") or [])
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
        command = [*entrypoint[1:], *command]
    engine.cli([*argv, base_image, *command], what=f"create the golden database container of {manifest.id}")
    try:
        if datadir != DEFAULT_DATADIR:
            ge.copy_into(engine, name, "/", [_datadir_tar(datadir)])
        engine.cli(["start", name], what=f"start the golden database container of {manifest.id}")
        container = engine.json(["container", "inspect", name], what="inspect the golden database container")[0]
        with engine.reach(container, cmp.DEFAULT_DB_PORT) as (host, port):
            endpoint = DbEndpoint(host, port, creds.user, creds.password, creds.database)
            wait_for_database(endpoint, timeout=DB_TIMEOUT_SECONDS, alive=lambda: _check_running(engine, name),
                              on_denied=lambda: run_as_root(
                                  in_container(engine, name, what=f"create the account of the golden database of {manifest.id}"),
                                  "", account_sql(creds.user, creds.password, creds.database)))
            run_as_root(in_container(engine, name, what=f"set the root password of the golden database of {manifest.id}"),
                        "", root_sql(server_flavor(endpoint), creds.root_password))
            with bulk_load(endpoint, in_container(engine, name, what=f"tune the golden database of {manifest.id} for the load"),
                           creds.root_password, int(section.get("bytes") or 0)):
                restore_database(repo, section, endpoint, workers=2, nearby=engine.is_local)
            # Every table holding a string, skipped ones included: replace_skip is applied at clone time,
            # so a preview that opts a log table back in still finds it in the record.
            replace_tables = find_replace_tables(endpoint, list(config.previews.replace))
            # ... and in them the rows holding one, by primary key: a clone rewrites those rows and reads
            # nothing else, so its rewrite grows with the rows that hold the URL, never with the tables
            # (Not searched in tables replace_skip leaves out, logs: recorded as None, a clone that opts
            # one in scans it.)
            holding = sorted({t for found in replace_tables.values() for t in found})
            replace_rows = find_replace_rows(endpoint, list(config.previews.replace),
                                             [t for t in holding if not skipped(t, config.previews.replace_skip)])
            replace_rows |= {t: None for t in holding if t not in replace_rows}
            # Slow shutdown: purge and change-buffer merge now, so no preview start has work to redo.
            run_as_root(in_container(engine, name, what="prepare a clean shutdown of the golden database"),
                        creds.root_password, CLEAN_SHUTDOWN_SQL)
        engine.cli(["stop", "-t", str(STOP_TIMEOUT_SECONDS), name], what="stop the golden database")
        state = engine.json(["container", "inspect", name], what="inspect the golden database container")[0]["State"]
        if state.get("ExitCode") != 0:
            raise PreviewError(f"the golden database of {manifest.id} did not shut down cleanly "
                               f"(exit code {state.get('ExitCode')})", hint=f"docker logs {name}")
        ge.copy_into(engine, name, "/", [folders_tar({}, {GOLDEN_CNF: GOLDEN_CNF_TEXT})])
        image = db_image_name(config, manifest.id)
        ge.commit(engine, name, image, [*_label_changes(_labels(config, manifest, "db"))])
        return image, datadir, creds, replace_tables, replace_rows
    finally:
        _quietly(lambda: engine.remove("container", [name]))


def _datadir_tar(datadir: str) -> bytes:
    """A tar holding the config file that moves the datadir (read by mariadbd/mysqld and the entrypoints)."""
    text = f"# clonekit golden image: the data lives outside the image's VOLUME\n[mysqld]\ndatadir = {datadir}\n".encode()
    return folders_tar({}, {DATADIR_CNF: text})  # (the engine makes the folders it lacks)


def _check_running(engine: DockerEngine, name: str) -> None:
    state = engine.json(["container", "inspect", name], what="inspect the golden database container")[0]["State"]
    if not state.get("Running"):
        raise PreviewError(f"the golden database container {name} stopped (exit code {state.get('ExitCode')})",
                           hint=f"docker logs {name}")


def files_image_name(config: Config, snapshot_id: str, service: str) -> str:
    return f"{GOLDEN_REPOSITORY}/{config.project}-files-{service.lower()}:{snapshot_id}"


def _materialize_files_images(config: Config, repo: Any, manifest: Any, services: Mapping[str, Any],
                              engine: DockerEngine, progress: Any, made: list[str], *,
                              trees: Callable[[cmp.FileVolume], Iterable[bytes]] | None = None) -> dict[str, dict[str, Any]]:
    """Per service that mounts snapshot trees: its image plus a layer holding the trees.

    A preview runs that image without volumes there: copy-on-write, nothing copied at clone time
    (a golden volume has to be copied whole, which grows with the files). Trees under a VOLUME of
    the service's image cannot live in a layer: they get golden volumes instead. ``trees`` gives
    each tree's tar stream (default: from the snapshot).
    """
    sections = {str(s.get("path")): s for s in manifest.files}
    if not services or not sections:
        return {}
    by_service: dict[str, list[cmp.FileVolume]] = {}
    for volume in cmp.file_volumes(services, config.previews, list(sections)):
        by_service.setdefault(volume.service, []).append(volume)
    out: dict[str, dict[str, Any]] = {}
    for service_name, volumes in sorted(by_service.items()):
        base_image = resolve_image(engine, services[service_name])
        image_config = svc.image_config(engine, base_image)
        declared = list(image_config.get("Volumes") or {})
        volumes = [v for v in volumes if not any(_under(v.target, d) for d in declared)]
        if not volumes or not (image_config.get("Cmd") or image_config.get("Entrypoint")):
            continue  # (`docker create` needs a command, and a commit would keep ours: golden volumes instead)
        name = f"ck-golden-{config.project}-{manifest.id}-files-{service_name}"
        _quietly(lambda name=name: engine.remove("container", [name]) if engine.exists("container", name) else None)
        # Created, never started: nothing of the user's image runs (it may have no shell, no mkdir,
        # no /etc/passwd). The engine's archive API (docker cp of a tar stream) makes the folders
        # and writes the trees into the container's layer.
        argv = ["create", "--name", name, "--network", "none"]
        for key, value in _labels(config, manifest, "build").items():
            argv += ["--label", f"{key}={value}"]
        try:
            engine.cli([*argv, base_image], what=f"create the golden files container of {service_name}")
            ge.copy_into(engine, name, "/", [folders_tar({v.target: sections[v.source_path].get("root") or {}
                                                           for v in volumes})])
            for volume in volumes:
                progress(f"golden files {volume.source_path}", total=None)
                tar = trees(volume) if trees is not None else iter_tar(repo, sections[volume.source_path])
                sent = ge.copy_into(engine, name, volume.target, tar)
                progress(f"golden files {volume.source_path}", advance=sent)
            image = files_image_name(config, manifest.id, service_name)
            ge.commit(engine, name, image, [*_label_changes(_labels(config, manifest, "files")),
                                            *start_config_changes(image_config)])
            made.append(image)
            out[service_name] = {"image": image, "paths": sorted(v.source_path for v in volumes),
                                 "keys": sorted(v.key for v in volumes)}
        finally:
            _quietly(lambda name=name: engine.remove("container", [name]))
    return out


def start_config_changes(image_config: Mapping[str, Any]) -> list[str]:
    """``docker commit --change`` lines giving a committed image the start-up of the image it was
    made from: its user (``0`` where it named none: no name to look up in an ``/etc/passwd`` it
    may not have), working folder, entrypoint and command."""
    changes = [f"USER {image_config.get('User') or '0'}"]
    if image_config.get("WorkingDir"):
        changes.append(f"WORKDIR {image_config['WorkingDir']}")
    if image_config.get("Entrypoint"):
        changes.append(f"ENTRYPOINT {json.dumps(image_config['Entrypoint'])}")
    if image_config.get("Cmd"):  # (after ENTRYPOINT, which resets the command)
        changes.append(f"CMD {json.dumps(image_config['Cmd'])}")
    return changes


def _under(path: str, folder: str) -> bool:
    path, folder = path.rstrip("/") or "/", folder.rstrip("/") or "/"
    return path == folder or folder == "/" or path.startswith(folder + "/")


def _materialize_volumes(config: Config, repo: Any, manifest: Any, services: Mapping[str, Any], engine: DockerEngine,
                         progress: Any, *, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """One golden volume per snapshot tree that a preview mounts: snapshot path -> volume name."""
    sections = {str(s.get("path")): s for s in manifest.files}
    if not services or not sections:
        return {}
    labels = _labels(config, manifest, "files")
    out: dict[str, str] = {}
    for volume in cmp.file_volumes(services, config.previews, list(sections)):
        if volume.source_path in out or volume.source_path in skip:
            continue
        name = volume_name(config, manifest.id, volume.key)
        if engine.exists("volume", name):  # left by an interrupted run: its content is unknown
            engine.remove("volume", [name])
        created_since = time.time()
        engine.create_volume(name, labels)
        fill_volume(engine, name, repo, sections[volume.source_path], task=f"golden files {volume.source_path}",
                    progress=progress, image=cmp.PreviewPlan.helper_image, labels={**labels, LABEL_GOLDEN: "build"},
                    created_since=created_since)
        out[volume.source_path] = name
    return out


# -- prune ----------------------------------------------------------------------------------------


def golden_images(config: Config, engine: DockerEngine | None = None) -> list[dict[str, Any]]:
    engine = engine or DockerEngine.for_previews(config.previews)
    return ge.images(engine, {cmp.LABEL_PROJECT: config.project, LABEL_GOLDEN: ""})


def _referenced_by_previews(config: Config) -> str:
    """The text of every preview's compose.yml: a stopped or downed preview still needs its images."""
    root = config.state_dir / PREVIEWS_FOLDER
    if not root.is_dir():
        return ""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in root.glob("*/compose.yml"))


def prune_golden_images(config: Config, keep: Sequence[str]) -> list[str]:
    """Remove the golden copies of snapshots not in ``keep``; returns the image and volume names removed.

    A golden image that a preview uses (one of its containers, running or not, or its compose.yml
    names it) is kept, and so is the record of its snapshot.
    """
    engine = DockerEngine.for_previews(config.previews)
    kept = set(keep)
    composed = _referenced_by_previews(config)
    removed: list[str] = []
    still_used: set[str] = set()
    seen: set[str] = set()
    # On a swarm, the pulled copies of the ready nodes too (a node that is down keeps its copies),
    # and the registry's copy once no node uses the snapshot.
    swarm = sw.Swarm(config.previews) if config.previews.uses_swarm else None
    engines = [engine, *(swarm.ready_engines() if swarm is not None else [])]
    pushed: dict[str, str] = {}  # clonekit's name of a removed image -> its snapshot
    for holder, image in ((e, image) for e in engines for image in golden_images(config, e)):
        labels = (image.get("Config") or {}).get("Labels") or {}
        snapshot = labels.get(cmp.LABEL_SNAPSHOT, "")
        if not snapshot or snapshot in kept:
            continue
        seen.add(snapshot)
        names = list(image.get("RepoTags") or []) or [image["Id"]]
        if ge.containers_using(holder, image["Id"]) or any(n in composed for n in names):
            log.info("golden image %s is used by a preview: kept", names[0])
            still_used.add(snapshot)
            continue
        for name in names:
            ge.remove_image(holder, name)
            own = sw.own_image_of(config.previews.registry or "", name) if swarm is not None else None
            if own is not None:
                pushed[own] = snapshot
        removed.append(names[0])
    for name in engine.ids("volume", {cmp.LABEL_PROJECT: config.project, LABEL_GOLDEN: "files"}):
        snapshot = ""
        for info in engine.inspect("volume", [name]):
            snapshot = (info.get("Labels") or {}).get(cmp.LABEL_SNAPSHOT, "")
        if not snapshot or snapshot in kept:
            continue
        seen.add(snapshot)
        if ge.containers_with_volume(engine, name):  # a preview's copy is being made from it
            still_used.add(snapshot)
            continue
        engine.remove("volume", [name])
        removed.append(name)
    for snapshot in seen - still_used:
        record_path(config, snapshot).unlink(missing_ok=True)
    if swarm is not None:
        for own in sorted(i for i, snapshot in pushed.items() if snapshot not in still_used):
            swarm.delete_from_registry(own)
    if removed:
        log.info("prune: removed %d golden image(s)/volume(s)", len(removed))
    return removed

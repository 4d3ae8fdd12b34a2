"""Previews: isolated compose projects restored from a snapshot, with their own URL.

A preview NAME of project P is the compose project ``ck-P-NAME`` written to
``<state_dir>/previews/NAME/compose.yml`` (``docker compose -f .../compose.yml ps`` works), with
its own network and volumes; every container, volume and network carries the labels
``clonekit.project``, ``clonekit.preview`` and ``clonekit.snapshot``. Fresh credentials and secret
values live in 0600 files of that folder, never in labels, logs or ``compose.yml``.

Creation order (each step a progress task, timed in state.json): file volumes filled from the
snapshot → database service started and loaded through a 127.0.0.1 port (an SSH tunnel to the
container on an ``ssh://`` engine) → ``previews.replace``
rewrite → every service started → wait until the HTTP service answers. A clone of a golden copy
starts every service with its database, and rewrites, then re-keys: its services' credentials
work only once the rewrite has committed (``_fill_from_golden``). A failure removes
everything created (unless ``keep_on_failure``). One fcntl lock per preview name serialises runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from . import online
from .config import Config, check_name, env_number
from .db import restore_database
from .db.endpoint import DbEndpoint
from .db.restore import restore_database_feed
from .db.rewrite import Replacement
from .db.target import (
    account_sql,
    bulk_load,
    rekey_over_tcp,
    rekey_sql,
    rewrite_urls,
    run_as_root,
    skipped,
    wait_for_database,
)
from .errors import ClonekitError, LockedError, NotFoundError, PreviewError
from .files import iter_tar, restore_files
from .memory import give_back_free_memory
from .owner import Owner
from .pipeline import SnapshotFeed, file_sections
from .previews import code as pc
from .previews.hooks import HOOKS_LOG, HookResult, hook_env, last_result, run_hooks
from .previews.plan import (
    COMPOSE_FILE,
    POLL_SECONDS,
    PREVIEWS_FOLDER,
    SECRETS_FILE,
    STATE_FILE,
    PlainDumper,
    check_alive,
    compose_container,
    compose_project_name,
    find_golden,
    iso,
    new_plan,
    preview_dir,
    preview_engine,
    read_json,
    services_of,
    wait_http,
)
from .private_file import write_private
from .progress import ProgressFn, no_progress
from .retry import poll
from .runtime import compose as cmp
from .runtime import golden_engine as ge
from .runtime import golden_record as gr
from .runtime import swarm as sw
from .runtime.docker import DockerEngine
from .runtime.service import in_container, resolve_image

log = logging.getLogger("clonekit.preview")

LOCKS_FOLDER = ".locks"
BUSY_STATES = ("creating", "refreshing")  # a run is working on the preview
LOCK_WAIT_SECONDS = env_number("CLONEKIT_PREVIEW_LOCK_WAIT", 600.0)
DB_TIMEOUT_SECONDS = env_number("CLONEKIT_PREVIEW_DB_TIMEOUT", 180.0)
STOP_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Preview:
    name: str
    project: str
    status: str
    url: str
    snapshot_id: str
    source: str
    created_at: datetime
    expires_at: datetime | None
    path: Path
    restore_path: str  # "cold" | "golden"
    code: tuple[pc.CodeOverride, ...] = ()  # services running a branch's image (--build/--image)
    last_hook: str = ""  # "ok", "failed (exit N)", or "" when no after_restore hook ran
    node: str = ""  # previews.engine swarm: the node it runs on


# -- naming and state on disk ---------------------------------------------------------------------


def _labels_of(config: Config, name: str) -> dict[str, str]:
    return {cmp.LABEL_PROJECT: config.project, cmp.LABEL_PREVIEW: name}


def _new_preview_engine(config: Config) -> DockerEngine:
    """Where a new preview goes: ``previews.docker_host``, or the swarm node ``placement`` picks."""
    if not config.previews.uses_swarm:
        return DockerEngine.for_previews(config.previews)
    swarm = sw.Swarm(config.previews)
    return swarm.engine(swarm.place())


@contextlib.contextmanager
def preview_lock(config: Config, name: str, *, wait_seconds: float | None = None) -> Iterator[None]:
    """Exclusive per-name lock; a second run on the same name waits, then refuses."""
    folder = config.state_dir / PREVIEWS_FOLDER / LOCKS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def attempt() -> bool | None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise PreviewError(f"cannot lock {path}: {exc.strerror}") from exc
            return None

    try:
        if not poll(attempt, timeout=LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds, interval=POLL_SECONDS):
            raise LockedError(
                f"preview {name!r} is being changed by another clonekit run (lock {path})",
                hint="wait for it to finish, then try again",
            )
        yield
    finally:
        os.close(fd)


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- create -------------------------------------------------------------------------------------


def create_preview(config: Config, repo: Any, manifest: Any, name: str, *, keep_on_failure: bool = False,
                   progress: ProgressFn | None = None, code: Sequence[pc.CodeRequest] = (),
                   feed: SnapshotFeed | None = None) -> Preview:
    """Create preview ``name`` from ``manifest``; returns once its HTTP service answers.

    With ``feed`` (a pipelined clone, clonekit.pipeline), ``manifest`` is the snapshot being
    captured: the database loads from the feed as tables are captured, the files and services
    wait for the snapshot's commit."""
    check_name("preview", name)
    progress = progress or no_progress
    engine = _new_preview_engine(config)
    online.preflight(config, engine)  # before anything is built, removed or created
    with preview_lock(config, name):
        _refuse_existing(config, engine, name)
        services = services_of(manifest)
        golden = find_golden(config, engine, manifest.id) if feed is None else None
        plan = new_plan(config, manifest, name, services, engine, golden=golden)
        pc.check_requests(code, services, db_service=plan.db_service, config=config)
        undo = (lambda: None) if keep_on_failure else (lambda: _cleanup_after_failure(config, engine, name))
        with _on_failure(undo):
            overrides = pc.prepare(config, engine, name, code, progress)
            return _bring_up(config, repo, manifest, plan, services, engine, progress, golden, code=overrides,
                             feed=feed)


@contextlib.contextmanager
def _on_failure(undo: Callable[[], None]) -> Iterator[None]:
    """Run ``undo`` when the block does not finish (an error, an interrupt), then let that go on."""
    finished = False
    try:
        yield
        finished = True
    finally:
        if not finished:
            undo()


def start_build_preview(config: Config, repo: Any, manifest: Any, name: str, golden: gr.GoldenCopy, *,
                        progress: ProgressFn | None = None) -> cmp.PreviewPlan:
    """A preview of ``golden`` in which ``clonekit.golden`` runs the ``after_materialize`` hooks.

    It runs production's images (no code override), and its database keeps the snapshot's URLs:
    no ``previews.replace`` rewrite (every preview made from the golden copy rewrites its own
    copy), no ``after_restore`` hooks. Its database container gets no secret in its environment
    (it is committed, and an image keeps the configuration of the container it was committed
    from). The caller holds the name's lock and removes it (``remove_preview``); one left by an
    interrupted run is removed first.
    """
    engine = DockerEngine.for_previews(config.previews)
    services = services_of(manifest)
    if preview_dir(config, name).exists() or engine.ids("container", _labels_of(config, name)):
        _remove_everything(config, engine, name)
    plan = new_plan(config, manifest, name, services, engine, golden=golden)
    _bring_up(config, repo, manifest, plan, services, engine, progress or no_progress, golden, hooks=False, rewrite=False,
              db_secrets=False)
    return plan


def remove_preview(config: Config, name: str) -> None:
    """Remove everything of preview ``name`` (the caller holds its lock); errors are logged, not raised."""
    _cleanup_after_failure(config, preview_engine(config, name), name)


def _abandoned(state: Mapping[str, Any]) -> bool:
    """The run that was creating or refreshing this preview is gone (killed) on this host."""
    owner = Owner.from_json(state.get("owner"))
    return state.get("status") in BUSY_STATES and owner is not None and owner.is_gone()


def _refuse_existing(config: Config, engine: DockerEngine, name: str) -> None:
    folder = preview_dir(config, name)
    state = read_json(folder / STATE_FILE) or {}
    if _abandoned(state):  # we hold the name's lock: nobody else is working on it
        log.warning("preview %s was left half-created by %s, which is gone: removing what it created",
                    name, Owner.from_json(state.get("owner")))
        _remove_everything(config, engine, name)
    labelled = engine.ids("container", _labels_of(config, name))
    if folder.exists() or labelled:
        raise PreviewError(
            f"a preview named {name!r} already exists in project {config.project}",
            hint=f"`clonekit refresh {name}` reloads it, `clonekit destroy {name}` removes it",
        )


def _cleanup_after_failure(config: Config, engine: DockerEngine, name: str) -> None:
    try:
        _remove_everything(config, engine, name)
    except ClonekitError as exc:  # the original failure matters more; say what is left
        log.error("could not remove what the failed preview %s created: %s", name, exc)


def _bring_up(config: Config, repo: Any, manifest: Any, plan: cmp.PreviewPlan, services: Mapping[str, Any],
              engine: DockerEngine, progress: Any, golden: gr.GoldenCopy | None = None, *,
              code: Sequence[pc.CodeOverride] = (), hooks: bool = True, rewrite: bool = True,
              db_secrets: bool = True, feed: SnapshotFeed | None = None) -> Preview:
    timings: dict[str, float] = {}
    online.preflight(config, engine)  # egress and proxy settings usable, before anything is created
    folder = preview_dir(config, plan.name)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    pc.save(folder, code)
    sections = file_sections(feed, manifest)  # a pipelined clone's files: once its snapshot is committed
    volumes = cmp.file_volumes(services, config.previews, list(feed.file_paths) if feed else list(sections()))
    in_image = (golden.datadir,) if golden is not None and golden.db_image else ()
    build = cmp.build_compose(services, config.previews, plan, volumes, resolve_image=lambda s: resolve_image(engine, s),
                              keep_readonly_binds=engine.is_local, db_paths_in_image=in_image, publish_db=engine.is_local)
    if golden is not None:  # trees baked into golden images run copy-on-write: nothing to fill
        # (a service running a branch's image gets its trees as volumes: its image has none of them)
        volumes = gr.use_files_images(golden, pc.without_overridden(build.document, code), volumes)
    pc.apply(build.document, code, config)
    if not db_secrets and plan.db_service:  # a database started from a golden image needs none of them
        build.secret_env.pop(plan.db_service, None)
        build.document["services"][plan.db_service].pop("env_file", None)
    compose_file = _write_project(folder, plan, build)
    _write_state(folder, plan, manifest, status="creating", timings=timings, node=engine.node)

    # The file volumes fill while the database starts and loads (the cold path's two long steps
    # overlap: file chunks are read and untarred by the engine while the server parses rows);
    # the volumes exist before `compose up --no-start`, which needs them (external volumes).
    to_fill = []
    started = time.monotonic()
    for volume in volumes:
        name = plan.volume_name(volume.key)
        golden_volume = golden.volumes.get(volume.source_path) if golden is not None else None
        if golden_volume:
            ge.copy_volume(engine, golden_volume, name, image=plan.helper_image, volume_labels=plan.labels())
            continue
        created_since = time.time()
        engine.create_volume(name, plan.labels())
        to_fill.append((volume, name, created_since))
    copy_seconds = time.monotonic() - started
    online.before_start(config, engine, plan.compose_project, compose_file)  # egress closed before anything runs

    def fill_volumes() -> None:
        started = time.monotonic()
        by_path = sections() if to_fill else {}
        for volume, name, created_since in to_fill:
            fill_volume(engine, name, repo, by_path[volume.source_path], task=f"files {volume.source_path}",
                        progress=progress, image=plan.helper_image, labels=plan.labels(), created_since=created_since)
        timings["files"] = copy_seconds + time.monotonic() - started

    filling: list[Future[None]] = []  # the fill of the file volumes, once started

    def start_services() -> None:
        filling[0].result()  # no service starts before its file volumes are filled
        started = time.monotonic()
        progress("start", total=None)
        _start_services(engine, plan, compose_file, build.document)
        timings["start"] = time.monotonic() - started

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview-files") as pool:
        def start_filling() -> None:
            if not filling:
                if feed is not None:
                    give_back_free_memory()  # the capture's and the load's buffers (memory.py)
                filling.append(pool.submit(fill_volumes))

        if feed is None:
            start_filling()
        # A pipelined clone fills them once the rows are loaded, beside the index build: not while
        # the capture and the load hold their buffers (memory), and its files come with the commit.
        try:
            started_early = _load_database(config, repo, manifest, plan, engine, compose_file, progress, timings,
                                           golden, rewrite=rewrite, start_services=start_services, feed=feed,
                                           rows_loaded=start_filling)
            start_filling()
        except BaseException:
            if filling and filling[0].exception() is not None:  # (waits) the database's error is the one to report
                log.error("filling the file volumes of preview %s failed too: %s", plan.name, filling[0].exception())
            raise
        filling[0].result()
    if feed is not None:
        feed.manifest()  # no service of a pipelined clone starts before its snapshot is committed

    if not started_early:
        start_services()
    started = time.monotonic()
    progress("wait for HTTP", total=None)
    wait_http(config, engine, plan, alive=_alive_or_revived(engine, plan) if started_early else None)
    timings["http"] = time.monotonic() - started
    if hooks and config.previews.hooks.get("after_restore"):
        started = time.monotonic()
        progress("hooks", total=None)
        after_restore_hooks(config, engine, plan, folder)
        timings["hooks"] = time.monotonic() - started
    online.after_start(config, engine, plan.compose_project, plan.url, plan.http_service, plan.http_container_port)
    _write_state(folder, plan, manifest, status="running", timings=timings, node=engine.node)
    log.info("preview %s of %s is up at %s", plan.name, manifest.id, plan.url)
    return preview_from_state(config, plan.name, read_json(folder / STATE_FILE) or {}, "running")


def _start_services(engine: DockerEngine, plan: cmp.PreviewPlan, compose_file: Path, document: Mapping[str, Any]) -> None:
    """Start every service: the containers ``up --no-start`` created (previews.egress) with one
    ``docker start``, each after those it depends on (``docker start`` of a running one does
    nothing), when that is all ``compose up`` would do (``cmp.start_order``); else ``compose up``."""
    order = cmp.start_order(document) if not engine.node else None  # (a swarm's node: its stack is deployed)
    created: dict[str, list[str]] = {}
    if order is not None:
        created = engine.container_ids_by_label({"com.docker.compose.project": plan.compose_project},
                                                "com.docker.compose.service",
                                                what=f"list the containers of preview {plan.name}")
    if order is not None and all(len(created.get(service, ())) == 1 for service in order):
        engine.cli(["start", *(created[service][0] for service in order)], what=f"start preview {plan.name}")
        return
    engine.compose_cli(compose_file, plan.compose_project, ["up", "-d", "--no-build", "--pull", "missing"],
                       what=f"start preview {plan.name}")


def after_restore_hooks(config: Config, engine: DockerEngine, plan: cmp.PreviewPlan, folder: Path) -> None:
    run_preview_hooks(config, engine, plan, "after_restore", folder / HOOKS_LOG)


def run_preview_hooks(config: Config, engine: DockerEngine, plan: cmp.PreviewPlan, when: str, log_file: Path,
                      **options: Any) -> list[HookResult]:
    """The ``previews.hooks.WHEN`` hooks, in the services of the running preview ``plan``."""
    hooks = config.previews.hooks.get(when) or ()
    containers = {service: ids[0] for service in {h.service for h in hooks}
                  if (ids := engine.ids("container", {"com.docker.compose.project": plan.compose_project,
                                                      "com.docker.compose.service": service}))}
    return run_hooks(engine, when, hooks, containers, hook_env(plan.name, plan.url, plan.snapshot_id), log_file,
                     **options)


def _write_project(folder: Path, plan: cmp.PreviewPlan, build: cmp.ComposeBuild) -> Path:
    for stale in folder.glob("*.env"):
        stale.unlink()
    for service, values in build.secret_env.items():
        write_private(folder / f"{service}.env", cmp.env_file_text(values))
    secrets_doc = {"db": {"user": plan.db.user, "password": plan.db.password,
                          "root_password": plan.db.root_password, "database": plan.db.database},
                   "env": dict(plan.secret_values)}
    write_private(folder / SECRETS_FILE, json.dumps(secrets_doc, indent=2, sort_keys=True))
    compose_file = folder / COMPOSE_FILE
    header = (f"# clonekit preview {plan.name} of project {plan.project} (snapshot {plan.snapshot_id}).\n"
              f"# Written by clonekit; `clonekit refresh {plan.name}` rewrites it. Secrets are in *.env.\n")
    text = yaml.dump(build.document, Dumper=PlainDumper, sort_keys=False, default_flow_style=False)
    write_private(compose_file, header + text)
    return compose_file


def _write_state(folder: Path, plan: cmp.PreviewPlan, manifest: Any, *, status: str, timings: Mapping[str, float],
                 node: str = "") -> None:
    state = {
        "name": plan.name, "project": plan.project, "compose_project": plan.compose_project,
        "snapshot_id": plan.snapshot_id, "source": plan.source, "url": plan.url, "port": plan.port,
        "created_at": plan.created_at, "expires_at": plan.expires_at, "http_service": plan.http_service,
        "db_service": plan.db_service, "restore_path": plan.restore_path, "status": status,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if node:
        state["node"] = node
    if status in BUSY_STATES:  # who is working on it: `list` tells when that process is gone
        state["owner"] = Owner.current().to_json()
    write_private(folder / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))


def db_endpoint(plan: cmp.PreviewPlan, host: str, port: int) -> DbEndpoint:
    """How this process reaches the preview database: its ephemeral 127.0.0.1 port, or the local
    end of the SSH tunnel to it (``DockerEngine.reach``)."""
    return DbEndpoint(host, port, plan.db.user, plan.db.password, plan.db.database)


def fill_volume(engine: DockerEngine, name: str, repo: Any, section: Mapping[str, Any], *, task: str,
                progress: ProgressFn, image: str, labels: Mapping[str, str], created_since: float) -> None:
    """Write a snapshot's tree into volume ``name``, created empty by this run at ``created_since``.

    Straight into the volume's folder when this process can write it as the engine's containers
    would (``DockerEngine.host_volume_folder``: a local engine, run as root): ``restore_files``
    writes the files with a few threads, with no tar stream, no container and no copy through
    the docker daemon, which took as much CPU as the restore's reads and checks. Otherwise
    (a remote engine, not root...) as a tar stream the engine unpacks (``DockerEngine.fill_volume``)."""
    folder = engine.host_volume_folder(name, created_since=created_since)
    if folder is None:
        progress(task, total=None)
        progress(task, advance=engine.fill_volume(name, iter_tar(repo, section), image=image, labels=labels,
                                                  root=section.get("root")))
        return
    log.debug("filling volume %s in its folder %s", name, folder)

    def forward(_task: str, advance: int = 0, total: int | None = None) -> None:
        progress(task, advance=advance, total=total)

    restore_files(repo, section, folder, progress=forward)


def _load_database(config: Config, repo: Any, manifest: Any, plan: cmp.PreviewPlan, engine: DockerEngine,
                   compose_file: Path, progress: Any, timings: dict[str, float],
                   golden: gr.GoldenCopy | None = None, *, rewrite: bool = True,
                   start_services: Callable[[], None] | None = None, feed: SnapshotFeed | None = None,
                   rows_loaded: Callable[[], None] | None = None) -> bool:
    """Start and fill the preview's database; True when ``start_services`` ran meanwhile (a golden
    clone starts its other services while its URLs are rewritten: ``_fill_from_golden``). With
    ``feed`` (a pipelined clone) the rows come from the capture as it goes, and ``rows_loaded()``
    is called once they are all loaded (before the indexes)."""
    started = time.monotonic()
    if not plan.db_service:
        return False
    progress("start database", total=None)
    created = [found for service in (plan.db_service, cmp.MAIL_SERVICE)
               for found in engine.ids("container", {"com.docker.compose.project": plan.compose_project,
                                                     "com.docker.compose.service": service})]
    if len(created) == 2 and not engine.node:  # `up --no-start` made them (previews.egress): no compose run needed
        engine.cli(["start", *created], what=f"start the database of preview {plan.name}")
    else:
        engine.compose_cli(compose_file, plan.compose_project,
                           ["up", "-d", "--no-build", "--pull", "missing", plan.db_service, cmp.MAIL_SERVICE],
                           what=f"start the database of preview {plan.name}")
    timings["db_up"] = time.monotonic() - started
    container = compose_container(engine, plan, plan.db_service)
    with engine.reach(container, cmp.DEFAULT_DB_PORT) as (host, port):
        return _fill_database(config, repo, manifest, plan, engine, container, db_endpoint(plan, host, port), progress,
                              timings, golden, started, rewrite=rewrite, start_services=start_services, feed=feed,
                              rows_loaded=rows_loaded)


def _fill_database(config: Config, repo: Any, manifest: Any, plan: cmp.PreviewPlan, engine: DockerEngine,
                   container: Mapping[str, Any], endpoint: DbEndpoint, progress: Any, timings: dict[str, float],
                   golden: gr.GoldenCopy | None, started: float, *, rewrite: bool,
                   start_services: Callable[[], None] | None = None, feed: SnapshotFeed | None = None,
                   rows_loaded: Callable[[], None] | None = None) -> bool:
    values = plan.placeholders()
    replacements = [cmp_replacement for old, new in config.previews.replace.items()
                    if (cmp_replacement := Replacement(old, cmp.render(new, values))).old != cmp_replacement.new]
    if not rewrite or manifest.database is None:
        replacements = []
    from_golden = golden is not None and golden.db is not None and bool(golden.db_image)
    if from_golden:
        assert golden is not None
        return _fill_from_golden(config, plan, engine, container, endpoint, progress, timings, golden, started,
                                 replacements, start_services)
    wait_for_database(endpoint, timeout=DB_TIMEOUT_SECONDS,
                      alive=lambda: check_alive(engine, plan, plan.db_service),
                      on_denied=lambda: _create_account(engine, plan, container["Id"]))
    timings["db_start"] = time.monotonic() - started

    started = time.monotonic()
    if manifest.database is not None:
        # The cold path rewrites the URLs in the rows as they stream in: no table is read again.
        progress("database", total=None)
        root = in_container(engine, container["Id"], what=f"tune the database of preview {plan.name} for the load")
        expected = feed.schema()[1] if feed is not None else int(manifest.database.get("bytes") or 0)
        with bulk_load(endpoint, root, plan.db.root_password, expected):
            if feed is not None:  # each table as soon as it is captured (clonekit.pipeline)
                stats = restore_database_feed(repo, feed, endpoint, workers=2, replacements=replacements,
                                              nearby=engine.is_local,
                                              replace_skip=config.previews.replace_skip, progress=progress,
                                              rows_loaded=rows_loaded)
            else:
                stats = restore_database(repo, manifest.database, endpoint, workers=2, replacements=replacements,
                                         nearby=engine.is_local,
                                         replace_skip=config.previews.replace_skip)
        if replacements:
            log.info("previews.replace: %d value(s) rewritten while loading", stats.rewritten)
    timings["db_load"] = time.monotonic() - started
    return False


def _fill_from_golden(config: Config, plan: cmp.PreviewPlan, engine: DockerEngine, container: Mapping[str, Any],
                      endpoint: DbEndpoint, progress: Any, timings: dict[str, float], golden: gr.GoldenCopy,
                      started: float, replacements: list[Replacement],
                      start_services: Callable[[], None] | None) -> bool:
    """A clone of a golden copy. Its accounts are the golden copy's, the same in every clone, until
    they are re-keyed to this preview's; its rows hold the production URL until ``replace``
    rewrites them. Returns True when ``start_services`` ran meanwhile.

    The rewrite runs with the golden copy's credentials and commits; only then are the accounts
    re-keyed (as root@'%' over the database port; over the server's socket when root does not log
    in so). The preview's own credentials, the only ones its services are given, therefore log in
    only once the rows are right: so the services start at once, while the server starts and the
    rows are rewritten, and no request to them can read a row that still holds the production URL
    (their database refuses them meanwhile; ``restart: unless-stopped`` brings back a service that
    exits on that, and the wait for HTTP restarts the HTTP service at once: ``_alive_or_revived``).
    The proxy's route is added later still, once the HTTP service answers. And while the server
    starts, the table files the rewrite writes are opened in the container (``ge.copy_up``):
    overlayfs copies them into the preview's layer then, not during the rewrite.
    """
    assert golden.db is not None
    tables = _tables_to_rewrite(golden, replacements) if replacements else []
    rows = golden.replace_rows if tables is not None else None
    skip = config.previews.replace_skip
    golden_endpoint = replace(endpoint, password=golden.db.password)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="golden-clone") as pool:
        services = pool.submit(start_services) if start_services is not None else None
        try:
            copied = pool.submit(ge.copy_up, engine, str(container["Id"]),
                                 gr.table_files(golden, plan.db.database, [t for t in tables or () if not skipped(t, skip)]))
            wait_for_database(golden_endpoint, timeout=DB_TIMEOUT_SECONDS,
                              alive=lambda: check_alive(engine, plan, plan.db_service))
            timings["db_start"] = time.monotonic() - started
            started = time.monotonic()
            if replacements:  # (a file still being copied up: the server's first open of it waits for the copy)
                progress("rewrite URLs", total=None)
                rewrite_urls(golden_endpoint, replacements, tables=tables, skip=skip, rows=rows)
            copied.result()
            # (committed) the accounts become this preview's
            root = replace(endpoint, user="root", password=golden.db.root_password)
            if not rekey_over_tcp(root, plan.db.user, plan.db.password, plan.db.database, plan.db.root_password):
                log.info("preview %s: the golden copy's root does not log in over TCP; re-keying over the socket",
                         plan.name)
                run_as_root(in_container(engine, container["Id"], what=f"re-key preview {plan.name}"),
                            golden.db.root_password,
                            rekey_sql(plan.db.user, plan.db.password, plan.db.database, plan.db.root_password))
            timings["db_load"] = time.monotonic() - started
        finally:
            if services is not None:
                services.exception()  # (waits) the database's error is the one to report
        if services is not None:
            services.result()
    wait_for_database(endpoint, timeout=DB_TIMEOUT_SECONDS, alive=lambda: check_alive(engine, plan, plan.db_service),
                      on_denied=lambda: _create_account(engine, plan, container["Id"]))
    return services is not None


def _alive_or_revived(engine: DockerEngine, plan: cmp.PreviewPlan) -> Callable[[], None]:
    """``check_alive`` of the HTTP service, which restarts it once, at once, when it exited (or
    waits for Docker's growing restart delay) because its database refused it while the rows were
    rewritten; a second stop fails as ``check_alive`` does."""
    revived: list[bool] = []

    def alive() -> None:
        try:
            check_alive(engine, plan, plan.http_service)
        except PreviewError:
            if revived:
                raise
            revived.append(True)
            log.info("preview %s: restarting its %s service, stopped while its database was not its own yet",
                     plan.name, plan.http_service)
            engine.cli(["restart", str(compose_container(engine, plan, plan.http_service)["Id"])],
                       what=f"restart the {plan.http_service} service of preview {plan.name}")

    return alive


def _tables_to_rewrite(golden: gr.GoldenCopy | None, replacements: list[Replacement]) -> list[str] | None:
    """A clone of a golden copy rewrites only the tables that materialize found holding a string to
    replace (a full scan grows with the data), and in them only the rows it recorded
    (``replace_rows``, searched for the same keys); None (every table) when a key is not in the
    record (the config changed since)."""
    known = golden.replace_tables if golden is not None else None
    if known is None or any(r.old not in known for r in replacements):
        return None
    return sorted({table for r in replacements for table in known[r.old]})


def _create_account(engine: DockerEngine, plan: cmp.PreviewPlan, container_id: str) -> None:
    """For images that ignore MARIADB_*/MYSQL_* (plain Debian mariadb-server): create the preview's
    account as root over the server's unix socket, inside the container. SQL goes on stdin."""
    log.info("the database image of preview %s did not create its account: creating it over the socket", plan.name)
    run_as_root(in_container(engine, container_id, what=f"create the database account of preview {plan.name}"), "",
                account_sql(plan.db.user, plan.db.password, plan.db.database))


# -- list / expire ------------------------------------------------------------------------------


def _status(containers: list[dict[str, Any]]) -> str:
    if not containers:
        return "down"
    running = [c for c in containers if (c.get("State") or {}).get("Running") and not (c.get("State") or {}).get("Restarting")]
    if len(running) == len(containers):
        return "running"
    return "degraded" if running else "stopped"


def preview_from_state(config: Config, name: str, state: Mapping[str, Any], status: str,
                        labels: Mapping[str, str] | None = None) -> Preview:
    labels = labels or {}

    def pick(key: str, label: str) -> str:
        return str(state.get(key) or labels.get(label) or "")

    created = _parse_iso(pick("created_at", cmp.LABEL_CREATED)) or datetime.fromtimestamp(0, UTC)
    return Preview(
        name=name, project=config.project, status=status, url=pick("url", cmp.LABEL_URL),
        snapshot_id=pick("snapshot_id", cmp.LABEL_SNAPSHOT), source=pick("source", cmp.LABEL_SOURCE),
        created_at=created, expires_at=_parse_iso(pick("expires_at", cmp.LABEL_EXPIRES)),
        path=preview_dir(config, name), restore_path=pick("restore_path", cmp.LABEL_PATH) or "cold",
        code=pc.load(preview_dir(config, name)), last_hook=last_result(preview_dir(config, name)),
        node=pick("node", sw.LABEL_NODE),
    )


def list_previews(config: Config) -> list[Preview]:
    """This project's previews, from the engine's labels and the state folders; sorted by name."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for container in _project_containers(config):
        labels = (container.get("Config") or {}).get("Labels") or {}
        if labels.get("clonekit.service"):  # skip throwaway helpers (volume fills)
            by_name.setdefault(labels.get(cmp.LABEL_PREVIEW, ""), []).append(container)
    root = config.state_dir / PREVIEWS_FOLDER
    names = set(by_name) | {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} if root.is_dir() else set(by_name)
    previews = []
    for name in sorted(n for n in names if n):
        state = read_json(preview_dir(config, name) / STATE_FILE) or {}
        containers = by_name.get(name, [])
        labels = (containers[0].get("Config") or {}).get("Labels") if containers else {}
        status = _status(containers)
        if state.get("status") in (*BUSY_STATES, "failed"):  # what the last run says wins
            status = str(state["status"])
        if status in BUSY_STATES and _abandoned(state):
            status = "failed (process gone)"
        previews.append(preview_from_state(config, name, state, status, labels))
    return previews


def _project_containers(config: Config) -> list[dict[str, Any]]:
    """Every container of this project: on the engine, or on a swarm on each ready node of previews.nodes."""
    labels = {cmp.LABEL_PROJECT: config.project}
    if not config.previews.uses_swarm:
        return DockerEngine.for_previews(config.previews).containers(labels)
    return [c for engine in sw.Swarm(config.previews).ready_engines() for c in engine.containers(labels)]


def expired_previews(config: Config, now: datetime) -> list[Preview]:
    return [p for p in list_previews(config) if p.expires_at is not None and p.expires_at <= now]


def extend_preview(config: Config, name: str, seconds: int, *, now: datetime | None = None) -> Preview:
    """Push the expiry of preview ``name`` to ``seconds`` after now (or after its current expiry,
    when that is later); recorded in its state, which ``list`` and ``prune`` read."""
    check_name("preview", name)
    now = now or datetime.now(UTC)
    folder = preview_dir(config, name)
    with preview_lock(config, name):
        state = read_json(folder / STATE_FILE)
        if state is None:
            raise NotFoundError(f"no preview named {name!r} in project {config.project} (no state in {folder})",
                                hint="`clonekit list` shows the previews")
        current = _parse_iso(state.get("expires_at"))
        start = current if current is not None and current > now else now
        state["expires_at"] = iso(start + timedelta(seconds=seconds))
        write_private(folder / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))
    for preview in list_previews(config):
        if preview.name == name:
            return preview
    raise NotFoundError(f"preview {name!r} disappeared while its expiry was extended")


# -- refresh ------------------------------------------------------------------------------------


def refresh_preview(config: Config, repo: Any, name: str, manifest: Any, *, progress: ProgressFn | None = None) -> Preview:
    """Reload preview ``name`` from ``manifest``; keeps its name, URL (port) and credentials."""
    check_name("preview", name)
    progress = progress or no_progress
    engine = preview_engine(config, name)
    online.preflight(config, engine)  # before anything is built, removed or created
    folder = preview_dir(config, name)
    with preview_lock(config, name):
        state = read_json(folder / STATE_FILE)
        secrets_in = read_json(folder / SECRETS_FILE)
        if state is None or secrets_in is None:
            raise NotFoundError(f"no preview named {name!r} in project {config.project} (no state in {folder})",
                                hint="`clonekit list` shows the previews")
        services = services_of(manifest)
        # busy from here (what `list` shows, and whose run it is), before anything is removed
        write_private(folder / STATE_FILE, json.dumps({**state, "status": "refreshing", "owner": Owner.current().to_json()},
                                                      indent=2, sort_keys=True))
        engine = _remove_for_refresh(config, engine, name, str(state.get("compose_project") or ""), folder)
        golden = find_golden(config, engine, manifest.id)
        plan = new_plan(config, manifest, name, services, engine, previous=state, secrets_in=secrets_in, golden=golden)
        _write_state(folder, plan, manifest, status="refreshing", timings={}, node=engine.node)
        # on failure the state stays (name, port, credentials, node): `refresh` again, or `destroy`
        with _on_failure(lambda: _write_state(folder, plan, manifest, status="failed", timings={}, node=engine.node)):
            return _bring_up(config, repo, manifest, plan, services, engine, progress, golden, code=pc.load(folder))


def _remove_for_refresh(config: Config, engine: DockerEngine, name: str, compose_project: str,
                        folder: Path) -> DockerEngine:
    """Remove what the preview runs; returns the engine it is brought up again on. On a swarm,
    a preview whose node is gone or no longer active (drained, lost) moves to another node: its
    stack is removed through the manager, and what that node kept (volumes) is named in the log."""
    compose_project = compose_project or compose_project_name(config, name)
    if isinstance(engine, sw.SwarmNodeEngine) and not engine.swarm.usable(engine.node):
        swarm = engine.swarm
        moved = swarm.engine(swarm.place())
        log.warning("preview %s: node %s is not ready and active; recreating it on node %s from the snapshot",
                    name, engine.node, moved.node)
        problem = LOST_NODE
        if swarm.ready(engine.node):  # drained: it still answers, so its containers, volumes and images go
            try:
                _remove_resources(engine, config, name, compose_project, folder)
                pc.remove_images(config, engine, name)
                return moved
            except ClonekitError as exc:
                problem = exc.message
        _remove_from_lost_node(config, engine, name, compose_project, problem)
        return moved
    _remove_resources(engine, config, name, compose_project, folder)
    return engine


LOST_NODE = "the swarm sees it down"


def _remove_from_lost_node(config: Config, engine: sw.SwarmNodeEngine, name: str, compose_project: str,
                           problem: str) -> None:
    """A preview whose node does not answer: nothing is asked of the node (each try would wait for
    SSH to time out). Its route and its stack go through the manager; the node stops the stack's
    tasks when it is back, and the log names what it keeps (volumes, a branch's image) and the
    commands to remove them."""
    online.before_remove(config, compose_project)
    engine.swarm.remove_stack(compose_project)
    log.warning("preview %s: could not clean node %s (%s); its volumes and images labelled clonekit.preview=%s "
                "stay there until it is back: remove them with `docker volume prune -f --filter label=clonekit.preview=%s` "
                "and `docker image prune -a -f --filter label=clonekit.preview=%s` on it",
                name, engine.node, problem, name, name, name)


# -- destroy ------------------------------------------------------------------------------------


def destroy_preview(config: Config, name: str) -> None:
    """Remove preview ``name``: containers, volumes, network (everything labelled) and its folder."""
    check_name("preview", name)
    engine = preview_engine(config, name)
    with preview_lock(config, name):
        folder = preview_dir(config, name)
        labels = _labels_of(config, name)
        if not folder.exists() and not any(engine.ids(kind, labels) for kind in ("container", "volume", "network")):
            raise NotFoundError(f"no preview named {name!r} in project {config.project}",
                                hint="`clonekit list` shows the previews")
        if isinstance(engine, sw.SwarmNodeEngine) and not engine.swarm.ready(engine.node):
            _remove_from_lost_node(config, engine, name, compose_project_name(config, name), LOST_NODE)
            pc.delete_registry_images(config, name, folder / sw.STACK_FILE)
            shutil.rmtree(folder, ignore_errors=True)
            return
        _remove_everything(config, engine, name)


def _remove_everything(config: Config, engine: DockerEngine, name: str) -> None:
    folder = preview_dir(config, name)
    _remove_resources(engine, config, name, compose_project_name(config, name), folder)
    pc.remove_images(config, engine, name, from_registry=True)
    shutil.rmtree(folder, ignore_errors=True)


def _remove_resources(engine: DockerEngine, config: Config, name: str, compose_project: str, folder: Path) -> None:
    compose_file = folder / COMPOSE_FILE
    online.before_remove(config, compose_project)
    if compose_file.exists():
        with contextlib.suppress(PreviewError):  # a broken compose file must not block the label sweep
            engine.compose_cli(compose_file, compose_project,
                               ["down", "-v", "--remove-orphans", "-t", str(STOP_TIMEOUT_SECONDS)],
                               what=f"stop preview {name}")
    labels = _labels_of(config, name)
    engine.remove("container", engine.ids("container", labels))
    engine.remove("volume", engine.ids("volume", labels))
    engine.remove("network", engine.ids("network", labels))
    online.after_remove(engine, compose_project)


"""The `clonekit` command: parse, call one library function, render. Nothing more.

Exit codes: 0 success, 1 the operation failed, 2 usage or configuration error,
3 the sanitization policy refused the snapshot.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import EXIT_FAILED, EXIT_USAGE, ClonekitError
from .memory import share_malloc_arenas
from .output import PREVIEW_COLUMNS, SNAPSHOT_COLUMNS, Output, human_bytes, preview_row, snapshot_row

F = TypeVar("F", bound=Callable[..., Any])
EPILOG = "Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 refused by the sanitization policy."


class Context:
    def __init__(self, config_path: str | None, out: Output, log_file: str | None) -> None:
        self.config_path = config_path
        self.out = out
        self.log_file = log_file
        self._project: Any = None

    @property
    def project(self):  # noqa: ANN201 - Project is imported lazily to keep --help fast
        if self._project is None:
            from .project import Project

            self._project = Project.load(self.config_path, log_file=self.log_file)
        return self._project


pass_ctx = click.make_pass_decorator(Context)


def command(group: click.Group, name: str) -> Callable[[F], F]:
    """Register a command whose docstring (with an example) is its help."""

    def wrap(fn: F) -> F:
        return group.command(name, epilog=EPILOG)(fn)  # type: ignore[return-value]

    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EPILOG)
@click.option("-c", "--config", "config_path", metavar="PATH", help="clonekit.yml to use (default: searched upwards from here).")
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output: one JSON document on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only results and errors (for cron).")
@click.option("-v", "--verbose", count=True, help="More detail; -vv shows tracebacks.")
@click.option("--log-file", metavar="PATH", help="Append JSON lines (operation, durations, bytes; never values or secrets).")
@click.version_option(__version__, prog_name="clonekit")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, json_mode: bool, quiet: bool, verbose: int, log_file: str | None) -> None:
    """Production iso-clones in minutes: sanitized snapshots restored as Docker previews.

    \b
    Quick start:
      clonekit init                       # write a commented clonekit.yml
      clonekit snapshot prod              # capture, sanitize, store
      clonekit clone prod --as feature-x  # snapshot (or reuse one) + preview
      clonekit list                       # previews and their URLs
      clonekit destroy feature-x
      clonekit serve                      # the same on a web page: http://127.0.0.1:8765/
    """
    out = Output(json_mode=json_mode, quiet=quiet, verbose=verbose)
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = Context(config_path, out, log_file)


# -- setup ------------------------------------------------------------------------------------


@command(cli, "init")
@click.option("--force", is_flag=True, help="Overwrite an existing clonekit.yml.")
@click.option("--project", "project_name", metavar="NAME", help="Project name (default: the folder's name).")
@pass_ctx
def init_cmd(c: Context, force: bool, project_name: str | None) -> None:
    """Write a commented clonekit.yml in the current folder, filled from its compose file.

    Reads the compose file (and the running project, when there is one): the database
    service, its published port, the database name, user and the NAME of the variable
    holding its password, the mounts holding uploads, and whether it is Drupal or
    WordPress. Secret values are never written; the notes say what to export.

    \b
    Example:
      cd ~/sites/news && clonekit init
      export NEWS_DB_PASSWORD=... CLONEKIT_SECRET=$(openssl rand -hex 32)
      clonekit clone prod --as feature-x
    """
    from .init import write_starter_config

    result = write_starter_config(Path.cwd(), force=force, project=project_name)
    c.out.result(result, lambda: f"wrote {result.path}" + "".join(f"\n  {n}" for n in result.notes))


# -- snapshots ----------------------------------------------------------------------------------


@command(cli, "snapshot")
@click.argument("source")
@pass_ctx
def snapshot_cmd(c: Context, source: str) -> None:
    """Capture, sanitize and store a snapshot of SOURCE; prints its id.

    \b
    Example:
      clonekit snapshot prod
      clonekit --json snapshot prod | jq -r .id
    """
    with c.out.progress() as progress:
        snap = c.project.snapshot(source, progress=progress)
    c.out.result(snap.summary(), snap.id)


@command(cli, "snapshots")
@click.argument("source", required=False)
@pass_ctx
def snapshots_cmd(c: Context, source: str | None) -> None:
    """List snapshots: id, source, time, sizes, new bytes stored.

    An unreadable manifest is named (id and key) on stderr after the others, and the exit
    code is 1.

    \b
    Example:
      clonekit snapshots prod
    """
    catalog = c.project.heads(source)
    snaps = catalog.manifests
    now = datetime.now(UTC)
    c.out.table(
        [s.summary() for s in snaps],
        SNAPSHOT_COLUMNS,
        [snapshot_row(s, now) for s in snaps],
        empty="no snapshots yet: run `clonekit snapshot SOURCE`" if not catalog.unreadable else "no readable snapshot",
    )
    for bad in catalog.unreadable:
        c.out.error(f"snapshot {bad.id} is unreadable ({bad.key}): {bad.reason}")
    if catalog.unreadable:
        c.out.error("see docs/operations.md (an unreadable manifest): restore the file or remove it")
        sys.exit(EXIT_FAILED)


@command(cli, "verify")
@click.argument("snapshot")
@click.option("--leaks", "leaks_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also search the decompressed snapshot for the known personal values in FILE (one a line); "
                   "exit 1 if any is found.")
@pass_ctx
def verify_cmd(c: Context, snapshot: str, leaks_file: str | None) -> None:
    """Re-read every stored object of SNAPSHOT and check it; names any bad object.

    SNAPSHOT is an id, a unique prefix, `latest` or `SOURCE@latest`. A corrupt chunk is set
    aside under bad/ in the store, so that the next snapshot stores a good copy. With --leaks
    FILE, every table row, file and the manifest are also searched for the values of FILE (real
    e-mail addresses, names, phone numbers of the production, one a line): each place one
    appears is listed by the value's line number in FILE, never by the value. Exits 1 when
    anything is bad or found.

    \b
    Example:
      clonekit verify prod@latest
      clonekit verify prod@latest --leaks known-customers.txt
    """
    with c.out.progress() as progress:
        report = c.project.verify(snapshot, progress=progress)
    leaks = c.project.find_leaks(report.snapshot_id, leaks_file) if leaks_file and report.ok else None

    def describe() -> str:
        lines = [f"BAD {bad.key}: {bad.reason}" for bad in report.bad]
        verdict = "all good" if report.ok else f"{len(report.bad)} bad object(s)"
        lines.append(f"{report.snapshot_id}: {report.chunks_checked} chunks, {human_bytes(report.bytes_checked)} checked: {verdict}")
        if leaks is not None:
            lines.append(leaks.describe())
        return "\n".join(lines)

    c.out.result({**report.to_json(), **({"leaks": leaks.to_json()} if leaks is not None else {})}, describe)
    if not report.ok or (leaks is not None and not leaks.ok):
        sys.exit(EXIT_FAILED)


@command(cli, "prune")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@pass_ctx
def prune_cmd(c: Context, dry_run: bool) -> None:
    """Apply retention to snapshots, remove unreferenced stored data and expired previews.

    While a manifest is unreadable, no stored data is removed (it might be referenced): the
    unreadable ones are named and the exit code is 1.

    \b
    Example:
      clonekit prune --dry-run
      clonekit prune
    """
    report = c.project.prune(dry_run=dry_run)
    c.out.result(report, report.describe)
    if report.unreadable:
        sys.exit(EXIT_FAILED)


@command(cli, "scan")
@click.argument("source")
@click.option("--suggest", is_flag=True, help="Print YAML rules for the uncovered columns, to paste under sanitize.tables.")
@pass_ctx
def scan_cmd(c: Context, source: str, suggest: bool) -> None:
    """Report columns that look like personal data, and which rule covers each (or NONE).

    Looks at column names (in several languages), types, and up to 200 sampled rows per table
    (e-mails, phones, IPs also stored encoded, IBANs, cards, person names); names what it cannot
    read (compressed or encoded values, cache, session and search-index tables). --suggest prints
    plain YAML rules resting on the values seen. Exits 3 when personal data no rule covers is
    found and strict mode is on.

    \b
    Example:
      clonekit scan prod
      clonekit scan prod --suggest >> rules.yml
    """
    from .errors import EXIT_POLICY

    report = c.project.scan(source)
    if suggest and not c.out.json_mode:
        click.echo(c.project.suggest_rules(report))
    else:
        rows = [
            {"column": f"{f.table}.{f.column}", "why": f.reason, "rule": f.rule or "NONE"} for f in report.findings
        ]
        c.out.table(report.as_dict(), [("column", "column"), ("why", "looks like"), ("rule", "covered by")], rows, empty="no personal data found")
    if c.project.violates_policy(report):
        sys.exit(EXIT_POLICY)


# -- previews -----------------------------------------------------------------------------------


def _print_preview(c: Context, preview: Any) -> None:
    how = "from the golden copy (no data load)" if preview.restore_path == "golden" else "by loading the snapshot (cold path)"
    c.out.info(f"preview {preview.name} of snapshot {preview.snapshot_id} started {how}")
    c.out.result(preview, lambda: f"{preview.name}: {preview.url}")


def code_options(fn: F) -> F:
    """--build and --image: the branch's code in the preview (docs/previews.md)."""
    fn = click.option("--image", "images", multiple=True, metavar="SERVICE=REF",
                      help="SERVICE runs the image REF instead of production's (repeatable).")(fn)
    return click.option("--build", "builds", multiple=True, metavar="SERVICE=PATH[:DOCKERFILE]",
                        help="SERVICE runs an image built from the folder PATH (repeatable).")(fn)  # type: ignore[no-any-return]


def mount_option(fn: F) -> F:
    """--mount: a live working tree in a service (docs/previews.md)."""
    return click.option("--mount", "mounts", multiple=True, metavar="SERVICE=HOST:CONTAINER",
                        help="Bind-mount the folder HOST read-write at CONTAINER in SERVICE: edits show without a "
                             "refresh (local engine only; repeatable).")(fn)  # type: ignore[no-any-return]


@command(cli, "restore")
@click.argument("snapshot")
@click.option("--as", "name", required=True, metavar="NAME", help="Name of the new preview (a DNS label).")
@click.option("--keep-on-failure", is_flag=True, help="Leave what was created if the restore fails (for debugging).")
@code_options
@mount_option
@pass_ctx
def restore_cmd(c: Context, snapshot: str, name: str, keep_on_failure: bool, builds: tuple[str, ...],
                images: tuple[str, ...], mounts: tuple[str, ...]) -> None:
    """Create preview NAME from SNAPSHOT (an id, a prefix, `latest` or `SOURCE@latest`).

    Returns when the preview answers (and its after_restore hooks succeeded), and prints its URL.

    \b
    Example:
      clonekit restore prod@latest --as feature-x
      clonekit restore prod@latest --as feature-x --build app=../news-feature-x
      clonekit restore prod@latest --as dev --mount app=.:/var/www/html    # edit here, reload the page
    """
    with c.out.progress() as progress:
        preview = c.project.restore(snapshot, name=name, keep_on_failure=keep_on_failure, progress=progress,
                                    build=builds, image=images, mount=mounts)
    _print_preview(c, preview)


@command(cli, "clone")
@click.argument("source")
@click.option("--as", "name", required=True, metavar="NAME", help="Name of the new preview (a DNS label).")
@click.option("--max-age", metavar="DURATION", help="Reuse the newest snapshot younger than this (e.g. 6h) instead of taking one.")
@click.option("--keep-on-failure", is_flag=True, help="Leave what was created if the restore fails (for debugging).")
@code_options
@mount_option
@pass_ctx
def clone_cmd(c: Context, source: str, name: str, max_age: str | None, keep_on_failure: bool,
              builds: tuple[str, ...], images: tuple[str, ...], mounts: tuple[str, ...]) -> None:
    """Snapshot SOURCE and restore it as preview NAME, in one step.

    A new snapshot and the preview are made together: each table loads into the preview as soon
    as it is captured; the services start once the snapshot is committed (docs/previews.md).

    With --build, the service runs your branch's code on production's (sanitized) data.

    \b
    Example:
      clonekit clone prod --as feature-x
      clonekit clone prod --as feature-y --max-age 6h
      clonekit clone prod --as pr-42 --max-age 24h --build app=.
      clonekit clone prod --as pr-42 --build app=.:docker/app.Dockerfile --image worker=registry.example.com/news/worker:pr-42
      clonekit clone prod --as dev --max-age 24h --mount app=.:/var/www/html     # DDEV-style: your working tree, live
    """
    with c.out.progress() as progress:
        preview = c.project.clone(source, name=name, max_age=max_age, keep_on_failure=keep_on_failure, progress=progress,
                                  build=builds, image=images, mount=mounts)
    _print_preview(c, preview)


@command(cli, "list")
@pass_ctx
def list_cmd(c: Context) -> None:
    """List previews: name, status, URL, snapshot, age, expiry (and the node, on a swarm).

    \b
    Example:
      clonekit list
      clonekit --json list | jq -r '.[].url'
      clonekit --json list | jq -r '.[] | "\\(.name) \\(.node)"'   # previews.engine: swarm
    """
    previews = c.project.previews()
    now = datetime.now(UTC)
    c.out.table(
        previews,
        [*PREVIEW_COLUMNS, ("node", "node")] if any(p.node for p in previews) else PREVIEW_COLUMNS,
        [preview_row(p, now) for p in previews],
        empty="no previews: create one with `clonekit clone SOURCE --as NAME`",
    )


@command(cli, "refresh")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Refresh every preview; go on past failures and exit 1 if any failed.")
@click.option("--code", "code", is_flag=True, help="Keep the data; rebuild the overridden services and restart them.")
@click.option("--hooks", is_flag=True, help="With --code: run the after_restore hooks afterwards.")
@code_options
@pass_ctx
def refresh_cmd(c: Context, name: str | None, all_: bool, code: bool, hooks: bool, builds: tuple[str, ...],
                images: tuple[str, ...]) -> None:
    """Reload preview NAME (or --all) from the newest snapshot of its source; keeps name, URL and code.

    With --code, the data stays as it is now and the services running a branch's code are
    rebuilt from their recorded folder (or the --build/--image given) and restarted.

    \b
    Example:
      clonekit refresh feature-x
      clonekit refresh feature-x --code                  # after a git pull in the build folder
      clonekit refresh feature-x --code --hooks --build app=../news-feature-x
      clonekit snapshot prod && clonekit refresh --all     # nightly, from cron
    """
    from .errors import UsageError

    if bool(name) == all_:
        raise UsageError("give a preview NAME or --all (not both)")
    if all_ and (code or hooks or builds or images):
        raise UsageError("--code, --hooks, --build and --image refresh one preview: give its NAME")
    if name:
        with c.out.progress() as progress:
            preview = c.project.refresh(name, progress=progress, code=code, build=builds, image=images, hooks=hooks)
        _print_preview(c, preview)
        return
    with c.out.progress() as progress:
        report = c.project.refresh_all(progress=progress)
    c.out.result(report, report.describe)
    if report.failed:
        sys.exit(EXIT_FAILED)


@command(cli, "destroy")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Destroy every preview of this project.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def destroy_cmd(c: Context, name: str | None, all_: bool, yes: bool) -> None:
    """Remove preview NAME and everything it owns (containers, volumes, network, files).

    \b
    Example:
      clonekit destroy feature-x --yes
    """
    from .errors import UsageError

    if bool(name) == all_:
        raise UsageError("give a preview NAME or --all (not both)")
    names = [name] if name else [p.name for p in c.project.previews()]
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("destroy asks for confirmation: pass --yes when not on a terminal")
        click.confirm(f"Destroy {', '.join(names) or 'nothing'}?", abort=True)
    names = c.project.destroy_all(names)
    c.out.result({"destroyed": names}, lambda: "\n".join(f"destroyed {n}" for n in names) or "nothing to destroy")


@command(cli, "extend")
@click.argument("name")
@click.option("--by", metavar="DURATION", help="How much longer it lives (default: previews.ttl, else 7d).")
@pass_ctx
def extend_cmd(c: Context, name: str, by: str | None) -> None:
    """Push the expiry of preview NAME: BY past now, or past its expiry when that is later.

    \b
    Example:
      clonekit extend feature-x --by 3d
    """
    preview = c.project.extend(name, by)
    when = preview.expires_at.strftime("%Y-%m-%d %H:%M UTC") if preview.expires_at else "never"
    c.out.result(preview, f"{preview.name} expires {when}")


@command(cli, "exec")
@click.argument("name")
@click.argument("argv", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
@click.option("-s", "--service", metavar="SERVICE", help="The service to run in (default: the HTTP one).")
@pass_ctx
def exec_cmd(c: Context, name: str, argv: tuple[str, ...], service: str | None) -> None:
    """Run a command in a service of preview NAME; its exit code is clonekit's.

    \b
    Example:
      clonekit exec feature-x -- wp plugin list
      clonekit exec feature-x -s db -- mariadb --version
      clonekit exec feature-x -- sh -c 'ls wp-content/mu-plugins'
    """
    sys.exit(c.project.exec(name, argv, service=service))


@command(cli, "logs")
@click.argument("name")
@click.option("-s", "--service", metavar="SERVICE", help="The service whose log to show (default: the HTTP one).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines.")
@pass_ctx
def logs_cmd(c: Context, name: str, service: str | None, follow: bool, tail: int | None) -> None:
    """Print the log of a service of preview NAME.

    \b
    Example:
      clonekit logs feature-x --tail 50
      clonekit logs feature-x -s db -f
    """
    sys.exit(c.project.logs(name, service=service, follow=follow, tail=tail))


@command(cli, "db")
@click.argument("name")
@click.option("-e", "--execute", "sql", metavar="SQL", help="Run SQL, print the result as a table, exit.")
@pass_ctx
def db_cmd(c: Context, name: str, sql: str | None) -> None:
    """A database client in preview NAME (its own credentials; nothing typed twice).

    \b
    Example:
      clonekit db feature-x
      clonekit db feature-x --execute "SELECT ID, post_title FROM wp_posts LIMIT 5"
      clonekit db feature-x < fixtures.sql
    """
    sys.exit(c.project.db(name, execute=sql))


@command(cli, "slug")
@click.argument("text")
@pass_ctx
def slug_cmd(c: Context, text: str) -> None:
    """Turn a branch name into a preview name (a DNS label): lowercase, ASCII, '-', at most 63.

    \b
    Example:
      clonekit slug "feature/Élan_42"                     # feature-elan-42
      clonekit clone prod --as "$(clonekit slug "$CI_COMMIT_REF_NAME")" --build app=.
    """
    from .previews.slug import slugify

    name = slugify(text)
    c.out.result({"slug": name}, name)


@command(cli, "materialize")
@click.argument("snapshot")
@pass_ctx
def materialize_cmd(c: Context, snapshot: str) -> None:
    """Load SNAPSHOT once into golden images on the preview host, so clones start in seconds.

    \b
    Runs previews.hooks.after_materialize once, in a build preview, and bakes their effects into
    the golden copy; previews made from it run only after_restore.

    \b
    Example:
      clonekit materialize prod@latest
      clonekit golden                                      # what is materialized, which hooks are baked in
    """
    with c.out.progress() as progress:
        result = c.project.materialize(snapshot, progress=progress)
    baked = f" ({len(result.hooks)} after_materialize hook(s) baked in)" if result.hooks else ""
    c.out.result(result, lambda: f"materialized {result.snapshot_id}: {result.image}{baked}")


@command(cli, "golden")
@pass_ctx
def golden_cmd(c: Context) -> None:
    """List the golden copies on the preview host: snapshot, when made, images, hooks baked in.

    \b
    Example:
      clonekit golden
      clonekit --json golden | jq '.[] | {snapshot_id, hooks}'
    """
    copies = c.project.golden_copies()
    rows = [{"snapshot": g["snapshot_id"], "made": g["made_at"] or "?",
             "database": g["db_image"] or "-",
             "files": ", ".join([*(str(i["image"]) for i in g["files_images"].values()), *g["volumes"].values()]) or "-",
             "hooks": "; ".join(f"{h['service']}: {h['run']}" for h in g["hooks"]) or "-",
             "complete": "yes" if g["complete"] else "no (run materialize again)"} for g in copies]
    c.out.table(copies, [("snapshot", "snapshot"), ("made", "made"), ("database", "database image"),
                         ("files", "files"), ("hooks", "after_materialize hooks"), ("complete", "complete")],
                rows, empty="no golden copy: `clonekit materialize SNAPSHOT` makes one")


@command(cli, "serve")
@click.option("--bind", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to listen on; one other than loopback needs dashboard.password_env set.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@pass_ctx
def serve_cmd(c: Context, bind: str, port: int) -> None:
    """The agency's web page: previews (refresh, refresh code, extend, destroy, create) and
    snapshots with their history; JSON under /api/ (as `--json list` and `--json snapshots`).

    Every page asks for dashboard.user and the password in the variable dashboard.password_env
    names (HTTP basic auth, or a login form in a browser). Without a password only a loopback
    bind starts (exit 2 otherwise). With --log-file, actions are logged and the snapshots page
    shows each snapshot's last verify. When dashboard.url has the previews' proxy's scheme and
    port (previews.url without {port}), the proxy routes its host name here until the server
    stops (the password is then required). See docs/dashboard.md.

    \b
    Example:
      clonekit serve                                   # http://127.0.0.1:8765/
      export CLONEKIT_DASHBOARD_PASSWORD=...
      clonekit --log-file /var/log/clonekit/news.jsonl serve --bind 0.0.0.0 --port 8765
      curl -u clonekit:"$CLONEKIT_DASHBOARD_PASSWORD" http://127.0.0.1:8765/api/previews
    """
    from .dashboard import serve

    serve(c.project, bind=bind, port=port, echo=c.out.info)


@cli.group("proxy", epilog=EPILOG)
def proxy_group() -> None:
    """The HTTPS proxy in front of previews whose previews.url has no {port} (one per Docker host).

    \b
    Example:
      clonekit proxy status
      clonekit proxy ca > clonekit-ca.pem && curl --cacert clonekit-ca.pem https://pr-42.preview.test
      clonekit proxy stop
    """


@command(proxy_group, "status")
@pass_ctx
def proxy_status_cmd(c: Context) -> None:
    """Whether the proxy runs, where it listens, its routes (preview -> upstream) and certificates.

    \b
    Example:
      clonekit proxy status
      clonekit --json proxy status | jq -r '.routes[].host'
    """
    status = c.project.proxy_status()

    def text() -> str:
        if status.state == "absent":
            return "proxy: not running (it starts with the first preview whose previews.url has no {port})"
        lines = [f"proxy: {status.state} ({status.image}), tls {status.tls or '?'}, ports {', '.join(status.ports) or '-'}"]
        lines += [f"  {r.host} -> {r.upstream}  ({r.id})" for r in status.routes] or ["  no routes"]
        lines += [f"  certificate {x.host} ({x.issuer}) until {x.not_after}" for x in status.certificates]
        return "\n".join(lines)

    c.out.result(status, text)


@command(proxy_group, "ca")
@pass_ctx
def proxy_ca_cmd(c: Context) -> None:
    """Print the proxy's internal CA certificate (PEM) to trust in a browser or curl (tls: internal).

    \b
    Example:
      clonekit proxy ca > clonekit-ca.pem
      curl --cacert clonekit-ca.pem -u review https://feature-x.preview.agency.example
    """
    pem = c.project.proxy_ca()
    c.out.result({"certificate": pem}, pem.rstrip("\n"))


@command(proxy_group, "stop")
@pass_ctx
def proxy_stop_cmd(c: Context) -> None:
    """Stop and remove the proxy; its volume keeps routes, certificates and the CA for the next start.

    \b
    Example:
      clonekit proxy stop
    """
    stopped = c.project.proxy_stop()
    c.out.result({"stopped": stopped}, "proxy stopped" if stopped else "proxy was not running")


# -- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every error a user can cause into one message and a documented exit code."""
    verbose = any(a in ("-vv", "-vvv") for a in (argv or sys.argv[1:]))
    json_mode = "--json" in (argv or sys.argv[1:])
    share_malloc_arenas()
    try:
        cli.main(args=argv, prog_name="clonekit", standalone_mode=False)
    except ClonekitError as exc:
        _report_error(str(exc), exc.exit_code, type(exc).__name__, json_mode)
        if verbose:
            traceback.print_exc()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the one top-level handler: a bug, not a user error
        _report_error(f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)", EXIT_FAILED, "InternalError", json_mode)
        if verbose:
            traceback.print_exc()
        sys.exit(EXIT_FAILED)
    sys.exit(0)


def _report_error(message: str, code: int, kind: str, json_mode: bool) -> None:
    click.echo(f"error: {message}", err=True)
    if json_mode:
        import json

        click.echo(json.dumps({"error": {"type": kind, "message": message, "exit_code": code}}, indent=2))

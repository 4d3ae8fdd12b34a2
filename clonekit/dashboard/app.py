"""The dashboard's routes: pages and a JSON API over the ``Project`` API, as thin as cli.py.

The JSON under /api/ is the CLI's: /api/previews is ``clonekit --json list``, /api/snapshots is
``clonekit --json snapshots [SOURCE]``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..config import check_name
from ..errors import ClonekitError, ConfigError, NotFoundError
from ..output import human_age, human_bytes, human_duration, preview_row, snapshot_row, to_jsonable
from .auth import CSRF_FIELD, SESSION_USER, Credentials, csrf_ok, csrf_token, safe_next
from .chart import chart_points, snapshot_chart
from .jobs import Jobs

if TYPE_CHECKING:
    from ..project import Project

HERE = Path(__file__).parent
SESSION_COOKIE = "clonekit_dashboard"
SESSION_SECONDS = 12 * 3600
OPEN_PATHS = ("/login",)  # everything else asks for credentials
ACTIONS = {"refresh": "refresh (data)", "refresh-code": "refresh code", "destroy": "destroy"}


def create_app(project: Project, credentials: Credentials, *, secure_cookies: bool = False) -> Starlette:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    templates = Jinja2Templates(env=env)
    jobs = Jobs()

    def page(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
        flashes = request.session.pop("flash", [])
        context = {"project": project.config.project, "csrf": csrf_token(request.session), "csrf_field": CSRF_FIELD,
                   "flashes": flashes, "user": request.session.get(SESSION_USER), "open": credentials.password is None,
                   "jobs": [j.to_json() for j in jobs.recent()], **values}
        return templates.TemplateResponse(request, template, context, status_code=status_code)

    def flash(request: Request, kind: str, text: str) -> None:
        request.session["flash"] = [*request.session.get("flash", []), [kind, text]]

    async def checked_form(request: Request) -> dict[str, Any]:
        """The POSTed form, once its CSRF token matched the session's (403 otherwise)."""
        form = await request.form()
        if not csrf_ok(request.session, form.get(CSRF_FIELD)):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return {k: v for k, v in form.items() if isinstance(v, str)}

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        signed_in = request.session.get(SESSION_USER) == credentials.user
        if signed_in or credentials.check_basic(request.headers.get("authorization")) or request.url.path in OPEN_PATHS:
            return await call_next(request)
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            # a browser: the login form, still a 401 (no challenge header: no browser pop-up)
            return page(request, "login.html", status_code=401, next=request.url.path, failed=False)
        # Scripts get the basic auth challenge; a browser's own requests (Sec-Fetch-*) do not: its
        # pop-up would stall the page (a script or a poll after the session ended). It has the form.
        challenge = {} if "sec-fetch-mode" in request.headers else {"WWW-Authenticate": 'Basic realm="clonekit", charset="UTF-8"'}
        return PlainTextResponse("authentication required: log in at /login, or use HTTP basic auth",
                                 status_code=401, headers=challenge)

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", next=safe_next(request.query_params.get("next")), failed=False)

    async def login(request: Request) -> Response:
        form = await checked_form(request)
        target = safe_next(form.get("next"))
        if not credentials.check(form.get("user", ""), form.get("password", "")):
            return page(request, "login.html", status_code=401, next=target, failed=True)
        request.session.clear()
        request.session[SESSION_USER] = credentials.user
        csrf_token(request.session)  # a fresh token for the signed-in session
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        await checked_form(request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- previews ---------------------------------------------------------------------------

    def previews_page(request: Request) -> Response:
        now = datetime.now(UTC)
        catalog = _catalog(project)
        snapshots = {m.id: m for m in catalog}
        rows = []
        for preview in project.previews():
            row = preview_row(preview, now)
            manifest = snapshots.get(preview.snapshot_id)
            row.update(source=preview.source, link=preview.url if preview.url.startswith(("http://", "https://")) else "",
                       snapshot_age=human_age(manifest.created_at, now) if manifest else "not in the store",
                       created=preview.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                       expires_at=preview.expires_at.strftime("%Y-%m-%d %H:%M UTC") if preview.expires_at else "",
                       last_hook=preview.last_hook or "none ran", job=_job_json(jobs, preview.name))
            rows.append(row)
        latest = {}
        for manifest in catalog:  # oldest first: the last one of each source wins
            latest[manifest.source] = manifest
        sources = [{"name": s, "latest": latest[s].id if s in latest else "",
                    "age": human_age(latest[s].created_at, now) if s in latest else ""}
                   for s in sorted(project.config.sources)]
        return page(request, "previews.html", previews=rows, sources=sources, actions=ACTIONS)

    async def new_preview(request: Request) -> Response:
        form = await checked_form(request)
        name, source, image = form.get("name", "").strip(), form.get("source", ""), form.get("image", "").strip()
        try:
            check_name("preview", name)
            project.config.source(source)
        except ConfigError as exc:
            flash(request, "error", exc.message)
            return RedirectResponse("/", status_code=303)
        images = [image] if image else []

        def run(progress: Any) -> None:
            project.restore(f"{source}@latest", name=name, progress=progress, image=images)

        _start(request, name, "create", run)
        return RedirectResponse("/", status_code=303)

    async def preview_action(request: Request) -> Response:
        await checked_form(request)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ACTIONS:
            raise HTTPException(404, f"no action {action!r}")
        check_name("preview", name)

        def run(progress: Any) -> None:
            if action == "destroy":
                project.destroy(name)
            else:
                project.refresh(name, progress=progress, code=action == "refresh-code")

        _start(request, name, action, run)
        return RedirectResponse("/", status_code=303)

    async def extend(request: Request) -> Response:
        form = await checked_form(request)
        name = request.path_params["name"]
        by = form.get("by", "").strip() or None
        preview = await run_in_threadpool(project.extend, name, by)
        when = preview.expires_at.strftime("%Y-%m-%d %H:%M UTC") if preview.expires_at else "never"
        flash(request, "ok", f"{name} now expires {when}")
        return RedirectResponse("/", status_code=303)

    def confirm_destroy(request: Request) -> Response:
        name = request.path_params["name"]
        check_name("preview", name)
        return page(request, "destroy.html", name=name)

    def _start(request: Request, name: str, action: str, run: Callable[[Any], None]) -> None:
        job, started = jobs.start(name, action, run)
        if started:
            flash(request, "ok", f"{action} {name}: started")
        else:
            flash(request, "info", f"{name} is already busy with {job.action}: that run goes on (no second run)")

    def job_status(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            raise HTTPException(404, "no such job")
        return JSONResponse(job.to_json())

    # -- snapshots --------------------------------------------------------------------------

    def snapshots_page(request: Request) -> Response:
        now = datetime.now(UTC)
        names = sorted(project.config.sources)
        source = request.query_params.get("source") or (names[0] if names else "")
        if source not in names:
            raise HTTPException(404, f"no source named {source!r}")
        catalog = project.heads(source) if _has_store(project) else None
        manifests = catalog.manifests if catalog else []
        verified = project.verifications()
        rows = []
        for m in reversed(manifests):
            row = snapshot_row(m, now)
            check = verified.get(m.id)
            row.update(time=m.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                       duration=human_duration(m.stats["seconds"]) if "seconds" in m.stats else "-",
                       sanitization=m.sanitization(),
                       verify=_verify_text(check, logged=project.oplog.path is not None))
            rows.append(row)
        chart = Markup(snapshot_chart(chart_points(manifests), title=f"last snapshots of {source}")) if manifests else ""
        unreadable = [{"id": u.id, "key": u.key, "reason": u.reason} for u in (catalog.unreadable if catalog else [])]
        return page(request, "snapshots.html", sources=names, source=source, snapshots=rows, chart=chart,
                    unreadable=unreadable, total=human_bytes(sum(int(m.stats.get("new_bytes") or 0) for m in manifests)))

    # -- JSON API (the CLI's --json documents) ---------------------------------------------

    def api_previews(request: Request) -> Response:
        return JSONResponse(to_jsonable(project.previews()))

    def api_snapshots(request: Request) -> Response:
        source = request.query_params.get("source") or None
        return JSONResponse(to_jsonable([m.summary() for m in project.heads(source).manifests]))

    # -- errors -----------------------------------------------------------------------------

    async def clonekit_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClonekitError)
        status = 404 if isinstance(exc, NotFoundError) else 400 if isinstance(exc, ConfigError) else 500
        if request.url.path.startswith(("/api/", "/jobs/")):
            return JSONResponse({"error": {"type": type(exc).__name__, "message": str(exc)}}, status_code=status)
        if request.method == "POST":
            flash(request, "error", str(exc))
            return RedirectResponse("/", status_code=303)
        return page(request, "error.html", status_code=status, message=str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)

    routes = [
        Route("/", previews_page),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/previews", new_preview, methods=["POST"]),
        Route("/previews/{name}/destroy", confirm_destroy, methods=["GET"]),
        Route("/previews/{name}/extend", extend, methods=["POST"]),
        Route("/previews/{name}/{action}", preview_action, methods=["POST"]),
        Route("/jobs/{job_id}", job_status),
        Route("/snapshots", snapshots_page),
        Route("/api/previews", api_previews),
        Route("/api/snapshots", api_snapshots),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SessionMiddleware, secret_key=secrets.token_hex(32), session_cookie=SESSION_COOKIE,
                   max_age=SESSION_SECONDS, same_site="strict", https_only=secure_cookies),
        Middleware(BaseHTTPMiddleware, dispatch=authenticate),
    ]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={ClonekitError: clonekit_error, HTTPException: http_error})


def _has_store(project: Project) -> bool:
    try:
        project.repository  # noqa: B018 - opening it says whether there is one
    except NotFoundError:
        return False
    return True


def _catalog(project: Project) -> list[Any]:
    """Every readable manifest, oldest first; none before the first snapshot made the store."""
    return list(project.heads().manifests) if _has_store(project) else []


def _job_json(jobs: Jobs, name: str) -> dict[str, Any] | None:
    job = jobs.running_for(name)
    return job.to_json() if job else None


def _verify_text(record: dict[str, Any] | None, *, logged: bool) -> str:
    if record is None:
        return "not verified" if logged else "unknown (serve without --log-file)"
    verdict = "ok" if record.get("status") == "ok" and record.get("ok") else "FAILED"
    return f"{verdict} ({str(record.get('time', '?')).replace('T', ' ')[:16]} UTC)"

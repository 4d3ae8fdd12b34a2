"""Load and validate ``clonekit.yml``.

Everything is checked up front and every problem is reported at once, each naming the file,
the key path and what was expected. The result is a tree of frozen dataclasses; secrets are
never read from the file, only the names of the environment variables that hold them.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from .describe import describe_value, key_path
from .errors import ConfigError

N = TypeVar("N", int, float)

CONFIG_FILENAME = "clonekit.yml"
DEFAULT_STORE_DIR = ".clonekit/store"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$", re.ASCII)
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
ENGINES = ("mariadb", "mysql")
PRESETS = ("drupal", "wordpress", "none")
DEFAULT_PREVIEW_URL = "http://127.0.0.1:{port}"
# Log tables of Drupal and WordPress (and their plug-ins), bare or behind a table prefix:
# previews.replace leaves them alone unless previews.replace_skip says otherwise. They hold the
# production URL in every row (a record of what happened in production, read by nobody in a
# preview) and are the largest tables of a site: rewriting them made a clone grow with the logs.
DEFAULT_REPLACE_SKIP = tuple(pattern for table in ("watchdog", "accesslog", "webform_submission_log")
                             for pattern in (table, f"*_{table}")) + (
    "*_actionscheduler_logs", "*_woocommerce_log", "*_wc_download_log", "*_registration_log")


MAX_DURATION_SECONDS = 100 * 366 * 86400  # a century: beyond, a date computation overflows


def parse_duration(text: str | int) -> int:
    """``"6h"`` → 21600. Plain integers are seconds. Raises ValueError on anything else,
    including a duration longer than a century (MAX_DURATION_SECONDS)."""
    if isinstance(text, bool):
        raise ValueError(text)
    if isinstance(text, int):
        seconds = text
    else:
        match = DURATION.match(str(text))
        if not match:
            raise ValueError(text)
        seconds = int(match.group(1)) * DURATION_SECONDS[match.group(2)]
    if not 0 <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(text)
    return seconds


def env_number(name: str, default: N) -> N:
    """A tuning variable (``CLONEKIT_LOCK_WAIT_SECONDS=60``) of the default's type, or the default
    when unset; anything but a finite number >= 0 is a ConfigError naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = type(default)(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < float("inf"):
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ConfigError(f"environment variable {name}: expected {kind} >= 0, got {text!r}", hint=f"unset it for the default ({default})")
    return value


def check_name(kind: str, name: str) -> None:
    """Project and preview names become Docker resource names and host names: DNS labels."""
    if not DNS_LABEL.match(name or ""):
        raise ConfigError(
            f"invalid {kind} name {name!r}: expected a DNS label "
            "(lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-')"
        )


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str | None = None
    port: int = 22
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    key_file: str | None = None  # None: agent and ~/.ssh default keys

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class DatabaseSource:
    engine: str
    name: str
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password_env: str | None = None
    socket: str | None = None

    def password(self) -> str | None:
        """Read the password from its environment variable, at the moment it is needed."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(
                f"the database password variable {self.password_env} is not set",
                hint=f"export {self.password_env}=... before running clonekit",
            )
        return value


@dataclass(frozen=True)
class FileSource:
    path: str
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainersSource:
    compose_project: str
    docker_host: str | None = None  # None: the local engine, or ssh://<source ssh> when ssh is set
    secret_env_names: tuple[str, ...] = ()  # extra variable names whose values are never stored


@dataclass(frozen=True)
class Source:
    name: str
    ssh: SshTarget | None = None
    database: DatabaseSource | None = None
    files: tuple[FileSource, ...] = ()
    containers: ContainersSource | None = None


@dataclass(frozen=True)
class StoreConfig:
    url: str  # absolute path, file://, or s3://bucket/prefix
    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = True
    encryption_key_env: str | None = None
    upload_workers: int = 8
    stall_timeout: int | None = None  # seconds a store operation may go without progress; None: CLONEKIT_STALL_TIMEOUT
    compression_level: int | None = None  # zstd level for new chunks; None: the store's own (1 for new stores)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


@dataclass(frozen=True)
class SanitizeConfig:
    preset: str = "none"
    secret_env: str | None = None
    strict: bool = True
    # table pattern -> rule mapping, shape-checked here, compiled by clonekit.sanitize
    tables: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    keep_accounts: tuple[str, ...] = ()  # staff accounts kept as they are (by login or email)
    dev_password: str = "clonekit"

    def secret(self) -> bytes:
        if self.secret_env is None:
            return b""
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(
                f"the sanitization secret variable {self.secret_env} is not set",
                hint=f"export {self.secret_env}=$(openssl rand -hex 32) and keep it the same every night",
            )
        return value.encode()


@dataclass(frozen=True)
class PreviewFilesTarget:
    service: str
    path: str


@dataclass(frozen=True)
class ServiceBuild:
    """``previews.services.S.build``: a folder (relative to clonekit.yml) and its Dockerfile."""

    context: str
    dockerfile: str | None = None
    args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    target: str | None = None


@dataclass(frozen=True)
class ServiceCode:
    """``previews.services.S``: the code every preview runs for service S instead of production's image."""

    build: ServiceBuild | None = None
    image: str | None = None
    # live working trees (local engine only): absolute host folder -> path in the container
    mounts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Hook:
    """``previews.hooks.WHEN[i]``: a shell command run with ``sh -c`` in a service of the preview."""

    service: str
    run: str


@dataclass(frozen=True)
class ProxyAuth:
    user: str
    password_env: str


LOOPBACK_BINDS = ("127.0.0.1", "::1", "localhost")
DOCKER_HOST_SCHEMES = ("unix", "ssh", "tcp")
SSH_ENGINE_URL = re.compile(r"^(?:(?P<user>[^@\s/:]+)@)?(?P<host>[^:@\s/]+)(?::(?P<port>\d+))?/?$")  # after ssh://
EGRESS_MODES = ("no-mail", "none", "open")
PREVIEW_ENGINES = ("compose", "swarm")
MOST_FREE_MEMORY = "most-free-memory"
# A registry as Docker names it: host[:port][/path] (no scheme, no tag).
REGISTRY_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9._-]+)*$")
TLS_MODES = ("acme", "internal", "off")


@dataclass(frozen=True)
class ProxyConfig:
    """``previews.proxy``: clonekit's Caddy proxy in front of previews whose URL has no {port}."""

    bind: str = "127.0.0.1"
    http_port: int = 80
    https_port: int = 443
    tls: str = "internal"  # acme | internal | off | files (cert_file + key_file)
    cert_file: str | None = None
    key_file: str | None = None
    acme_email: str | None = None
    auth: ProxyAuth | None = None
    image: str = "caddy:2"


@dataclass(frozen=True)
class DockerTls:
    """TLS of a ``tcp://`` engine, as ``docker --tlsverify`` / DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem."""

    cert_path: str
    verify: bool = True


@dataclass(frozen=True)
class PreviewsConfig:
    docker_host: str | None = None  # None: the local engine; unix://, ssh://user@host[:port] or tcp://host:port
    docker_ssh: SshTarget | None = None  # the SSH side of an ssh:// docker_host (key file, known_hosts)
    docker_tls: DockerTls | None = None  # the TLS side of a tcp:// docker_host
    url: str = DEFAULT_PREVIEW_URL
    database_service: str = "db"
    files: Mapping[str, PreviewFilesTarget] = field(default_factory=lambda: MappingProxyType({}))
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    replace: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # table names or globs previews.replace leaves alone; absent from the file: the well-known log tables
    replace_skip: tuple[str, ...] = DEFAULT_REPLACE_SKIP
    ttl_seconds: int | None = None
    http_service: str | None = None  # the service whose port 80 is the preview URL; guessed when None
    prewarm: bool = False
    services: Mapping[str, ServiceCode] = field(default_factory=lambda: MappingProxyType({}))
    hooks: Mapping[str, tuple[Hook, ...]] = field(default_factory=lambda: MappingProxyType({}))
    proxy: ProxyConfig = ProxyConfig()
    egress: str = "no-mail"  # no-mail | none | open
    engine: str = "compose"  # compose: one engine (docker_host) | swarm: stacks on the swarm docker_host manages
    registry: str | None = None  # swarm: host[:port][/path] every node pulls golden and branch images from
    nodes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # swarm: hostname -> ssh:// engine
    placement: str = MOST_FREE_MEMORY  # swarm: most-free-memory | a node's hostname

    @property
    def uses_swarm(self) -> bool:
        return self.engine == "swarm"

    @property
    def uses_proxy(self) -> bool:
        """A URL template without {port} is served by clonekit's proxy."""
        return "{port}" not in self.url


@dataclass(frozen=True)
class Retention:
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    grace_seconds: int = 3600


@dataclass(frozen=True)
class NotifyConfig:
    webhook_env: str | None = None


DEFAULT_DASHBOARD_PASSWORD_ENV = "CLONEKIT_DASHBOARD_PASSWORD"


@dataclass(frozen=True)
class DashboardConfig:
    """``dashboard``: the agency's web page (`clonekit serve`). The password is read from the named
    variable when the server starts, never from this file or the command line."""

    user: str = "clonekit"
    password_env: str = DEFAULT_DASHBOARD_PASSWORD_ENV
    password_env_set: bool = False  # written in clonekit.yml: then the variable must be set
    url: str | None = None  # where people open it (printed at start; https: cookies are Secure)

    def password(self) -> str | None:
        """The password from the environment; None when unset (only a loopback bind may then start)."""
        value = os.environ.get(self.password_env, "")
        if not value and self.password_env_set:
            raise ConfigError(
                f"dashboard.password_env: the environment variable {self.password_env} is not set or empty",
                hint=f"export {self.password_env}=... (the password people type to open the dashboard)",
            )
        return value or None


@dataclass(frozen=True)
class Config:
    path: Path
    project: str
    store: StoreConfig
    sources: Mapping[str, Source]
    sanitize: SanitizeConfig
    previews: PreviewsConfig
    retention: Retention
    notify: NotifyConfig
    dashboard: DashboardConfig = DashboardConfig()

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        """Where clonekit keeps local state (previews' compose files, locks)."""
        return self.root / ".clonekit"

    def source(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            raise ConfigError(f"{self.path}: no source named {name!r} (sources: {known})") from None


def find_config(start: Path | None = None) -> Path:
    """Search ``clonekit.yml`` in ``start`` and its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_FILENAME} in {here} or any parent folder",
        hint="run `clonekit init` to write one, or pass -c PATH",
    )


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    config_path = Path(path).resolve() if path else find_config()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such file", hint="run `clonekit init` to write one") from None
    except IsADirectoryError:
        raise ConfigError(f"{config_path}: is a folder, not a configuration file", hint="pass -c PATH/clonekit.yml") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{config_path}: line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
            hint="save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror or exc}") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader that refuses duplicate keys
    except RecursionError:
        raise ConfigError(f"{config_path}: not valid YAML: nested too deeply") from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(f"{config_path}: line {line}: not valid YAML: control character 0x{char:02x} is not allowed") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}, column {mark.column + 1}:"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{config_path}:{where} not valid YAML: {problem}") from None
    return parse_config(raw, config_path)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe subset, but a key given twice is an error: the second would silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def parse_config(raw: Any, path: Path) -> Config:
    checker = _Checker(path)
    config = checker.config(raw)
    if checker.problems:
        count = len(checker.problems)
        raise ConfigError(f"{path}: {count} problem{'s' if count > 1 else ''} in the configuration", problems=checker.problems)
    assert config is not None
    return config


class _Checker:
    """Walks the raw YAML, collecting problems instead of stopping at the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    # -- primitives -------------------------------------------------------------------------

    def problem(self, key: str, expected: str, got: Any = ...) -> None:
        text = f"{key}: expected {expected}"
        if got is not ...:
            text += f", got {describe_value(got)}"
        self.problems.append(text)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, "a mapping", value)
            return {}
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.problem(f"{key}.{k}", "a string key")
                continue
            if allowed is not None and k not in allowed:
                guess = difflib.get_close_matches(k, allowed, n=1)
                hint = f" (did you mean {guess[0]!r}?)" if guess else ""
                self.problems.append(f"{key_path(key, k)}: unknown key{hint}; allowed: {', '.join(allowed)}")
                continue
            out[k] = v
        return out

    def string(self, value: Any, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.problem(key, "a value (this key is required)")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(key, "a string", value)
            return default
        return str(value)

    def integer(self, value: Any, key: str, default: int | None, low: int, high: int) -> int | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"an integer from {low} to {high}", value)
            return default
        return value

    def boolean(self, value: Any, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, "true or false", value)
            return default
        return value

    def env_name(self, value: Any, key: str) -> str | None:
        name = self.string(value, key)
        if name is not None and not ENV_NAME.match(name):
            self.problem(key, "the NAME of an environment variable (secrets are never written in this file)", name)
            return None
        return name

    def duration(self, value: Any, key: str) -> int | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError:
            self.problem(key, "a duration such as 90s, 30m, 6h, 14d or 2w (at most 100 years)", value)
            return None

    def string_list(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "a list of strings", value)
            return ()
        return tuple(value)

    def string_map(self, value: Any, key: str) -> Mapping[str, str]:
        out: dict[str, str] = {}
        for k, v in self.mapping(value, key, None).items():
            if v is None:
                v = ""
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                self.problem(key_path(key, k), "a string", v)
                continue
            out[k] = str(v)
        return MappingProxyType(out)

    # -- sections -----------------------------------------------------------------------------

    def config(self, raw: Any) -> Config | None:
        if raw is None:
            self.problems.append("the file is empty: expected at least `project:` and `sources:`")
            return None
        top = self.mapping(
            raw,
            "(top level)",
            ("project", "store", "store_options", "sources", "sanitize", "previews", "retention", "notify", "dashboard"),
        )
        if not isinstance(raw, dict):
            return None
        project = self.string(top.get("project"), "project", required=True) or "invalid"
        if "project" in top and not DNS_LABEL.match(project):
            self.problem("project", "a DNS label: lowercase letters, digits and '-', 1-63 characters", project)
        return Config(
            path=self.path,
            project=project,
            store=self.store(top.get("store"), top.get("store_options")),
            sources=self.sources(top.get("sources")),
            sanitize=self.sanitize(top.get("sanitize")),
            previews=self.previews(top.get("previews")),
            retention=self.retention(top.get("retention")),
            notify=self.notify(top.get("notify")),
            dashboard=self.dashboard(top.get("dashboard")),
        )

    def store(self, value: Any, options: Any) -> StoreConfig:
        url = self.string(value, "store", DEFAULT_STORE_DIR) or DEFAULT_STORE_DIR
        if url.startswith("s3://"):
            bucket = url[5:].split("/", 1)[0]
            if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
                self.problem("store", "s3://BUCKET[/prefix] with a valid bucket name (3-63 of a-z 0-9 . -)", url)
        elif "://" in url and not url.startswith("file://"):
            self.problem("store", "a folder path, a file:// URL or an s3://bucket/prefix URL", url)
        else:
            local = url[len("file://") :] if url.startswith("file://") else url
            folder = Path(os.path.expanduser(local))
            url = str(folder if folder.is_absolute() else (self.path.parent / folder).resolve())
        opts = self.mapping(
            options, "store_options", ("endpoint_url", "region", "path_style", "encryption_key_env", "upload_workers",
                                               "stall_timeout", "compression_level")
        )
        endpoint = self.string(opts.get("endpoint_url"), "store_options.endpoint_url")
        if endpoint is not None and not re.match(r"^https?://", endpoint):
            self.problem("store_options.endpoint_url", "an http:// or https:// URL", endpoint)
        stall = self.duration(opts.get("stall_timeout"), "store_options.stall_timeout")
        if stall == 0:
            self.problem("store_options.stall_timeout", "a duration longer than 0 s, such as 90s or 2m", 0)
        return StoreConfig(
            url=url,
            endpoint_url=endpoint,
            region=self.string(opts.get("region"), "store_options.region"),
            path_style=self.boolean(opts.get("path_style"), "store_options.path_style", True),
            encryption_key_env=self.env_name(opts.get("encryption_key_env"), "store_options.encryption_key_env"),
            upload_workers=self.integer(opts.get("upload_workers"), "store_options.upload_workers", 8, 1, 64) or 8,
            stall_timeout=stall or None,
            compression_level=self.integer(opts.get("compression_level"), "store_options.compression_level", None, 1, 19),
        )

    def sources(self, value: Any) -> Mapping[str, Source]:
        if value is None:
            self.problem("sources", "at least one source, e.g. `sources: {prod: {database: ...}}`")
            return MappingProxyType({})
        out: dict[str, Source] = {}
        for name, body in self.mapping(value, "sources", None).items():
            key = f"sources.{name}"
            if not DNS_LABEL.match(name):
                self.problem(key, "a source name made of lowercase letters, digits and '-'", name)
            src = self.source(name, body, key)
            if src is not None:
                out[name] = src
        if isinstance(value, dict) and not value:
            self.problem("sources", "at least one source")
        return MappingProxyType(out)

    def source(self, name: str, value: Any, key: str) -> Source | None:
        body = self.mapping(value, key, ("ssh", "database", "files", "containers"))
        if isinstance(value, dict) and not any(k in body for k in ("database", "files", "containers")):
            self.problem(key, "at least one of database, files or containers")
        return Source(
            name=name,
            ssh=self.ssh(body.get("ssh"), f"{key}.ssh"),
            database=self.database(body.get("database"), f"{key}.database"),
            files=self.files(body.get("files"), f"{key}.files"),
            containers=self.containers(body.get("containers"), f"{key}.containers"),
        )

    def ssh(self, value: Any, key: str) -> SshTarget | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = {"target": value}
        body = self.mapping(value, key, ("target", "host", "user", "port", "known_hosts", "key_file"))
        target = self.string(body.get("target"), f"{key}")
        user, host, port = body.get("user"), body.get("host"), body.get("port")
        if target is not None:
            match = re.match(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[^:@\s]+)(?::(?P<port>\d+))?$", target)
            if not match:
                self.problem(key, "user@host[:port]", target)
                return None
            user = user or match.group("user")
            host = host or match.group("host")
            port = port or (int(match.group("port")) if match.group("port") else None)
        host_s = self.string(host, f"{key}.host", required=True)
        if host_s is None:
            return None
        return SshTarget(
            host=host_s,
            user=self.string(user, f"{key}.user"),
            port=self.integer(port, f"{key}.port", 22, 1, 65535) or 22,
            known_hosts=self.string(body.get("known_hosts"), f"{key}.known_hosts"),
            key_file=self.string(body.get("key_file"), f"{key}.key_file"),
        )

    def database(self, value: Any, key: str) -> DatabaseSource | None:
        if value is None:
            return None
        body = self.mapping(value, key, ("engine", "host", "port", "name", "user", "password_env", "socket", "password"))
        if "password" in body:
            self.problem(
                f"{key}.password", "no password in this file: use password_env: VARIABLE_NAME and export the variable"
            )
        engine = self.string(body.get("engine"), f"{key}.engine", "mariadb") or "mariadb"
        if engine not in ENGINES:
            self.problem(f"{key}.engine", " or ".join(ENGINES), engine)
        name = self.string(body.get("name"), f"{key}.name", required=True)
        return DatabaseSource(
            engine=engine,
            name=name or "",
            host=self.string(body.get("host"), f"{key}.host", "127.0.0.1") or "127.0.0.1",
            port=self.integer(body.get("port"), f"{key}.port", 3306, 1, 65535) or 3306,
            user=self.string(body.get("user"), f"{key}.user", "root") or "root",
            password_env=self.env_name(body.get("password_env"), f"{key}.password_env"),
            socket=self.string(body.get("socket"), f"{key}.socket"),
        )

    def files(self, value: Any, key: str) -> tuple[FileSource, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(key, "a list of {path: ..., exclude: [...]}", value)
            return ()
        out: list[FileSource] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            item_key = f"{key}[{i}]"
            if isinstance(item, str):
                item = {"path": item}
            body = self.mapping(item, item_key, ("path", "exclude"))
            path = self.string(body.get("path"), f"{item_key}.path", required=True)
            if path is None:
                continue
            if not path.startswith("/"):
                self.problem(f"{item_key}.path", "an absolute path", path)
            if path in seen:
                self.problem(f"{item_key}.path", "each path once", path)
            seen.add(path)
            out.append(FileSource(path=path.rstrip("/") or "/", exclude=self.string_list(body.get("exclude"), f"{item_key}.exclude")))
        return tuple(out)

    def containers(self, value: Any, key: str) -> ContainersSource | None:
        if value is None:
            return None
        body = self.mapping(value, key, ("compose_project", "docker_host", "secret_env"))
        project = self.string(body.get("compose_project"), f"{key}.compose_project", required=True)
        if project is None:
            return None
        names = self.string_list(body.get("secret_env"), f"{key}.secret_env")
        return ContainersSource(
            compose_project=project,
            docker_host=self.string(body.get("docker_host"), f"{key}.docker_host"),
            secret_env_names=names,
        )

    def sanitize(self, value: Any) -> SanitizeConfig:
        body = self.mapping(value, "sanitize", ("preset", "secret_env", "strict", "tables", "keep_accounts", "dev_password"))
        preset = self.string(body.get("preset"), "sanitize.preset", "none") or "none"
        if preset not in PRESETS:
            self.problem("sanitize.preset", " | ".join(PRESETS), preset)
        tables = self.mapping(body.get("tables"), "sanitize.tables", None)
        from .sanitize.rules import check_table_rules  # pure; kept here so every problem is reported together

        self.problems.extend(check_table_rules(tables, "sanitize.tables"))
        return SanitizeConfig(
            preset=preset,
            secret_env=self.env_name(body.get("secret_env"), "sanitize.secret_env"),
            strict=self.boolean(body.get("strict"), "sanitize.strict", True),
            tables=MappingProxyType(tables),
            keep_accounts=self.string_list(body.get("keep_accounts"), "sanitize.keep_accounts"),
            dev_password=self.string(body.get("dev_password"), "sanitize.dev_password", "clonekit") or "clonekit",
        )

    def previews(self, value: Any) -> PreviewsConfig:
        body = self.mapping(
            value,
            "previews",
            ("docker_host", "docker_ssh", "docker_tls", "url", "database_service", "files", "env", "replace",
             "replace_skip", "ttl", "http_service", "prewarm", "services", "hooks", "proxy", "egress", "engine",
             "registry", "nodes", "placement"),
        )
        docker_host = self.string(body.get("docker_host"), "previews.docker_host")
        docker_ssh, docker_tls = self.docker_host(docker_host, body.get("docker_ssh"), body.get("docker_tls"))
        url = self.string(body.get("url"), "previews.url", DEFAULT_PREVIEW_URL) or DEFAULT_PREVIEW_URL
        if not re.match(r"^https?://", url):
            self.problem("previews.url", "an http:// or https:// URL template such as http://{name}.{project}.localhost:{port}", url)
        unknown = set(re.findall(r"{([^}]*)}", url)) - {"name", "project", "port"}
        if unknown:
            self.problem("previews.url", "placeholders among {name} {project} {port}", url)
        files: dict[str, PreviewFilesTarget] = {}
        for src_path, target in self.mapping(body.get("files"), "previews.files", None).items():
            key = key_path("previews.files", src_path)
            t = self.mapping(target, key, ("service", "path"))
            service = self.string(t.get("service"), f"{key}.service", required=True)
            dest = self.string(t.get("path"), f"{key}.path", required=True)
            if dest is not None and not dest.startswith("/"):
                self.problem(f"{key}.path", "an absolute path inside the container", dest)
            if service and dest:
                files[src_path.rstrip("/") or "/"] = PreviewFilesTarget(service=service, path=dest)
        env = self.string_map(body.get("env"), "previews.env")
        allowed = {"db.host", "db.port", "db.name", "db.user", "db.password", "url", "name", "project"}
        for name, template in env.items():
            bad = set(re.findall(r"{([^}]*)}", template)) - allowed
            if bad:
                self.problem(key_path("previews.env", name), "placeholders among {" + "} {".join(sorted(allowed)) + "}", template)
        return PreviewsConfig(
            docker_host=docker_host,
            docker_ssh=docker_ssh,
            docker_tls=docker_tls,
            url=url,
            database_service=self.string(body.get("database_service"), "previews.database_service", "db") or "db",
            files=MappingProxyType(files),
            env=env,
            replace=self.string_map(body.get("replace"), "previews.replace"),
            replace_skip=(self.string_list(body.get("replace_skip"), "previews.replace_skip")
                          if "replace_skip" in body else DEFAULT_REPLACE_SKIP),
            ttl_seconds=self.duration(body.get("ttl"), "previews.ttl"),
            http_service=self.string(body.get("http_service"), "previews.http_service"),
            prewarm=self.boolean(body.get("prewarm"), "previews.prewarm", False),
            services=self.preview_services(body.get("services"), body.get("docker_host")),
            hooks=self.preview_hooks(body.get("hooks")),
            proxy=self.proxy(body.get("proxy"), url),
            egress=self.choice(body.get("egress"), "previews.egress", EGRESS_MODES, "no-mail"),
            **self.swarm(body, docker_host),
        )

    def swarm(self, body: Mapping[str, Any], docker_host: str | None) -> dict[str, Any]:
        """``previews.engine`` and, for ``swarm``, the registry, the nodes' engines and the placement."""
        engine = self.choice(body.get("engine"), "previews.engine", PREVIEW_ENGINES, "compose")
        if engine != "swarm":
            for key in ("registry", "nodes", "placement"):
                if key in body:
                    self.problem(f"previews.{key}", "only with previews.engine: swarm", f"engine {engine}")
            return {"engine": engine}
        if not (docker_host or "").startswith("ssh://"):
            self.problem("previews.docker_host", "the swarm manager's engine as ssh://user@host[:port] with "
                         "previews.engine: swarm (clonekit reaches its nodes over SSH)", docker_host or "the local engine")
        registry = self.string(body.get("registry"), "previews.registry", required=True)
        if registry is not None and not REGISTRY_NAME.match(registry):
            self.problem("previews.registry", "a registry every node can pull from, as host[:port][/path] "
                         "(for example registry.example.net:5000)", registry)
        nodes: dict[str, str] = {}
        for hostname, url in self.mapping(body.get("nodes"), "previews.nodes", None).items():
            key = key_path("previews.nodes", hostname)
            text = self.string(url, key, required=True)
            if text is not None and not (text.startswith("ssh://") and SSH_ENGINE_URL.match(text[len("ssh://"):])):
                self.problem(key, "the node's engine as ssh://user@host[:port]", text)
            elif text is not None:
                nodes[hostname] = text
        if not nodes and not body.get("nodes"):
            self.problem("previews.nodes", "the swarm nodes previews may run on, as {hostname: ssh://user@host[:port]} "
                         "(hostnames as `docker node ls` shows them)")
        placement = self.string(body.get("placement"), "previews.placement", MOST_FREE_MEMORY) or MOST_FREE_MEMORY
        if placement != MOST_FREE_MEMORY and nodes and placement not in nodes:
            self.problem("previews.placement", f"{MOST_FREE_MEMORY} or one of previews.nodes ({', '.join(sorted(nodes))})",
                         placement)
        return {"engine": engine, "registry": registry, "nodes": MappingProxyType(nodes), "placement": placement}

    def docker_host(self, host: str | None, ssh: Any, tls: Any) -> tuple[SshTarget | None, DockerTls | None]:
        """The SSH target of an ``ssh://`` engine, the TLS files of a ``tcp://`` one; a bad URL is a problem."""
        ssh_body = self.mapping(ssh, "previews.docker_ssh", ("key_file", "known_hosts"))
        tls_body = self.mapping(tls, "previews.docker_tls", ("cert_path", "verify"))
        scheme = host.split("://", 1)[0] if host and "://" in host else ""
        if host is not None and scheme not in DOCKER_HOST_SCHEMES:
            self.problem("previews.docker_host", "unix:///path/docker.sock, ssh://user@host[:port] or tcp://host:port", host)
            return None, None
        if ssh_body and scheme != "ssh":
            self.problem("previews.docker_ssh", "only with an ssh:// previews.docker_host", host or "the local engine")
        if tls_body and scheme != "tcp":
            self.problem("previews.docker_tls", "only with a tcp:// previews.docker_host", host or "the local engine")
        target: SshTarget | None = None
        docker_tls: DockerTls | None = None
        rest = host.split("://", 1)[1] if host else ""
        if scheme == "ssh":
            match = SSH_ENGINE_URL.match(rest)
            if not match:
                self.problem("previews.docker_host", "ssh://user@host[:port]", host)
            else:
                target = SshTarget(
                    host=match.group("host"), user=match.group("user"),
                    port=self.integer(int(match.group("port") or 22), "previews.docker_host (port)", 22, 1, 65535) or 22,
                    known_hosts=self.string(ssh_body.get("known_hosts"), "previews.docker_ssh.known_hosts"),
                    key_file=self.string(ssh_body.get("key_file"), "previews.docker_ssh.key_file"))
        elif scheme == "tcp":
            if not re.match(r"^[^:@\s/]+:\d{1,5}/?$", rest):
                self.problem("previews.docker_host", "tcp://host:port (2376 for TLS)", host)
            cert_path = self.string(tls_body.get("cert_path"), "previews.docker_tls.cert_path")
            if cert_path:
                docker_tls = DockerTls(cert_path=cert_path,
                                       verify=self.boolean(tls_body.get("verify"), "previews.docker_tls.verify", True))
        elif scheme == "unix" and not rest.startswith("/"):
            self.problem("previews.docker_host", "unix:///absolute/path/docker.sock", host)
        return target, docker_tls

    def preview_services(self, value: Any, docker_host: Any = None) -> Mapping[str, ServiceCode]:
        out: dict[str, ServiceCode] = {}
        for service, spec in self.mapping(value, "previews.services", None).items():
            key = key_path("previews.services", service)
            body = self.mapping(spec, key, ("build", "image", "mount"))
            build, image = body.get("build"), self.string(body.get("image"), f"{key}.image")
            mounts = self.mounts(body.get("mount"), f"{key}.mount", docker_host)
            if build is not None and image is not None or build is None and image is None and not mounts:
                self.problem(key, "one of build (a folder) or image (a reference), and/or mount (a live working tree)", spec)
                continue
            if isinstance(build, str):
                build = {"context": build}
            parsed = None
            if build is not None:
                b = self.mapping(build, f"{key}.build", ("context", "dockerfile", "args", "target"))
                context = self.string(b.get("context"), f"{key}.build.context", ".") or "."
                folder = Path(os.path.expanduser(context))
                parsed = ServiceBuild(
                    context=str(folder if folder.is_absolute() else (self.path.parent / folder).resolve()),
                    dockerfile=self.string(b.get("dockerfile"), f"{key}.build.dockerfile"),
                    args=self.string_map(b.get("args"), f"{key}.build.args"),
                    target=self.string(b.get("target"), f"{key}.build.target"),
                )
            out[str(service)] = ServiceCode(build=parsed, image=image, mounts=MappingProxyType(mounts))
        return MappingProxyType(out)

    def mounts(self, value: Any, key: str, docker_host: Any) -> dict[str, str]:
        """``{HOST_FOLDER: CONTAINER_PATH}``; relative host folders are relative to clonekit.yml."""
        out: dict[str, str] = {}
        for host, target in self.string_map(value, key).items():
            if not target.startswith("/"):
                self.problem(key_path(key, host), "an absolute path inside the container", target)
                continue
            folder = Path(os.path.expanduser(host))
            out[str(folder if folder.is_absolute() else (self.path.parent / folder).resolve())] = target.rstrip("/") or "/"
        if out and isinstance(docker_host, str) and docker_host and not docker_host.startswith("unix://"):
            self.problem(key, "a live working tree is bind-mounted from this machine: it needs the local Docker engine "
                         f"(previews.docker_host is {docker_host}); use build: on a remote engine", value)
        return out

    def preview_hooks(self, value: Any) -> Mapping[str, tuple[Hook, ...]]:
        out: dict[str, tuple[Hook, ...]] = {}
        for when, items in self.mapping(value, "previews.hooks", HOOK_TIMES).items():
            key = f"previews.hooks.{when}"
            if not isinstance(items, list):
                self.problem(key, "a list of {service: NAME, run: COMMAND}", items)
                continue
            hooks = []
            for i, item in enumerate(items):
                body = self.mapping(item, f"{key}[{i}]", ("service", "run"))
                service = self.string(body.get("service"), f"{key}[{i}].service", required=True)
                run = self.string(body.get("run"), f"{key}[{i}].run", required=True)
                if service and run:
                    hooks.append(Hook(service=service, run=run))
            out[when] = tuple(hooks)
        return MappingProxyType(out)

    def choice(self, value: Any, key: str, allowed: tuple[str, ...], default: str) -> str:
        text = self.string(value, key, default) or default
        if text not in allowed:
            self.problem(key, "one of " + ", ".join(allowed), value)
            return default
        return text

    def proxy(self, value: Any, url: str) -> ProxyConfig:
        key = "previews.proxy"
        body = self.mapping(value, key, ("bind", "http_port", "https_port", "tls", "acme_email", "auth", "image"))
        base = ProxyConfig()
        tls, cert_file, key_file = base.tls, None, None
        raw_tls = body.get("tls")
        if isinstance(raw_tls, dict):
            files = self.mapping(raw_tls, f"{key}.tls", ("cert_file", "key_file"))
            cert_file = self.string(files.get("cert_file"), f"{key}.tls.cert_file", required=True)
            key_file = self.string(files.get("key_file"), f"{key}.tls.key_file", required=True)
            tls = "files"
        elif raw_tls is False:  # YAML 1.1 reads an unquoted `off` as false
            tls = "off"
        elif raw_tls is not None:
            tls = self.choice(raw_tls, f"{key}.tls", TLS_MODES, base.tls)
        auth = None
        if body.get("auth") is not None:
            a = self.mapping(body.get("auth"), f"{key}.auth", ("user", "password_env"))
            user = self.string(a.get("user"), f"{key}.auth.user", required=True)
            password_env = self.env_name(a.get("password_env"), f"{key}.auth.password_env")
            if password_env is None and a.get("password_env") is None:
                self.problem(f"{key}.auth.password_env", "a value (this key is required)")
            if user and password_env:
                auth = ProxyAuth(user=user, password_env=password_env)
        proxy = ProxyConfig(
            bind=self.string(body.get("bind"), f"{key}.bind", base.bind) or base.bind,
            http_port=self.integer(body.get("http_port"), f"{key}.http_port", base.http_port, 1, 65535) or base.http_port,
            https_port=self.integer(body.get("https_port"), f"{key}.https_port", base.https_port, 1, 65535) or base.https_port,
            tls=tls, cert_file=cert_file, key_file=key_file,
            acme_email=self.string(body.get("acme_email"), f"{key}.acme_email"),
            auth=auth,
            image=self.string(body.get("image"), f"{key}.image", base.image) or base.image,
        )
        if "{port}" in url:
            return proxy
        # Previews hold production-shaped data: a proxy others can reach must ask for credentials.
        if proxy.bind not in LOOPBACK_BINDS and proxy.auth is None and body.get("auth") is None:
            self.problem(f"{key}.auth", f"credentials ({{user, password_env}}) when {key}.bind is {proxy.bind} "
                         "(not loopback): previews hold production-shaped data; or bind: 127.0.0.1")
        parts = urlsplit(url.replace("{name}", "n").replace("{project}", "p"))
        scheme = "http" if proxy.tls == "off" else "https"
        port = proxy.http_port if proxy.tls == "off" else proxy.https_port
        if parts.scheme != scheme:
            self.problem("previews.url", f"a {scheme}:// URL (previews.proxy.tls is {proxy.tls})", url)
        elif (parts.port or (80 if scheme == "http" else 443)) != port:
            self.problem("previews.url", f"the port the proxy listens on ({port}, previews.proxy."
                         f"{'http_port' if scheme == 'http' else 'https_port'}) or none when it is the default", url)
        if proxy.http_port == proxy.https_port:
            self.problem(f"{key}.https_port", f"a port other than {key}.http_port", proxy.https_port)
        return proxy

    def retention(self, value: Any) -> Retention:
        body = self.mapping(value, "retention", ("keep_last", "keep_daily", "keep_weekly", "grace"))
        grace = self.duration(body.get("grace"), "retention.grace")
        return Retention(
            keep_last=self.integer(body.get("keep_last"), "retention.keep_last", None, 1, 100000),
            keep_daily=self.integer(body.get("keep_daily"), "retention.keep_daily", None, 0, 100000),
            keep_weekly=self.integer(body.get("keep_weekly"), "retention.keep_weekly", None, 0, 100000),
            grace_seconds=3600 if grace is None else grace,
        )

    def notify(self, value: Any) -> NotifyConfig:
        body = self.mapping(value, "notify", ("webhook_env",))
        return NotifyConfig(webhook_env=self.env_name(body.get("webhook_env"), "notify.webhook_env"))


    def dashboard(self, value: Any) -> DashboardConfig:
        body = self.mapping(value, "dashboard", ("user", "password_env", "url"))
        base = DashboardConfig()
        user = self.string(body.get("user"), "dashboard.user", base.user) or base.user
        if not re.match(r"^[^:\s]+$", user):
            self.problem("dashboard.user", "a user name without ':' or spaces", user)
        password_env = self.env_name(body.get("password_env"), "dashboard.password_env")
        url = self.string(body.get("url"), "dashboard.url")
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            self.problem("dashboard.url", "an http:// or https:// URL such as https://clonekit.preview.agency.example", url)
        return DashboardConfig(user=user, password_env=password_env or base.password_env,
                               password_env_set=password_env is not None, url=url)


HOOK_TIMES = ("after_restore", "after_materialize")


def source_engine_ssh(docker_host: str | None, source_ssh: SshTarget | None) -> SshTarget | None:
    """The SSH side of a source's ``containers.docker_host: ssh://...`` (None for other schemes), so
    the docker CLI checks its host key like every other SSH connection: the source's own
    ``ssh.known_hosts``/``key_file`` when it names the same host, else the user's defaults."""
    if not docker_host or not docker_host.startswith("ssh://"):
        return None
    match = SSH_ENGINE_URL.match(docker_host[len("ssh://"):])
    if not match:
        raise ConfigError(f"containers.docker_host: expected ssh://user@host[:port], got {docker_host!r}")
    host, port = match.group("host"), int(match.group("port") or 22)
    same = source_ssh is not None and source_ssh.host == host
    return SshTarget(host=host, user=match.group("user"), port=port,
                     known_hosts=source_ssh.known_hosts if same and source_ssh else None,
                     key_file=source_ssh.key_file if same and source_ssh else None)

"""A Drupal-shaped dataset with fake personal data, for the db, sanitization, preview and clone benchmarks.

Its schema (``DDL``) is the one Drupal schema of the project: the tests' small hand-written
dataset (``tests/fixtures/drupal_fixture.py``) seeds the same tables.

    python3 -m benchmarks.drupal_dataset --scale small --database ck_bench_drupal

Scales: ``tiny`` (~2 MB, for tests), ``small`` (~100 MB of SQL), ``medium`` (~300 MB), ``top``
(~1 GB), or a float multiplier of ``small``. The content is deterministic (fixed seed), so two runs
at the same scale build the same rows. Table names are stable: other benchmarks rely on them.
Rows are loaded with ``LOAD DATA LOCAL INFILE`` from temporary TSV files, a batch at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql

from clonekit.db.endpoint import DbEndpoint

# The production database service of the benchmarks' source compose projects (a str.format
# template: doubled braces are YAML's): the clone and golden benches run the dataset's site on it.
SOURCE_DB_SERVICE = """  db:
    image: clonekit/mariadb:10.11
    environment: {{MARIADB_DATABASE: drupal, MARIADB_USER: drupal, MARIADB_PASSWORD: prod-secret,
                  MARIADB_ROOT_PASSWORD: prod-root-secret}}
    volumes: [dbdata:/var/lib/mysql]
"""

SCALES = {"tiny": 0.02, "small": 1.0, "medium": 3.0, "top": 10.0, "large": 10.0}
SEED = 20260101
BATCH_BYTES = 16 * 1024 * 1024
BASE_TIME = 1_700_000_000  # 2023-11-14: every timestamp is after this

# Rows per table at scale 1.0 (small).
ROWS_AT_SMALL = {
    "users_field_data": 10_000,
    "users_data": 20_000,
    "node_field_data": 10_000,
    "node__body": 10_000,
    "comment_field_data": 40_000,
    "watchdog": 100_000,
    "sessions": 3_000,
    "cache_data": 4_000,
    "cache_render": 3_000,
    "webform_submission_data": 40_000,
    "contact_message": 5_000,
    "flood": 10_000,
}

TABLE_NAMES = tuple(ROWS_AT_SMALL)

_CACHE_DDL = """(
  cid varchar(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  data longblob,
  expire int(11) NOT NULL DEFAULT 0,
  created decimal(14,3) NOT NULL DEFAULT 0.000,
  serialized smallint(6) NOT NULL DEFAULT 0,
  tags longtext CHARACTER SET ascii COLLATE ascii_bin,
  checksum varchar(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (cid),
  KEY expire (expire),
  KEY created (created)
)"""

DDL = {
    "users_field_data": """(
  uid int(10) unsigned NOT NULL,
  langcode varchar(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  preferred_langcode varchar(12) CHARACTER SET ascii COLLATE ascii_general_ci DEFAULT NULL,
  name varchar(60) NOT NULL,
  pass varchar(255) DEFAULT NULL,
  mail varchar(254) DEFAULT NULL,
  init varchar(254) DEFAULT NULL,
  timezone varchar(32) DEFAULT NULL,
  status tinyint(4) DEFAULT NULL,
  created int(11) NOT NULL,
  changed int(11) DEFAULT NULL,
  access int(11) NOT NULL,
  login int(11) DEFAULT NULL,
  default_langcode tinyint(4) NOT NULL,
  PRIMARY KEY (uid),
  UNIQUE KEY user__name (name),
  KEY user_field__mail (mail(191)),
  KEY user__id__default_langcode__langcode (uid, default_langcode, langcode)
)""",
    "users_data": """(
  uid int(10) unsigned NOT NULL DEFAULT 0,
  module varchar(50) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  name varchar(128) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  value longblob,
  serialized tinyint(3) unsigned DEFAULT 0,
  PRIMARY KEY (uid, module, name),
  KEY module (module),
  KEY name (name)
)""",
    "node_field_data": """(
  nid int(10) unsigned NOT NULL,
  vid int(10) unsigned NOT NULL,
  type varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  langcode varchar(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  status tinyint(4) NOT NULL,
  uid int(10) unsigned NOT NULL,
  title varchar(255) NOT NULL,
  created int(11) NOT NULL,
  changed int(11) DEFAULT NULL,
  promote tinyint(4) DEFAULT NULL,
  sticky tinyint(4) DEFAULT NULL,
  default_langcode tinyint(4) NOT NULL,
  PRIMARY KEY (nid, langcode),
  KEY node__vid (vid),
  KEY node_field__type__target_id (type),
  KEY node_field__uid__target_id (uid),
  KEY node__status_type (status, type, nid),
  KEY node_field__created (created)
)""",
    "node__body": """(
  bundle varchar(128) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  deleted tinyint(4) NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL,
  revision_id int(10) unsigned NOT NULL,
  langcode varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  delta int(10) unsigned NOT NULL,
  body_value longtext NOT NULL,
  body_summary longtext DEFAULT NULL,
  body_format varchar(255) CHARACTER SET ascii COLLATE ascii_general_ci DEFAULT NULL,
  PRIMARY KEY (entity_id, deleted, delta, langcode),
  KEY bundle (bundle),
  KEY revision_id (revision_id),
  KEY body_format (body_format)
)""",
    "comment_field_data": """(
  cid int(10) unsigned NOT NULL AUTO_INCREMENT,
  comment_type varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  langcode varchar(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  status tinyint(4) NOT NULL,
  uid int(10) unsigned NOT NULL,
  pid int(10) unsigned DEFAULT NULL,
  entity_id int(10) unsigned DEFAULT NULL,
  subject varchar(64) DEFAULT NULL,
  name varchar(60) DEFAULT NULL,
  mail varchar(254) DEFAULT NULL,
  homepage varchar(255) DEFAULT NULL,
  hostname varchar(128) DEFAULT NULL,
  created int(11) NOT NULL,
  changed int(11) DEFAULT NULL,
  thread varchar(255) NOT NULL,
  entity_type varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  field_name varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  comment_body longtext DEFAULT NULL,
  PRIMARY KEY (cid),
  KEY comment__status_pid (pid, status),
  KEY comment__num_new (entity_id, entity_type, comment_type, status, created, cid, thread(191)),
  KEY comment__entity_langcode (entity_id, entity_type, comment_type, default_langcode_dummy),
  KEY comment_field__uid__target_id (uid),
  KEY comment_field__created (created)
)""",
    "watchdog": """(
  wid bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  uid int(10) unsigned NOT NULL DEFAULT 0,
  type varchar(64) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  message longtext NOT NULL,
  variables longblob NOT NULL,
  severity tinyint(3) unsigned NOT NULL DEFAULT 0,
  link text DEFAULT NULL,
  location text NOT NULL,
  referer text DEFAULT NULL,
  hostname varchar(128) NOT NULL DEFAULT '',
  timestamp bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (wid),
  KEY type (type),
  KEY uid (uid),
  KEY severity (severity)
)""",
    "sessions": """(
  uid int(10) unsigned NOT NULL,
  sid varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  hostname varchar(128) NOT NULL DEFAULT '',
  timestamp bigint(20) NOT NULL DEFAULT 0,
  session longblob DEFAULT NULL,
  PRIMARY KEY (sid),
  KEY timestamp (timestamp),
  KEY uid (uid)
)""",
    "cache_data": _CACHE_DDL,
    "cache_render": _CACHE_DDL,
    "webform_submission_data": """(
  webform_id varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  sid int(10) unsigned NOT NULL,
  name varchar(128) NOT NULL,
  property varchar(128) NOT NULL DEFAULT '',
  delta int(10) unsigned NOT NULL DEFAULT 0,
  value longtext NOT NULL,
  PRIMARY KEY (sid, name, property, delta),
  KEY name (name),
  KEY property (property),
  KEY sid_webform (sid, webform_id)
)""",
    "contact_message": """(
  id int(10) unsigned NOT NULL AUTO_INCREMENT,
  contact_form varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  uuid varchar(128) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  langcode varchar(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  name varchar(255) DEFAULT NULL,
  mail varchar(254) DEFAULT NULL,
  subject varchar(100) DEFAULT NULL,
  message longtext DEFAULT NULL,
  ip_address varchar(128) DEFAULT NULL,
  created int(11) DEFAULT NULL,
  copy tinyint(4) DEFAULT NULL,
  recipient int(10) unsigned DEFAULT NULL,
  uid int(10) unsigned DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY contact_message_field__uuid__value (uuid),
  KEY contact_message_field__contact_form__target_id (contact_form)
)""",
    "flood": """(
  fid int(11) NOT NULL AUTO_INCREMENT,
  event varchar(64) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  identifier varchar(128) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  timestamp int(11) NOT NULL DEFAULT 0,
  expiration int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (fid),
  KEY allow (event, identifier, timestamp),
  KEY `purge` (expiration)
)""",
    # Not generated at scale (the tests seed them: tests/fixtures/drupal_fixture.py).
    "cache_default": _CACHE_DDL,
    "webform_submission": """(
  sid int(10) unsigned NOT NULL AUTO_INCREMENT,
  webform_id varchar(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  uri varchar(2000) DEFAULT NULL,
  created int(11) DEFAULT NULL,
  remote_addr varchar(128) DEFAULT NULL,
  uid int(10) unsigned DEFAULT NULL,
  PRIMARY KEY (sid)
)""",
    "config": """(
  collection varchar(255) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  name varchar(255) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
  data longblob,
  PRIMARY KEY (collection, name)
)""",
}
# comment_field_data has no default_langcode in this trimmed schema: drop the placeholder key part.
DDL["comment_field_data"] = DDL["comment_field_data"].replace(", default_langcode_dummy", "")

TABLE_OPTIONS = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"


def scale_factor(scale: str | float) -> float:
    if isinstance(scale, int | float):
        if scale <= 0:
            raise ValueError("scale must be positive")
        return float(scale)
    if scale in SCALES:
        return SCALES[scale]
    try:
        return scale_factor(float(scale))
    except ValueError:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)} or a number") from None


# -- fake values ------------------------------------------------------------------------------------


class Vocabulary:
    """Pools drawn once from Faker; rows combine them with a seeded RNG (Faker per row is too slow)."""

    def __init__(self, rng: random.Random) -> None:
        from faker import Faker

        fake = Faker(["en_US", "fr_FR", "de_DE"])
        Faker.seed(SEED)
        self.rng = rng
        self.first = [fake.first_name() for _ in range(1500)]
        self.last = [fake.last_name() for _ in range(1500)]
        self.domains = [fake.free_email_domain() for _ in range(40)] + [fake.domain_name() for _ in range(200)]
        self.words = sorted({w for _ in range(400) for w in fake.words(40)} | {fake.word() for _ in range(3000)})
        self.cities = [fake.city() for _ in range(300)]
        self.phones = [fake.phone_number() for _ in range(500)]
        self.streets = [fake.street_address() for _ in range(500)]
        self.timezones = ["Europe/Paris", "Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo", "Europe/London"]

    def person(self, i: int) -> tuple[str, str, str]:
        first = self.rng.choice(self.first)
        last = self.rng.choice(self.last)
        name = f"{first}.{last}.{i}".lower().replace(" ", "")
        mail = f"{first}.{last}{i}@{self.rng.choice(self.domains)}".lower().replace(" ", "")
        return f"{first} {last}", name, mail

    def ip(self) -> str:
        r = self.rng
        return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def sentence(self, lo: int, hi: int) -> str:
        words = self.rng.choices(self.words, k=self.rng.randint(lo, hi))
        return " ".join(words).capitalize()

    def paragraphs(self, count: int, words_lo: int = 40, words_hi: int = 120) -> str:
        return "\n".join(f"<p>{self.sentence(words_lo, words_hi)}.</p>" for _ in range(count))

    def hash_like(self, n: int) -> str:
        return f"{self.rng.getrandbits(n * 4):0{n}x}"


def php_serialize(value: object) -> str:
    """PHP's serialize() for str/int/dict: what Drupal stores in users_data, watchdog, caches."""
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, str):
        return f's:{len(value.encode())}:"{value}";'
    if isinstance(value, dict):
        inner = "".join(php_serialize(k) + php_serialize(v) for k, v in value.items())
        return f"a:{len(value)}:{{{inner}}}"
    raise TypeError(type(value).__name__)


# -- rows -------------------------------------------------------------------------------------------

Value = str | int | bytes | None
RowFactory = Callable[[Vocabulary, int], Iterator[tuple[Value, ...]]]


def _users(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for uid in range(1, n + 1):
        _full, name, mail = v.person(uid)
        created = BASE_TIME + r.randint(0, 60_000_000)
        yield (uid, "en", "en", name, "$2y$10$" + v.hash_like(53), mail, mail, r.choice(v.timezones),
               int(r.random() > 0.05), created, created + r.randint(0, 9_000_000), created + r.randint(0, 9_000_000),
               created + r.randint(0, 9_000_000), 1)


def _users_data(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    modules = [("contact", "enabled"), ("tour", "seen"), ("shortcut", "set"), ("webform", "last_ip")]
    per_user = 2
    for i in range(n):
        uid = i // per_user + 1
        module, key = modules[(i % per_user) * 2 + (uid % 2)]
        payload = {"ip": v.ip(), "phone": r.choice(v.phones), "address": r.choice(v.streets),
                   "city": r.choice(v.cities), "seen": r.randint(0, 1)}
        yield (uid, module, key, php_serialize(payload).encode(), 1)


def _nodes(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for nid in range(1, n + 1):
        created = BASE_TIME + r.randint(0, 60_000_000)
        yield (nid, nid, r.choice(["article", "page", "event"]), "en", int(r.random() > 0.1),
               r.randint(1, 200), v.sentence(4, 12)[:255], created, created + r.randint(0, 1_000_000),
               int(r.random() > 0.7), int(r.random() > 0.95), 1)


def _bodies(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for nid in range(1, n + 1):
        body = v.paragraphs(r.randint(3, 9), 60, 140)
        yield ("article", 0, nid, nid, "en", 0, body, v.sentence(10, 30) if r.random() > 0.5 else "", "full_html")


def _comments(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for cid in range(1, n + 1):
        full, _name, mail = v.person(cid)
        created = BASE_TIME + r.randint(0, 60_000_000)
        homepage = f"https://www.{r.choice(v.domains)}/" if r.random() > 0.6 else None
        yield (cid, "comment", "en", 1, r.randint(0, 10_000), None, r.randint(1, 10_000), v.sentence(2, 6)[:64],
               full[:60], mail, homepage, v.ip(), created, created, f"{cid % 997:02x}/", "node", "comment",
               v.paragraphs(1, 10, 50))


def _watchdog(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for wid in range(1, n + 1):
        full, name, mail = v.person(wid)
        kind = r.choice(["user", "php", "page not found", "access denied", "content", "cron", "mail"])
        variables = php_serialize({"%name": name, "%email": mail, "@uri": f"/node/{r.randint(1, 9999)}",
                                   "%message": v.sentence(5, 20)})
        host = v.ip()
        yield (wid, r.randint(0, 10_000), kind, "Session opened for %name." if kind == "user" else v.sentence(6, 18),
               variables.encode(), r.randint(0, 7), "", f"https://www.example.net/node/{r.randint(1, 9999)}",
               f"https://www.example.net/user/{r.randint(1, 9999)}", host, BASE_TIME + wid * 30)


def _sessions(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for i in range(n):
        _full, name, mail = v.person(i)
        payload = php_serialize({"_sf2_attributes": php_serialize({"uid": str(r.randint(1, 10_000)), "name": name,
                                                                    "mail": mail, "csrf": v.hash_like(40)}),
                                 "_sf2_meta": php_serialize({"u": BASE_TIME + i, "c": BASE_TIME + i, "l": 0}),
                                 "messages": v.sentence(40, 160)})
        yield (r.randint(0, 10_000), v.hash_like(43) + f"{i:x}", v.ip(), BASE_TIME + r.randint(0, 60_000_000),
               payload.encode())


def _cache(kind: str) -> RowFactory:
    def rows(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
        r = v.rng
        for i in range(n):
            html = v.paragraphs(r.randint(1, 6 if kind == "render" else 3), 20, 80)
            # A few random bytes per entry: caches hold gzip/igbinary payloads, i.e. binary data.
            data = php_serialize({"#markup": html, "#cache": f"{kind}:{i}"}).encode() + r.randbytes(r.randint(0, 64))
            tags = " ".join(f"node:{r.randint(1, 9999)}" for _ in range(r.randint(1, 8)))
            yield (f"entity_view:node:{i}:{kind}:[languages]=en:[theme]=olivero", data, -1,
                   f"{BASE_TIME + r.randint(0, 60_000_000)}.{r.randint(0, 999):03d}", 1, tags, str(r.randint(1, 500)))
    return rows


def _webform(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    fields = ["email", "phone", "first_name", "last_name", "message"]
    for i in range(n):
        sid = i // len(fields) + 1
        field = fields[i % len(fields)]
        full, _name, mail = v.person(sid)
        value = {"email": mail, "phone": r.choice(v.phones), "first_name": full.split(" ")[0],
                 "last_name": full.split(" ")[-1], "message": v.sentence(8, 60)}[field]
        yield (r.choice(["contact", "newsletter", "survey"]), sid, field, "", 0, value)


def _contact(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for i in range(1, n + 1):
        full, _name, mail = v.person(i)
        yield (i, "feedback", v.hash_like(32), "en", full, mail, v.sentence(3, 8)[:100],
               v.paragraphs(r.randint(1, 3), 20, 60), v.ip(), BASE_TIME + r.randint(0, 60_000_000), 0, 1, None)


def _flood(v: Vocabulary, n: int) -> Iterator[tuple[Value, ...]]:
    r = v.rng
    for fid in range(1, n + 1):
        ts = BASE_TIME + r.randint(0, 60_000_000)
        event = r.choice(["user.failed_login_ip", "user.failed_login_user", "contact", "user.password_request_ip"])
        ident = f"{r.randint(1, 10_000)}-{v.ip()}" if event == "user.failed_login_user" else v.ip()
        yield (fid, event, ident, ts, ts + 21600)


FACTORIES: dict[str, RowFactory] = {
    "users_field_data": _users,
    "users_data": _users_data,
    "node_field_data": _nodes,
    "node__body": _bodies,
    "comment_field_data": _comments,
    "watchdog": _watchdog,
    "sessions": _sessions,
    "cache_data": _cache("data"),
    "cache_render": _cache("render"),
    "webform_submission_data": _webform,
    "contact_message": _contact,
    "flood": _flood,
}


def tsv_field(value: Value) -> bytes:
    """One field of LOAD DATA's default text format."""
    if value is None:
        return b"\\N"
    raw = value if isinstance(value, bytes) else str(value).encode()
    return raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")


def _batches(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[bytes, int]]:
    lines: list[bytes] = []
    size = 0
    for row in rows:
        line = b"\t".join(tsv_field(x) for x in row) + b"\n"
        lines.append(line)
        size += len(line)
        if size >= BATCH_BYTES:
            yield b"".join(lines), len(lines)
            lines, size = [], 0
    if lines:
        yield b"".join(lines), len(lines)


def _connect(endpoint: DbEndpoint, database: str | None) -> pymysql.connections.Connection:
    return pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                           password=endpoint.password or "", database=database, unix_socket=endpoint.socket,
                           charset="utf8mb4", autocommit=True, local_infile=True)


def create_dataset(endpoint: DbEndpoint, scale: str | float = "small", *, tables: tuple[str, ...] = TABLE_NAMES,
                   progress: Callable[[str], None] | None = None) -> dict:
    """(Re)create the Drupal-shaped tables in ``endpoint.database`` (created when missing) and fill them.

    Returns ``{"database", "scale", "tables": {name: rows}, "rows", "tsv_bytes", "seconds"}``.
    """
    factor = scale_factor(scale)
    started = time.monotonic()
    rng = random.Random(SEED)
    vocabulary = Vocabulary(rng)
    conn = _connect(endpoint, None)
    counts: dict[str, int] = {}
    total_bytes = 0
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{endpoint.database}` CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_general_ci")
            cur.execute(f"USE `{endpoint.database}`")
            cur.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
            with tempfile.TemporaryDirectory(prefix="ck-dataset-") as tmp:
                path = Path(tmp) / "batch.tsv"
                for name in tables:
                    rows_wanted = max(1, round(ROWS_AT_SMALL[name] * factor))
                    cur.execute(f"DROP TABLE IF EXISTS `{name}`")
                    cur.execute(f"CREATE TABLE `{name}` {DDL[name]}{TABLE_OPTIONS}")
                    loaded = 0
                    for data, count in _batches(FACTORIES[name](vocabulary, rows_wanted)):
                        path.write_bytes(data)
                        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{name}` CHARACTER SET binary", (str(path),))
                        loaded += count
                        total_bytes += len(data)
                    counts[name] = loaded
                    if progress:
                        progress(f"{name}: {loaded} rows")
            cur.execute(f"ANALYZE TABLE {', '.join(f'`{n}`' for n in tables)}")
            cur.fetchall()
    finally:
        conn.close()
    return {
        "database": endpoint.database,
        "scale": scale,
        "tables": counts,
        "rows": sum(counts.values()),
        "tsv_bytes": total_bytes,
        "seconds": round(time.monotonic() - started, 2),
    }


def endpoint_from_env(database: str) -> DbEndpoint:
    """The benchmark server: CLONEKIT_BENCH_MYSQL_* or the test services' MariaDB."""
    env = dict(os.environ)
    services = Path(os.environ.get("CLONEKIT_SERVICES_DIR", "/var/tmp/clonekit-services")) / "services.env"
    if services.is_file():
        for line in services.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                env.setdefault(key.strip(), value.strip())

    def pick(name: str, default: str) -> str:
        return env.get(f"CLONEKIT_BENCH_MYSQL_{name}") or env.get(f"CLONEKIT_TEST_MYSQL_{name}") or default

    return DbEndpoint(host=pick("HOST", "127.0.0.1"), port=int(pick("PORT", "3306")), user=pick("USER", "root"),
                      password=pick("PASSWORD", ""), database=database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--database", default="ck_bench_drupal")
    args = parser.parse_args(argv)
    result = create_dataset(endpoint_from_env(args.database), args.scale,
                            progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

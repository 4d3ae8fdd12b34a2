"""MariaDB/MySQL: consistent streaming capture into chunks and fast parallel restore.

The manifest's database section (``capture_database`` returns it, ``restore_database`` reads it)::

    {"format": "tsv-1", "engine": "mariadb", "server_version": "...", "database": "drupal",
     "consistency": "flush-tables-with-read-lock" | "lock-tables-read" | "single-connection",
     "workers": 2, "rows": N, "bytes": N, "seconds": S,
     "tables": [{"name", "create" (CREATE TABLE without secondary indexes and foreign keys),
                 "deferred" (["ADD KEY ...", "ADD CONSTRAINT ... FOREIGN KEY ..."]),
                 "columns" (loaded columns, generated ones excluded), "bit_columns", "convert_columns",
                 "policy", "rows_policy", "rows", "bytes", "chunks": [{"id", "size"}, ...]}],
     "views" / "triggers" / "routines" / "events": [{"name", "sql" (DEFINER removed), "sql_mode", ...}],
     "skipped": [{"kind", "name", "why"}]}

Chunks hold whole rows in LOAD DATA's default text format (see ``codec``), in primary-key order.
No row value is ever written to the section or to logs.
"""

from .endpoint import DbEndpoint
from .mysql import (
    RestoreStats,
    capture_database,
    describe_tables,
    open_sampler,
    restore_database,
    sample_rows,
    table_checksums,
)

__all__ = ["DbEndpoint", "RestoreStats", "capture_database", "describe_tables", "open_sampler", "restore_database",
           "sample_rows", "table_checksums"]

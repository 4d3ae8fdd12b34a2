"""MariaDB/MySQL: consistent streaming capture into chunks and fast parallel restore."""

from .endpoint import DbEndpoint
from .mysql import (
    RestoreStats,
    capture_database,
    describe_tables,
    restore_database,
    sample_rows,
    table_checksums,
)

__all__ = ["DbEndpoint", "RestoreStats", "capture_database", "describe_tables", "restore_database",
           "sample_rows", "table_checksums"]

"""Apply the versioned SQLite schema (schema/sqlite/vN/) to a database.

Each version directory holds a `manifest.yaml` (version, min_compatible_version, description, files) and
the SQL files it lists. The database records its version in `schema_version` and every applied version in
`schema_update_history`, like the reference's Cassandra tooling. Each version is applied in its own
transaction, so a failing version leaves the database at the previous one, and re-running is a no-op.
"""

from __future__ import annotations

import importlib.resources
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from hourglass.schema.manifest import SchemaError, read_manifest

_VERSION_DIR = re.compile(r"v(\d+)")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_version (
    -- One row: the version the database is at, and the oldest code version that can still use it.
    id                      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    curr_version            INTEGER NOT NULL,
    min_compatible_version  INTEGER NOT NULL,
    creation_time_ms        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_update_history (
    id                      INTEGER PRIMARY KEY,
    update_time_ms          INTEGER NOT NULL,
    old_version             INTEGER NOT NULL,
    new_version             INTEGER NOT NULL,
    description             TEXT    NOT NULL,
    manifest_md5            TEXT    NOT NULL
);
"""


class SchemaVersionTooNewError(SchemaError):
    """The database was migrated by newer code: running older code against it could corrupt it."""


@dataclass(frozen=True)
class SchemaVersion:
    """One vN directory: its manifest and the SQL it applies."""

    version: int
    min_compatible_version: int
    description: str
    statements: list[str]
    manifest_md5: str


def default_schema_dir() -> Traversable:
    """The schema shipped with the package (works from a wheel as well as from a checkout)."""
    return importlib.resources.files(__package__) / "sqlite"


def apply_sqlite_schema(conn: sqlite3.Connection, schema_dir: Traversable | None = None) -> int:
    """Bring `conn`'s database up to the newest version under `schema_dir`; return the resulting version.

    Raises SchemaVersionTooNewError if the database is at a version newer than any known here.
    The connection must not be inside a transaction; each version commits on its own.
    """
    if conn.in_transaction:
        raise SchemaError("apply_sqlite_schema needs a connection with no open transaction")
    versions = load_schema_versions(schema_dir or default_schema_dir())
    newest = versions[-1].version if versions else 0
    _run_in_transaction(conn, lambda: _execute_all(conn, split_statements(_BOOTSTRAP)))
    current = read_schema_version(conn)
    if current > newest:
        raise SchemaVersionTooNewError(
            f"database schema is at version {current}, newer than the newest this code knows ({newest}); "
            "upgrade Hourglass before using this database"
        )
    for version in versions:
        _run_in_transaction(conn, lambda v=version: _apply_version_if_missing(conn, v))
    return read_schema_version(conn)


def read_schema_version(conn: sqlite3.Connection) -> int:
    """The database's recorded version, 0 for a database no version was ever applied to."""
    try:
        row = conn.execute("SELECT curr_version FROM schema_version WHERE id = 1").fetchone()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return 0
        raise
    return 0 if row is None else int(row[0])


def load_schema_versions(schema_dir: Traversable) -> list[SchemaVersion]:
    """Every vN directory under `schema_dir`, ordered by N (numerically: v10 comes after v9)."""
    found: dict[int, Traversable] = {}
    for entry in schema_dir.iterdir():
        match = _VERSION_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            found[int(match.group(1))] = entry
    return [_load_version(n, found[n]) for n in sorted(found)]


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements, letting SQLite decide where each one ends.

    sqlite3.Connection.executescript would commit any open transaction first, so a version could not be
    applied atomically with its bookkeeping; executing statement by statement keeps it in one transaction.
    """
    statements: list[str] = []
    *pieces, rest = script.split(";")
    pending = ""
    for piece in pieces:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if not _is_blank(pending):
                statements.append(pending.strip())
            pending = ""
    pending += rest
    if not _is_blank(pending):
        raise SchemaError(f"incomplete SQL statement at the end of the script: {pending.strip()[:80]!r}")
    return statements


# String literals (kept, they may contain comment markers) or comments (dropped).
_LITERAL_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)


def _is_blank(sql: str) -> bool:
    """Nothing but comments, whitespace and semicolons."""
    code = _LITERAL_OR_COMMENT.sub(lambda m: m.group(0) if m.group(0)[0] in "'\"" else " ", sql)
    return not code.strip(" \t\r\n;")


def _load_version(number: int, directory: Traversable) -> SchemaVersion:
    manifest = read_manifest(number, directory)
    texts = ((directory / f).read_text(encoding="utf-8") for f in manifest.files)
    return SchemaVersion(
        version=number,
        min_compatible_version=manifest.min_compatible_version,
        description=manifest.description.strip(),
        statements=[s for text in texts for s in split_statements(text)],
        manifest_md5=manifest.md5,
    )


def _apply_version_if_missing(conn: sqlite3.Connection, version: SchemaVersion) -> None:
    """Re-reads the version inside the transaction so concurrent runners apply each version once."""
    current = read_schema_version(conn)
    if current >= version.version:
        return
    _execute_all(conn, version.statements)
    now_ms = int(time.time() * 1000)
    conn.execute(
        "INSERT INTO schema_version (id, curr_version, min_compatible_version, creation_time_ms) "
        "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "curr_version = excluded.curr_version, min_compatible_version = excluded.min_compatible_version",
        (version.version, version.min_compatible_version, now_ms),
    )
    conn.execute(
        "INSERT INTO schema_update_history "
        "(update_time_ms, old_version, new_version, description, manifest_md5) VALUES (?, ?, ?, ?, ?)",
        (now_ms, current, version.version, version.description, version.manifest_md5),
    )


def _execute_all(conn: sqlite3.Connection, statements: list[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def _run_in_transaction(conn: sqlite3.Connection, work: Callable[[], None]) -> None:
    """BEGIN IMMEDIATE takes the write lock up front, so two processes never interleave a version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        work()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

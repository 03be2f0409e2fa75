"""Apply the versioned Cassandra schema (schema/cassandra/vN/) to a keyspace.

Each version directory holds a `manifest.yaml` (version, min_compatible_version, description, files) and
the CQL files it lists, as for SQLite (schema/migrate_sqlite.py). A keyspace records its version in
`schema_version` (one row per keyspace: current and minimum compatible version) and every applied version
in `schema_update_history`, like the reference's Cassandra tool.

Cassandra has no transactions for DDL, so a version is made safe to repeat instead: every statement is
idempotent (CREATE ... IF NOT EXISTS; an ALTER TABLE ADD of a column that already exists is taken as
done), and the version row is bumped last, with a conditional write, once all of the version's statements
have been applied. A run that dies half-way leaves the keyspace at the previous version, and running the
tool again finishes the job.

Synchronous on purpose: it runs from the `hourglass schema` command and from test fixtures (in a thread),
never on a serving node's event loop.
"""

from __future__ import annotations

import importlib.resources
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING

from hourglass.schema.manifest import SchemaError, read_manifest
from hourglass.schema.migrate_sqlite import SchemaVersionTooNewError

if TYPE_CHECKING:
    from cassandra.cluster import Session

__all__ = [
    "CqlVersion",
    "KeyspaceMissingError",
    "SchemaError",
    "SchemaState",
    "SchemaVersionTooNewError",
    "SchemaVersionTooOldError",
    "apply_cassandra_schema",
    "check_schema_version",
    "create_keyspace",
    "default_schema_dir",
    "keyspace_exists",
    "latest_version",
    "load_cql_versions",
    "read_schema_state",
    "split_cql",
    "validate_keyspace_name",
]

_VERSION_DIR = re.compile(r"v(\d+)")
_KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")

# Generous: schema changes wait for every node to agree, which takes seconds on a busy small box.
DDL_TIMEOUT_S = 120.0

_BOOTSTRAP = [
    """
    CREATE TABLE IF NOT EXISTS schema_version (
        keyspace_name           text,
        curr_version            int,
        min_compatible_version  int,
        creation_time           timestamp,
        PRIMARY KEY (keyspace_name)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS schema_update_history (
        year                    int,
        month                   int,
        update_time             timeuuid,
        old_version             int,
        new_version             int,
        description             text,
        manifest_md5            text,
        PRIMARY KEY ((year, month), update_time)
    )
    """,
]


class SchemaVersionTooOldError(SchemaError):
    """The keyspace lacks versions this code needs: run `hourglass schema update` first."""


class KeyspaceMissingError(SchemaError):
    """The keyspace does not exist (create it with `hourglass schema setup`, or in the Astra console)."""


@dataclass(frozen=True)
class CqlVersion:
    """One vN directory: its manifest and the CQL statements it applies, in file order."""

    version: int
    min_compatible_version: int
    description: str
    statements: list[str]
    manifest_md5: str


@dataclass(frozen=True)
class SchemaState:
    """What a keyspace's `schema_version` row says."""

    curr_version: int
    min_compatible_version: int


def default_schema_dir() -> Traversable:
    """The CQL schema shipped with the package (works from a wheel as well as from a checkout)."""
    return importlib.resources.files(__package__) / "cassandra"


def validate_keyspace_name(keyspace: str) -> str:
    """Keyspace names are spliced into CQL, so only Cassandra's unquoted identifier syntax is accepted."""
    if not _KEYSPACE_NAME.fullmatch(keyspace):
        raise SchemaError(
            f"invalid keyspace name {keyspace!r}: letters, digits and underscores, starting with a letter, "
            "at most 48 characters"
        )
    return keyspace


# ---- loading ---------------------------------------------------------------------------------------------


def load_cql_versions(schema_dir: Traversable | None = None) -> list[CqlVersion]:
    """Every vN directory under `schema_dir`, ordered by N (numerically: v10 comes after v9)."""
    schema_dir = schema_dir or default_schema_dir()
    found: dict[int, Traversable] = {}
    for entry in schema_dir.iterdir():
        match = _VERSION_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            found[int(match.group(1))] = entry
    return [_load_version(n, found[n]) for n in sorted(found)]


def latest_version(schema_dir: Traversable | None = None) -> int:
    versions = load_cql_versions(schema_dir)
    return versions[-1].version if versions else 0


def _load_version(number: int, directory: Traversable) -> CqlVersion:
    manifest = read_manifest(number, directory)
    statements: list[str] = []
    for name in manifest.files:
        if not name.endswith(".cql"):
            raise SchemaError(f"{directory.name}/manifest.yaml: {name!r} is not a .cql file")
        statements += split_cql((directory / name).read_text(encoding="utf-8"))
    return CqlVersion(
        version=number,
        min_compatible_version=manifest.min_compatible_version,
        description=" ".join(manifest.description.split()),
        statements=statements,
        manifest_md5=manifest.md5,
    )


# A string literal ('...' with '' escapes, or $$...$$), a quoted identifier, a comment (--, //, /* */),
# a statement-ending semicolon, or any other run of characters.
_CQL_TOKEN = re.compile(
    r"""(?P<keep>'(?:[^']|'')*'|\$\$.*?\$\$|"(?:[^"]|"")*")"""
    r"""|(?P<comment>--[^\n]*|//[^\n]*|/\*.*?\*/)"""
    r"""|(?P<end>;)"""
    r"""|(?P<other>[^'"$;/-]+|.)""",
    re.DOTALL,
)


def split_cql(script: str) -> list[str]:
    """Split a CQL script into statements, without comments; semicolons inside literals do not split."""
    statements: list[str] = []
    current: list[str] = []
    for match in _CQL_TOKEN.finditer(script):
        kind = match.lastgroup
        if kind == "comment":
            current.append(" ")
        elif kind == "end":
            _flush(current, statements)
        else:
            text = match.group(0)
            if kind == "keep" and text[0] in "'$\"" and not _closed(text):
                raise SchemaError(f"unterminated literal in CQL: {text[:60]!r}")
            current.append(text)
    leftover = "".join(current).strip()
    if leftover:
        raise SchemaError(f"CQL statement without a terminating semicolon: {leftover[:80]!r}")
    return statements


def _closed(literal: str) -> bool:
    if literal.startswith("$$"):
        return len(literal) >= 4 and literal.endswith("$$")
    return len(literal) >= 2 and literal[-1] == literal[0]


def _flush(current: list[str], statements: list[str]) -> None:
    text = "".join(current).strip()
    current.clear()
    if text:
        statements.append(text)


# ---- keyspace --------------------------------------------------------------------------------------------


def keyspace_exists(session: Session, keyspace: str) -> bool:
    row = session.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    return row is not None


def create_keyspace(
    session: Session, keyspace: str, replication_factor: int, datacenter: str | None = None
) -> bool:
    """CREATE KEYSPACE IF NOT EXISTS; NetworkTopologyStrategy when a datacenter is named. True if created.

    An existing keyspace is left as it is (its replication is the operator's business from then on).
    """
    validate_keyspace_name(keyspace)
    if replication_factor < 1:
        raise SchemaError(f"replication factor must be at least 1, got {replication_factor}")
    if keyspace_exists(session, keyspace):
        return False
    if datacenter:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", datacenter):
            raise SchemaError(f"invalid datacenter name {datacenter!r}")
        replication = f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}"
    else:
        replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}",
        timeout=DDL_TIMEOUT_S,
    )
    return True


# ---- versions --------------------------------------------------------------------------------------------


def read_schema_state(session: Session, keyspace: str) -> SchemaState | None:
    """The keyspace's recorded versions, None if no version was ever applied (or no schema table)."""
    validate_keyspace_name(keyspace)
    if not keyspace_exists(session, keyspace):
        raise KeyspaceMissingError(f"keyspace {keyspace!r} does not exist")
    table = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 'schema_version'",
        (keyspace,),
    ).one()
    if table is None:
        return None
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    statement = SimpleStatement(
        f"SELECT curr_version, min_compatible_version FROM {keyspace}.schema_version WHERE keyspace_name = %s",
        consistency_level=ConsistencyLevel.SERIAL,  # sees the latest conditional bump, even in flight
    )
    row = session.execute(statement, (keyspace,)).one()
    if row is None:
        return None
    curr, min_compatible = _row_values(row, "curr_version", "min_compatible_version")
    return SchemaState(int(curr), int(min_compatible))


def check_schema_version(session: Session, keyspace: str, schema_dir: Traversable | None = None) -> int:
    """What a node checks at start: the keyspace's schema is the one this code was written for.

    Raises SchemaVersionTooOldError (naming the command that fixes it) when versions are missing, and
    SchemaVersionTooNewError when the keyspace was migrated past what this code can use. Returns the
    keyspace's version.
    """
    latest = latest_version(schema_dir)
    state = read_schema_state(session, keyspace)
    if state is None:
        raise SchemaVersionTooOldError(
            f"keyspace {keyspace!r} has no Hourglass schema; run `hourglass schema setup --keyspace {keyspace}`"
        )
    if state.curr_version < latest:
        raise SchemaVersionTooOldError(
            f"keyspace {keyspace!r} is at schema version {state.curr_version}, this code needs {latest}; "
            f"run `hourglass schema update --keyspace {keyspace}`"
        )
    if state.min_compatible_version > latest:
        raise SchemaVersionTooNewError(_too_new_message(keyspace, state, latest))
    return state.curr_version


def _too_new_message(keyspace: str, state: SchemaState, latest: int) -> str:
    return (
        f"keyspace {keyspace!r} is at schema version {state.curr_version}, newer than the newest this code "
        f"knows ({latest}); upgrade Hourglass before using this keyspace"
    )


def apply_cassandra_schema(
    session: Session,
    keyspace: str,
    schema_dir: Traversable | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> int:
    """Bring `keyspace` (which must exist) up to the newest version under `schema_dir`; return it.

    Raises SchemaVersionTooNewError if the keyspace is at a version newer than any known here, before
    touching anything. The CQL files name no keyspace, so this switches `session` to `keyspace` (USE).
    """
    validate_keyspace_name(keyspace)
    versions = load_cql_versions(schema_dir)
    newest = versions[-1].version if versions else 0
    state = read_schema_state(session, keyspace)  # raises KeyspaceMissingError
    if state is not None and state.curr_version > newest:
        raise SchemaVersionTooNewError(_too_new_message(keyspace, state, newest))
    session.set_keyspace(keyspace)
    for statement in _BOOTSTRAP:
        _execute_ddl(session, statement)
    current = 0 if state is None else state.curr_version
    for version in versions:
        if version.version <= current:
            continue
        log(f"applying schema version {version.version}: {version.description}")
        for statement in version.statements:
            _execute_ddl(session, statement)
        _record_version(session, keyspace, current, version)
        current = version.version
    return current


def _execute_ddl(session: Session, statement: str) -> None:
    from cassandra import AlreadyExists, InvalidRequest

    try:
        session.execute(statement, timeout=DDL_TIMEOUT_S)
    except AlreadyExists:
        pass  # a re-run after a partial one
    except InvalidRequest as e:
        # ALTER TABLE ... ADD of a column an earlier, interrupted run already added.
        if re.match(r"\s*ALTER\s+TABLE\b.*\bADD\b", statement, re.IGNORECASE | re.DOTALL) and re.search(
            r"already exist|conflicts with an existing column", str(e)
        ):
            return
        raise SchemaError(f"schema statement failed: {e}\n  {statement}") from e


def _record_version(session: Session, keyspace: str, old: int, version: CqlVersion) -> None:
    """History first, then the version row with a condition: the bump is the version's commit point."""
    now = datetime.now(UTC)
    session.execute(
        "INSERT INTO schema_update_history "
        "(year, month, update_time, old_version, new_version, description, manifest_md5) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            now.year,
            now.month,
            _timeuuid(now),
            old,
            version.version,
            version.description,
            version.manifest_md5,
        ),
    )
    if old == 0:
        result = session.execute(
            "INSERT INTO schema_version (keyspace_name, curr_version, min_compatible_version, creation_time) "
            "VALUES (%s, %s, %s, %s) IF NOT EXISTS",
            (keyspace, version.version, version.min_compatible_version, now),
        )
    else:
        result = session.execute(
            "UPDATE schema_version SET curr_version = %s, min_compatible_version = %s "
            "WHERE keyspace_name = %s IF curr_version = %s",
            (version.version, version.min_compatible_version, keyspace, old),
        )
    if not result.was_applied:
        raise SchemaError(
            f"keyspace {keyspace!r}: another schema tool moved the version while version {version.version} "
            "was applied; run `hourglass schema version` and try again"
        )


def _timeuuid(moment: datetime) -> uuid.UUID:
    from cassandra.util import uuid_from_time

    return uuid_from_time(moment.timestamp())  # random clock sequence and node: unique per call


def _row_values(row: object, *names: str) -> tuple[object, ...]:
    if isinstance(row, dict):
        return tuple(row[name] for name in names)
    return tuple(getattr(row, name) for name in names)

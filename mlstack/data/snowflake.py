"""The Snowflake data source: the official connector, Arrow result batches, time travel with ``AT``.

Credentials never come from the manifest. In order:

1. ``connection_name`` in the manifest: that entry of ``connections.toml`` (``$SNOWFLAKE_HOME``, else
   ``~/.snowflake``, else ``~/.config/snowflake``; mode 0600), which holds the key pair (``authenticator =
   "SNOWFLAKE_JWT"`` plus ``private_key_file``) or whatever login that entry uses;
2. else key-pair auth for the manifest's ``user`` with ``$SNOWFLAKE_PRIVATE_KEY_FILE`` (and
   ``$SNOWFLAKE_PRIVATE_KEY_FILE_PWD`` when the key is encrypted).

The manifest's warehouse, database, schema and role are always applied on top of the connection.
Reads stream ``fetch_arrow_batches``; ``shards()`` hands out the connector's picklable result batches.
Unquoted Snowflake identifiers are upper case, so result columns come back upper case (``AMOUNT``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import snowflake.connector
from snowflake.connector import errors as sf_errors

from mlstack._redact import redact
from mlstack.data.base import (
    DataSource,
    Mode,
    Shard,
    TableInfo,
    Version,
    WriteResult,
    check_mode,
    parse_version,
    split_name,
    timestamp_literal,
    to_arrow,
)
from mlstack.errors import (
    BackendError,
    ConfigError,
    CredentialsError,
    DataError,
    NotFoundError,
    UsageError,
)
from mlstack.manifest import SnowflakeData

log = logging.getLogger(__name__)
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_QUERY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# A dead or unreachable Snowflake must fail a job fast: the connector's login budget (retries included) is
# 120 s and its HTTP connect timeout 60 s. Override with the keyword or the environment variable (0 = no limit).
LOGIN_TIMEOUT_ENV = "MLSTACK_SNOWFLAKE_LOGIN_TIMEOUT"
DEFAULT_LOGIN_TIMEOUT = 30
CONNECT_TIMEOUT = 10
_LOGIN_ERRNOS = {250001, 390100, 390101, 390102, 390144, 390318, 394300, 394304}


def session_close_options(connector: Any = None) -> dict[str, Any]:
    """How sessions end on close, set explicitly (connector 5.x warns when it is left to its default).

    mlstack runs no asynchronous queries, so a closed connection logs its session out (``False``) rather
    than asking the server first whether queries still run on it. Connector 4.x has no such option.
    """
    version = str(getattr(connector or snowflake.connector, "__version__", "5"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 5
    return {"enable_server_session_keep_alive_auto_detection": False} if major >= 5 else {}


@dataclass
class SnowflakeShard(Shard):
    """One result batch of a Snowflake query (the connector's ResultBatch, picklable; fetched on read)."""

    batch: Any = None

    def read(self) -> pa.Table:
        return self.batch.to_arrow()  # type: ignore[no-any-return]


def ident(name: str) -> str:
    """Quote an identifier the way Snowflake resolves an unquoted one: simple names upper case."""
    if _SIMPLE.match(name):
        return '"' + name.upper() + '"'
    return '"' + name.replace('"', '""') + '"'


def qualified(name: str) -> str:
    return ".".join(ident(p) for p in split_name(name))


def ident_exact(name: str) -> str:
    """Quote an identifier exactly as given (already resolved: upper case where Snowflake would fold it)."""
    return '"' + name.replace('"', '""') + '"'


def ident_exact_or_upper(name: str) -> str:
    """A column of written data: simple names as Snowflake folds them (upper case), others exactly."""
    return ident(name)


def _stage_part(name: str) -> str:
    """One part of a stage reference (@db.schema.stage): unquoted when simple, else quoted."""
    return name if _SIMPLE.match(name) else ident_exact(name)


@dataclass(frozen=True)
class _Table:
    """A table as Snowflake stores its name: database, schema and name, simple names upper-cased."""

    database: str
    schema: str
    name: str

    def sql(self) -> str:
        return f"{ident_exact(self.database)}.{ident_exact(self.schema)}.{ident_exact(self.name)}"

    def with_name(self, name: str) -> _Table:
        return _Table(self.database, self.schema, name)


def _stored_type(data_type: str, precision: Any, scale: Any) -> str:
    """A column type as information_schema reports it, spelled like the DDL mlstack writes."""
    t = data_type.upper()
    if t in ("NUMBER", "DECIMAL", "NUMERIC", "FIXED"):
        return f"NUMBER({precision if precision is not None else 38},{scale if scale is not None else 0})"
    if t in ("TEXT", "VARCHAR", "STRING"):
        return "VARCHAR"
    if t in ("FLOAT", "DOUBLE", "REAL", "FLOAT8", "DOUBLE PRECISION"):
        return "FLOAT"
    return t


def _fold(name: str) -> str:
    return name.upper() if _SIMPLE.match(name) else name


def _same_columns(have: list[tuple[str, str]], want: list[tuple[str, str]]) -> bool:
    """True when the table already has exactly the columns (names and types) the data would create."""
    return sorted(have) == sorted((_fold(n), t) for n, t in want)


def _check_append(table: str, have: list[tuple[str, str]], names: list[str]) -> None:
    """Appending columns the table lacks would drop them (MATCH_BY_COLUMN_NAME): refuse, naming them."""
    known = {n for n, _ in have}
    upper = {n.upper() for n in known}
    extra = [n for n in names if _fold(n) not in known and n.upper() not in upper]
    if extra:
        raise DataError(
            f"cannot append to {table!r}: the table has no column {', '.join(map(repr, extra))} "
            f"(it has {', '.join(n for n, _ in have)})",
            fix="rename or drop those columns, or pass mode='overwrite' (--mode overwrite) to replace the table "
            "and its columns; nothing was written",
        )


def _rows_loaded(rows: list[Any], description: Sequence[Any] | None) -> int:
    """Rows COPY INTO loaded, summed over its per-file result rows (0 when it processed no file)."""
    names = [str(d[0]).lower() for d in description or []]
    if "rows_loaded" not in names:
        return 0
    i = names.index("rows_loaded")
    return sum(int(r[i] or 0) for r in rows)


def _write_error(exc: BaseException, table: str, stage: str | None) -> Exception:
    """A failed write statement: the connector's error, with where the rows are (nowhere) and what to check."""
    err = translate(exc, f"writing {table}")
    if isinstance(err, DataError | BackendError):
        msg = err.message
        fix = "nothing was written: the table is as it was"
        if re.search(r"(stage|insufficient privileges|not authorized|PUT|REMOVE)", msg, re.I):
            fix += "; the job's role needs READ and WRITE on the stage" + (
                f" {stage}" if stage else " (or ownership of the table, for its own stage: set data.stage)"
            )
        return type(err)(msg, fix=fix)
    return err


def version_clause(version: Version) -> str:
    """Time travel: a negative int is seconds ago, a query id is that statement, a timestamp that moment.

    The version is parsed (a number, a query id, an ISO timestamp) and rendered from the parsed value; it is
    never copied into the SQL as text. A timestamp without an offset is read in the session's time zone.
    """
    if version is None:
        return ""
    if isinstance(version, str) and _QUERY_ID.fullmatch(version.strip()):
        return f" AT(STATEMENT => '{version.strip()}')"
    parsed = parse_version(version, what="a Snowflake version")
    if isinstance(parsed, int):
        if parsed > 0:
            raise UsageError(
                f"a Snowflake version number is seconds in the past (negative), got {version!r}",
                fix="version=-3600 reads the table as it was an hour ago",
            )
        return f" AT(OFFSET => {parsed})"
    assert parsed is not None
    kind = "TIMESTAMP_LTZ" if parsed.utcoffset() is None else "TIMESTAMP_TZ"
    return f" AT(TIMESTAMP => '{timestamp_literal(parsed)}'::{kind})"


def arrow_to_snowflake_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision},{t.scale})"  # type: ignore[attr-defined]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BINARY"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_TZ" if t.tz else "TIMESTAMP_NTZ"  # type: ignore[attr-defined]
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_dictionary(t):
        return arrow_to_snowflake_type(t.value_type)  # type: ignore[attr-defined]
    raise UsageError(
        f"cannot map Arrow type {t} to a Snowflake column type",
        fix="cast the column to a number, string, boolean, date or timestamp before writing",
    )


_DESCRIPTION_TYPES = {
    "FIXED": pa.int64(),
    "REAL": pa.float64(),
    "TEXT": pa.string(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "BINARY": pa.binary(),
    "TIMESTAMP_NTZ": pa.timestamp("ns"),
    "TIMESTAMP_LTZ": pa.timestamp("ns", tz="UTC"),
    "TIMESTAMP_TZ": pa.timestamp("ns", tz="UTC"),
    "TIME": pa.time64("ns"),
}


def _schema_from_description(description: Sequence[Any] | None) -> pa.Schema:
    """An empty result's schema, from the cursor description (no batch arrives to carry it)."""
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    fields = []
    for col in description or []:
        name, type_code, scale = col[0], col[1], col[5]
        kind = FIELD_ID_TO_NAME.get(type_code, "TEXT")
        t = _DESCRIPTION_TYPES.get(kind, pa.string())
        if kind == "FIXED" and scale:
            t = pa.float64()
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def translate(exc: BaseException, what: str, *, login: bool = False) -> Exception:
    """A connector error as an mlstack error with a fix (during login, anything but the network is credentials).

    The connector's text passes through the redactor: a syntax error in connections.toml quotes the line it
    stopped at, which is often the password's.
    """
    errno = getattr(exc, "errno", None)
    msg = (getattr(exc, "raw_msg", None) or str(exc)).strip()
    msg = redact(re.sub(r"\s*\(request_id=[^)]*\)", "", msg).strip())
    if re.search(r"(Failed to parse TOML|TOML parse error)", msg, re.I):
        return ConfigError(
            f"cannot read the Snowflake connection settings: {msg}",
            fix="fix connections.toml at the line named above ($SNOWFLAKE_HOME/connections.toml, else "
            "~/.snowflake/connections.toml; mode 0600)",
        )
    network = isinstance(exc, OSError) or re.search(r"(connection refused|timed out|resolve host)", msg, re.I)
    if (
        (login and not network)
        or errno in _LOGIN_ERRNOS
        or re.search(r"(login|authenticat|password|jwt|private key)", msg, re.I)
    ):
        return CredentialsError(
            f"Snowflake refused the login ({what}): {msg}",
            fix="check the connections.toml entry named by the manifest's connection_name (user, key pair), "
            "or $SNOWFLAKE_PRIVATE_KEY_FILE",
        )
    if isinstance(exc, sf_errors.ProgrammingError):
        m = re.search(r"(?:Table|Object) (?:with name )?'?([\w.\"]+)'? does not exist", msg)
        if errno == 2003 or m:
            return NotFoundError(
                f"{what} failed: {msg}",
                fix="check the name, and that the role may see it (`mlstack data tables`)",
            )
        return DataError(f"{what} failed: {msg}", fix="check the SQL")
    if isinstance(exc, sf_errors.DatabaseError | sf_errors.InterfaceError | OSError):
        fix = "check the account/host and the network"
        if login and network:
            fix += (
                f" (the login gives up after ${LOGIN_TIMEOUT_ENV} seconds, default {DEFAULT_LOGIN_TIMEOUT})"
            )
        return BackendError(f"Snowflake {what} failed: {msg}", fix=fix)
    return BackendError(f"Snowflake {what} failed: {type(exc).__name__}: {msg}")


class SnowflakeSource(DataSource):
    """A Snowflake database/schema through the official connector, as the manifest's user and role."""

    kind = "snowflake"
    dialect = "snowflake"

    def __init__(
        self, section: SnowflakeData, *, login_timeout: int | None = None, **connect_overrides: Any
    ) -> None:
        """``login_timeout``: seconds the whole login (retries included) may take, 0 for no limit; default
        ``$MLSTACK_SNOWFLAKE_LOGIN_TIMEOUT``, else 30. ``connect_overrides`` go to the connector as they are."""
        super().__init__(section)
        self._conn: Any = None
        self._lock = threading.Lock()
        self._login_timeout = login_timeout
        self._overrides = connect_overrides

    def login_timeout(self) -> int:
        """The login budget in seconds: the keyword, else ``$MLSTACK_SNOWFLAKE_LOGIN_TIMEOUT``, else 30."""
        if self._login_timeout is not None:
            value: Any = self._login_timeout
            where = "login_timeout"
        else:
            raw = os.environ.get(LOGIN_TIMEOUT_ENV, "").strip()
            if not raw:
                return DEFAULT_LOGIN_TIMEOUT
            value, where = raw, f"${LOGIN_TIMEOUT_ENV}"
        try:
            seconds = int(value)
            if seconds < 0 or str(seconds) != str(value).strip():
                raise ValueError(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}={value!r}: not a whole number of seconds",
                fix=f"set {LOGIN_TIMEOUT_ENV} to seconds, e.g. 30 (0 = no limit), or unset it for "
                f"{DEFAULT_LOGIN_TIMEOUT}",
            ) from None
        return seconds

    # ---------------------------------------------------------------- connection
    def connect_kwargs(self) -> dict[str, Any]:
        """What ``snowflake.connector.connect`` receives (no secret values: key material stays in files)."""
        s = self.section
        kw: dict[str, Any] = {
            "warehouse": s.warehouse,
            "database": s.database,
            "schema": s.schema_,
            "role": s.role,
            "application": "mlstack",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            **session_close_options(),
        }
        # the connector's current names (network_timeout / socket_timeout are deprecated in 5.x)
        login_timeout = self.login_timeout()
        kw["login_timeout"] = login_timeout
        if login_timeout:
            kw["connect_timeout"] = min(CONNECT_TIMEOUT, login_timeout)
        if s.connection_name:
            kw["connection_name"] = s.connection_name
        else:
            key_file = os.environ.get("SNOWFLAKE_PRIVATE_KEY_FILE")
            if not key_file:
                raise CredentialsError(
                    "no Snowflake credentials: the manifest names no connection_name and "
                    "$SNOWFLAKE_PRIVATE_KEY_FILE is not set",
                    fix="add connection_name to the manifest's data section (an entry of connections.toml), "
                    "or export SNOWFLAKE_PRIVATE_KEY_FILE=/path/to/rsa_key.p8",
                )
            kw.update(
                account=s.account, user=s.user, authenticator="SNOWFLAKE_JWT", private_key_file=key_file
            )
            pwd = os.environ.get("SNOWFLAKE_PRIVATE_KEY_FILE_PWD")
            if pwd:
                kw["private_key_password"] = pwd  # private_key_file_pwd is deprecated in 5.x
        kw.update(self._overrides)
        return kw

    def connection(self) -> Any:
        with self._lock:
            if self._conn is None or getattr(self._conn, "is_closed", lambda: False)():
                kw = (
                    self.connect_kwargs()
                )  # its own errors (no credentials, bad timeout) pass through as they are
                try:
                    self._conn = snowflake.connector.connect(**kw)
                except (sf_errors.Error, OSError) as exc:
                    raise translate(exc, "login", login=True) from None
                except Exception as exc:  # config errors (missing connection entry) have their own types
                    raise CredentialsError(
                        f"cannot connect to Snowflake: {redact(str(exc))}",
                        fix="check the connections.toml entry named by connection_name "
                        "($SNOWFLAKE_HOME/connections.toml, mode 0600)",
                    ) from None
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def _execute(self, sql: str, params: Any = None, what: str = "query") -> Any:
        cur = self.connection().cursor()
        try:
            cur.execute(sql, params)
        except sf_errors.Error as exc:
            cur.close()
            raise translate(exc, what) from None
        return cur

    # ---------------------------------------------------------------- reads
    def select_sql(self, table: str, columns: Sequence[str] | None, version: Version) -> str:
        cols = ", ".join(ident(c) for c in columns) if columns else "*"
        return f"SELECT {cols} FROM {qualified(table)}{version_clause(version)}"

    def version_clause(self, version: Version) -> str:
        return version_clause(version)

    def _stream(self, cur: Any) -> pa.RecordBatchReader:
        it: Iterator[pa.Table] = iter(cur.fetch_arrow_batches())
        first = next(it, None)
        if first is None:
            schema = _schema_from_description(cur.description)
            cur.close()
            return pa.RecordBatchReader.from_batches(schema, iter(()))

        def gen() -> Iterator[pa.RecordBatch]:
            try:
                yield from first.to_batches()
                for t in it:
                    yield from (
                        t.cast(first.schema).to_batches() if t.schema != first.schema else t.to_batches()
                    )
            except sf_errors.Error as exc:
                raise translate(exc, "fetching results") from None
            finally:
                cur.close()

        return pa.RecordBatchReader.from_batches(first.schema, gen())

    def _read_table(
        self, name: str, columns: Sequence[str] | None, version: Version
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]]]:
        cur = self._execute(self.select_sql(name, columns, version), what=f"reading {name}")
        return self._stream(cur), [(self._lineage_name(name), version)]

    def _read_sql(
        self, sql: str, version: Version | Mapping[str, Version]
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]] | None]:
        if version is not None:
            raise UsageError(
                "version= applies to table reads on Snowflake; in SQL write the time travel clause yourself",
                fix="SELECT ... FROM sales AT(OFFSET => -3600)",
            )
        return self._stream(self._execute(sql)), None

    def _lineage_name(self, name: str) -> str:
        parts = split_name(name)
        s = self.section
        full = [s.database, s.schema_][: max(0, 3 - len(parts))] + parts
        return ".".join(p if not _SIMPLE.match(p) else p.upper() for p in full)

    def shards(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> list[Shard]:
        """The connector's result batches: each worker downloads its own chunk of the result."""
        text = self._check_query(sql_or_table)
        sql, lineage = self._remote_read_plan(text, columns, version, self._lineage_name, "-3600")
        cur = self._execute(sql)
        try:
            batches = cur.get_result_batches() or []
        finally:
            cur.close()
        self._record(lineage)
        return [SnowflakeShard(index=i, rows=b.rowcount, label=text, batch=b) for i, b in enumerate(batches)]

    def tables(self) -> list[TableInfo]:
        cur = self._execute(
            "SELECT table_name, table_type, row_count FROM information_schema.tables "
            "WHERE table_schema = %s ORDER BY table_name",
            (self.section.schema_.upper() if _SIMPLE.match(self.section.schema_) else self.section.schema_,),
            what="listing tables",
        )
        try:
            rows = cur.fetchall()
        finally:
            cur.close()
        s = self.section
        return [
            TableInfo(
                str(name),
                "view" if "VIEW" in str(ttype).upper() else "table",
                None,
                None if nrows is None else int(nrows),
                f"{s.database}.{s.schema_}",
            )
            for name, ttype, nrows in rows
        ]

    # ---------------------------------------------------------------- writes
    def write(self, table: str, data: Any, mode: str = "append") -> WriteResult:
        """Load ``data`` into ``table`` (created if missing), all of it or nothing, as readers see it.

        Small writes go as one INSERT; bigger ones as Parquet files PUT to a stage (the manifest's ``stage``,
        else the table's own) and one ``COPY INTO ... MATCH_BY_COLUMN_NAME``; the staged files are removed
        whatever happens. How the rows reach the table depends on what is there:

        - append to an existing table: the one INSERT/COPY statement (a statement is atomic);
        - overwrite with the table's own columns: ``BEGIN; DELETE; COPY; COMMIT`` (rolled back on failure), so
          the table keeps its grants and its Time Travel history;
        - a new table, or an overwrite that changes the columns: the rows go to a new table next to it, which
          then takes its place (``RENAME``, or ``SWAP WITH`` and the old one dropped).

        The version is the query id time travel takes (``AT(STATEMENT => ...)``): the COPY/INSERT's, or the
        COMMIT's; None when nothing was loaded.
        """
        from mlstack.data import bulk

        m = check_mode(mode)
        arrow = to_arrow(data)
        columns = [(f.name, arrow_to_snowflake_type(f.type)) for f in arrow.schema]
        target = self._write_target(table)
        with bulk.spool(arrow) as sp:
            have = self._table_columns(target, table)
            if have and m == "append":
                _check_append(table, have, [c for c, _ in columns])
                qid = self._load(target, sp, table, have)
            elif have and m == "overwrite" and _same_columns(have, columns):
                qid = self._replace_rows(target, sp, table, have)
            else:
                qid = self._load_beside(target, sp, table, columns, m, exists=bool(have))
        return WriteResult(table, sp.rows, m, qid)

    def _write_target(self, table: str) -> _Table:
        parts = split_name(table)
        if not 1 <= len(parts) <= 3:
            raise UsageError(
                f"table name {table!r} has {len(parts)} parts",
                fix="pass table, schema.table or db.schema.table",
            )
        s = self.section
        full = [s.database, s.schema_][: 3 - len(parts)] + parts
        db, schema, name = (p.upper() if _SIMPLE.match(p) else p for p in full)
        return _Table(db, schema, name)

    def _table_columns(self, target: _Table, table: str) -> list[tuple[str, str]]:
        """(column, type) of ``target`` as Snowflake stores them; [] when the table does not exist."""
        cur = self._execute(
            f"SELECT column_name, data_type, numeric_precision, numeric_scale FROM {ident_exact(target.database)}"
            ".information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (target.schema, target.name),
            what=f"looking up {table}",
        )
        try:
            return [(str(n), _stored_type(str(t), p, sc)) for n, t, p, sc in cur.fetchall()]
        finally:
            cur.close()

    def _cursor_run(self, cur: Any, sql: str, table: str, params: Any = None) -> Any:
        try:
            cur.execute(sql, params)
        except sf_errors.Error as exc:
            raise _write_error(exc, table, self.section.stage) from None
        return cur

    def _stage_location(self, target: _Table, load: str) -> str:
        """``@stage/mlstack/loads/<load>/``: the manifest's stage, else the table stage of ``target``."""
        stage = self.section.stage
        if stage:
            parts = stage.split(".")
            full = [self.section.database, self.section.schema_][: 3 - len(parts)] + parts
            where = ".".join(_stage_part(p) for p in full)
        else:
            where = f"{_stage_part(target.database)}.{_stage_part(target.schema)}.%{_stage_part(target.name)}"
        return f"@{where}/mlstack/loads/{load}/"

    @contextlib.contextmanager
    def _staged(self, target: _Table, sp: Any, table: str) -> Iterator[str | None]:
        """PUT the spooled files to a fresh folder of the stage; remove them on exit, whatever happened.

        Yields the location to COPY from, or None for a small write (its rows go in the INSERT itself).
        """
        from mlstack.data import bulk

        if sp.small:
            yield None
            return
        location = self._stage_location(target, bulk.load_id())
        cur = self.connection().cursor()
        try:
            for path in sp.files:
                self._put(cur, path, location, table)
            yield location
        finally:
            self._unstage(cur, location)
            cur.close()

    def _load_rows(
        self,
        cur: Any,
        target: _Table,
        sp: Any,
        location: str | None,
        table: str,
        have: list[tuple[str, str]] | None = None,
    ) -> str | None:
        """One statement putting the rows into ``target``: the INSERT, or COPY INTO from ``location``.

        ``have``: the table's columns, when it existed before (an INSERT names them as the table spells them).
        """
        if location is None:
            return self._insert(cur, target, sp.table, table, have)
        self._cursor_run(
            cur,
            f"COPY INTO {target.sql()} FROM {location} FILE_FORMAT = (TYPE = PARQUET) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = ABORT_STATEMENT",
            table,
        )
        qid = cur.sfqid
        loaded = _rows_loaded(cur.fetchall(), cur.description)
        if loaded != sp.rows:
            raise DataError(
                f"writing {table}: COPY INTO loaded {loaded} of {sp.rows} rows from {location}",
                fix="nothing was kept; retry the write",
            )
        return qid  # type: ignore[no-any-return]

    def _load(self, target: _Table, sp: Any, table: str, have: list[tuple[str, str]]) -> str | None:
        """Append: stage, then one statement (atomic on its own)."""
        with self._staged(target, sp, table) as location:
            cur = self.connection().cursor()
            try:
                return self._load_rows(cur, target, sp, location, table, have)
            finally:
                cur.close()

    def _insert(
        self, cur: Any, target: _Table, data: pa.Table, table: str, have: list[tuple[str, str]] | None
    ) -> str | None:
        if data.num_rows == 0:
            return None
        # columns by name, case-insensitively, as COPY's MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE matches them
        spelled = {n.upper(): n for n, _ in have or []}
        names = ", ".join(
            ident_exact(spelled[f.name.upper()])
            if f.name.upper() in spelled
            else ident_exact_or_upper(f.name)
            for f in data.schema
        )
        placeholders = ", ".join(["%s"] * data.num_columns)
        params = list(zip(*(c.to_pylist() for c in data.columns), strict=True))
        try:
            cur.executemany(f"INSERT INTO {target.sql()} ({names}) VALUES ({placeholders})", params)
        except sf_errors.Error as exc:
            raise _write_error(exc, table, self.section.stage) from None
        return cur.sfqid  # type: ignore[no-any-return]

    def _put(self, cur: Any, path: Any, location: str, table: str) -> None:
        uri = "file://" + str(path).replace("\\", "/").replace("'", "\\'")
        self._cursor_run(
            cur, f"PUT '{uri}' {location} AUTO_COMPRESS = FALSE OVERWRITE = FALSE PARALLEL = 4", table
        )
        rows = cur.fetchall()
        names = [d[0].lower() for d in cur.description or []]
        status = [r[names.index("status")] if "status" in names else "UPLOADED" for r in rows]
        if not rows or any(str(x).upper() != "UPLOADED" for x in status):
            raise BackendError(
                f"writing {table}: PUT of {path.name} to {location} did not upload ({', '.join(map(str, status))})",
                fix="nothing was written; retry the write",
            )

    def _unstage(self, cur: Any, location: str) -> None:
        """Remove one load's staged files (best effort: a failure here must not hide the load's own result)."""
        try:
            cur.execute(f"REMOVE {location}")
        except sf_errors.Error as exc:
            log.warning("could not remove the staged files %s: %s", location, redact(str(exc)))

    def _replace_rows(self, target: _Table, sp: Any, table: str, have: list[tuple[str, str]]) -> str | None:
        """Overwrite in place: stage, then ``BEGIN; DELETE; load; COMMIT`` (readers see the old rows until the
        COMMIT; the upload happens before the transaction, so it holds the table's lock only for the load)."""
        with self._staged(target, sp, table) as location:
            cur = self.connection().cursor()
            try:
                self._cursor_run(cur, "BEGIN", table)
                try:
                    self._cursor_run(cur, f"DELETE FROM {target.sql()}", table)
                    self._load_rows(cur, target, sp, location, table, have)
                    self._cursor_run(cur, "COMMIT", table)
                except BaseException:
                    try:
                        cur.execute("ROLLBACK")
                    except sf_errors.Error as exc:  # the session may be gone: Snowflake rolls back on its own
                        log.warning("ROLLBACK after a failed write to %s failed: %s", table, redact(str(exc)))
                    raise
                return cur.sfqid  # type: ignore[no-any-return]
            finally:
                cur.close()

    def _load_beside(
        self,
        target: _Table,
        sp: Any,
        table: str,
        columns: list[tuple[str, str]],
        mode: Mode,
        *,
        exists: bool,
    ) -> str | None:
        """Load into a new table next to ``target``, then put it in its place (RENAME, or SWAP WITH)."""
        from mlstack.data import bulk

        side = target.with_name(f"{target.name}__MLSTACK_LOAD_{bulk.load_id()[:12].upper()}")
        cols = ", ".join(f"{ident_exact_or_upper(n)} {t}" for n, t in columns)
        cur = self.connection().cursor()
        done = False
        try:
            self._cursor_run(cur, f"CREATE TABLE {side.sql()} ({cols})", table)
            with self._staged(side, sp, table) as location:
                qid = self._load_rows(cur, side, sp, location, table)
            if exists:
                qid = self._swap_in(cur, side, target, table, qid)
            else:
                try:
                    cur.execute(f"ALTER TABLE {side.sql()} RENAME TO {target.sql()}")
                    done = True
                except sf_errors.Error as exc:
                    if not self._table_columns(target, table):  # not a lost race: a real failure
                        raise _write_error(exc, table, self.section.stage) from None
                    # another writer created the table meanwhile: join the rows to theirs, or replace them
                    if mode == "append":
                        names = ", ".join(ident_exact_or_upper(n) for n, _ in columns)
                        self._cursor_run(
                            cur,
                            f"INSERT INTO {target.sql()} ({names}) SELECT {names} FROM {side.sql()}",
                            table,
                        )
                        qid = cur.sfqid
                    else:
                        qid = self._swap_in(cur, side, target, table, qid)
            return qid
        finally:
            if not done:
                try:
                    cur.execute(f"DROP TABLE IF EXISTS {side.sql()}")
                except sf_errors.Error as exc:
                    log.warning("could not drop the load table %s: %s", side.sql(), redact(str(exc)))
            cur.close()

    def _swap_in(self, cur: Any, side: _Table, target: _Table, table: str, qid: str | None) -> str | None:
        """Atomically exchange ``target`` with the loaded ``side`` table (the old rows end up in ``side``)."""
        self._cursor_run(cur, f"ALTER TABLE {target.sql()} SWAP WITH {side.sql()}", table)
        return qid

    # ---------------------------------------------------------------- health
    def ping(self) -> dict[str, Any]:
        cur = self._execute(
            "SELECT current_user(), current_role(), current_database(), current_schema(), current_version()",
            what="ping",
        )
        try:
            user, role, database, schema, version = cur.fetchone()
        finally:
            cur.close()
        facts: dict[str, Any] = {
            "kind": self.kind,
            "account": self.section.account,
            "user": user,
            "role": role,
            "database": database,
            "schema": schema,
            "server_version": version,
            "warehouse": None,
        }
        try:
            cur = self.connection().cursor()
            cur.execute("SELECT current_warehouse()")
            facts["warehouse"] = cur.fetchone()[0]
            cur.close()
        except sf_errors.Error:  # older emulators lack it; the login itself is what ping proves
            facts["warehouse"] = None
        return facts

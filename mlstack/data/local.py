"""The local data source: Delta tables in a folder, SQL through DuckDB.

Where tables live (one model):

- ``write()`` / ``mlstack data load`` always create Delta tables, one folder per table under ``lake_root``
  (``<lake_root>/<table>``). Every write is a new Delta version; ``version=`` reads an older one.
- The DuckDB file (``path``) holds whatever you create in it with DuckDB yourself (native tables, views).
  It is opened read-only for reads, so several processes can read at once.
- SQL runs in DuckDB and sees both: lake tables are registered as Arrow datasets under their own names
  (shadowing a native table of the same name), with projection and filter pushdown into the Parquet files.
- A table read (``read("sales", columns=[...])``) of a lake table skips DuckDB and scans the Delta
  table's Parquet files with pyarrow directly: the fastest path there is.

Table names in the lake are case-insensitive like DuckDB's: they are stored lowercase.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, SchemaMismatchError, TableNotFoundError

from mlstack.data.base import (
    DataSource,
    Shard,
    SqlShard,
    TableInfo,
    Version,
    WriteResult,
    batches_then,
    check_mode,
    is_table_name,
    not_found,
    parse_version,
    referenced_tables,
    split_name,
    to_arrow,
)
from mlstack.errors import ConflictError, DataError, MlstackError, NotFoundError, UsageError
from mlstack.manifest import LocalData

_LAKE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")


@dataclass
class ParquetShard(Shard):
    """One Parquet file of a Delta table version (plus its partition values, which live in the path)."""

    path: str = ""
    columns: list[str] | None = None
    partition_values: dict[str, Any] = field(default_factory=dict)

    def read(self) -> pa.Table:
        wanted = self.columns
        file_cols = [c for c in wanted if c not in self.partition_values] if wanted else None
        table = pq.read_table(self.path, columns=file_cols)
        for name, value in self.partition_values.items():
            if wanted is None or name in wanted:
                table = table.append_column(name, pa.array([value] * table.num_rows))
        return table.select(wanted) if wanted else table


class LocalSource(DataSource):
    """Delta tables under ``lake_root`` plus a DuckDB file, on this machine (no credentials)."""

    kind = "local"
    dialect = "duckdb"

    def __init__(self, section: LocalData) -> None:
        super().__init__(section)
        self.db_path = Path(section.path).expanduser()
        self.lake_root = (
            Path(section.lake_root).expanduser() if section.lake_root else self.db_path.parent / "lake"
        )
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- names and tables
    def _lake_name(self, name: str) -> str:
        parts = split_name(name) if is_table_name(name) else []
        if len(parts) == 2 and parts[0].lower() in ("main", "lake"):
            parts = parts[1:]
        if len(parts) != 1 or not _LAKE_NAME.match(parts[0].lower()):
            raise UsageError(
                f"local table names are one identifier (letters, digits, underscore), got {name!r}",
                fix="use a name like 'sales' or 'daily_sales'",
            )
        return parts[0].lower()

    def _table_dir(self, name: str) -> Path:
        return self.lake_root / name

    def _is_lake_table(self, name: str) -> bool:
        return (self._table_dir(name) / "_delta_log").is_dir()

    def _lake_tables(self) -> list[str]:
        if not self.lake_root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.lake_root.iterdir()
            if (p / "_delta_log").is_dir() and _LAKE_NAME.match(p.name)
        )

    def _delta(self, name: str, version: Version) -> DeltaTable:
        path = str(self._table_dir(name))
        wanted = self._version_number(name, version)
        try:
            table = DeltaTable(path)
        except TableNotFoundError:
            raise not_found(name, self._all_names(), f"the local lake {self.lake_root}") from None
        except DeltaError as exc:
            raise DataError(f"cannot open Delta table {name!r} at {path}: {exc}") from None
        if wanted is None:
            return table
        latest = table.version()
        listing = f"`mlstack data history {name}` lists them with their times"
        if isinstance(wanted, int):
            if wanted > latest:
                span, choice = (
                    ("only version 0", "read version 0")
                    if latest == 0
                    else (f"versions 0 to {latest}", f"read a version from 0 to {latest}")
                )
                raise NotFoundError(
                    f"table {name!r} has {span}; there is no version {wanted}",
                    fix=f"{choice}, or leave the version out for the latest ({listing})",
                )
        else:
            first = min((h.get("timestamp") or 0 for h in table.history()), default=0)
            stamp = wanted if wanted.tzinfo else wanted.replace(tzinfo=dt.UTC)
            if stamp.timestamp() * 1000 < first:
                when = dt.datetime.fromtimestamp(first / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                raise NotFoundError(
                    f"table {name!r} did not exist yet at {stamp.isoformat(sep=' ')}: its first version is "
                    f"from {when}",
                    fix=f"read a later time, or a version number ({listing})",
                )
        try:
            table.load_as_version(wanted if isinstance(wanted, int) else stamp)
        except DeltaError as exc:
            raise DataError(
                f"cannot read version {version!r} of table {name!r}: {exc}",
                fix=f"check the version ({listing})",
            ) from None
        return table

    @staticmethod
    def _version_number(name: str, version: Version) -> int | dt.datetime | None:
        """A Delta version number (0, 1, ...) or a timestamp (naive = UTC, as `data history` shows them)."""
        parsed = parse_version(version, what=f"the version of table {name!r}")
        if isinstance(parsed, int) and parsed < 0:
            raise UsageError(
                f"table versions count from 0, got {parsed} for {name!r}",
                fix=f"read version 0 for the first write, 1 for the next, ... (`mlstack data history {name}`)",
            )
        return parsed

    def _duckdb_tables(self) -> list[tuple[str, str]]:
        """Native tables and views in the DuckDB file: (name, 'duckdb' | 'view')."""
        if not self.db_path.is_file():
            return []
        with self._connect() as con:
            rows = con.execute(
                "select table_name, table_type from information_schema.tables "
                "where table_schema = 'main' and table_catalog = current_database() order by 1"
            ).fetchall()
        return [(str(n), "view" if t == "VIEW" else "duckdb") for n, t in rows]

    def _all_names(self) -> list[str]:
        return sorted(set(self._lake_tables()) | {n for n, _ in self._duckdb_tables()})

    def tables(self) -> list[TableInfo]:
        out: dict[str, TableInfo] = {}
        for name, kind in self._duckdb_tables():
            out[name] = TableInfo(name, kind, location=str(self.db_path))
        for name in self._lake_tables():  # the lake wins a name clash, as in SQL
            try:
                dt = DeltaTable(str(self._table_dir(name)))
                actions = pa.table(dt.get_add_actions(flatten=True))
                rows = int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
                out[name] = TableInfo(name, "delta", dt.version(), rows, str(self._table_dir(name)))
            except DeltaError:
                out[name] = TableInfo(name, "delta", None, None, str(self._table_dir(name)))
        return [out[k] for k in sorted(out)]

    def history(self, table: str) -> list[dict[str, Any]]:
        """The Delta versions of a lake table, newest first: version, timestamp (ms), operation, rows added."""
        name = self._lake_name(table)
        dt = self._delta(name, None)
        out = []
        for h in dt.history():
            metrics = h.get("operationMetrics") or {}
            out.append(
                {
                    "version": h.get("version"),
                    "timestamp": h.get("timestamp"),
                    "operation": h.get("operation"),
                    "mode": (h.get("operationParameters") or {}).get("mode"),
                    "rows_added": metrics.get("num_added_rows"),
                }
            )
        return out

    # ---------------------------------------------------------------- reads
    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A read connection: the DuckDB file read-only, and no file or network access from SQL.

        Lake tables reach DuckDB as Arrow datasets that pyarrow scans (``con.register``), so DuckDB itself
        never needs to open a file besides its own database: ``enable_external_access=false`` turns off
        ``read_text``/``read_csv``/``COPY ... TO``/``ATTACH``/``INSTALL``/``LOAD`` and every other path
        from SQL to the machine, and ``lock_configuration`` keeps a query from turning it back on. Python
        replacement scans are off too, so a query cannot reach variables of the calling program.
        """
        config = {
            "enable_external_access": False,
            "python_enable_replacements": False,
            "lock_configuration": True,
        }
        if self.db_path.is_file():
            try:
                return duckdb.connect(str(self.db_path), read_only=True, config=config)
            except duckdb.IOException as exc:
                raise ConflictError(
                    f"the DuckDB file {self.db_path} is locked by another process: {exc}",
                    fix="close the other DuckDB session writing to it (readers can share the file)",
                ) from None
        return duckdb.connect(":memory:", config=config)

    def check_read_sql(self, sql: str) -> None:
        """One statement, and a query: DuckDB's own parser decides (SELECT, WITH, FROM-first, DESCRIBE,
        SHOW, SUMMARIZE, VALUES, PIVOT inside a SELECT; EXPLAIN of those)."""
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise DataError(f"query failed: {_message(exc)}", fix=_sql_fix(exc)) from None
        if len(statements) != 1:
            raise UsageError(
                f"the SQL holds {len(statements)} statements; a read runs exactly one",
                fix="run one SELECT per read (split the text at the ';')",
            )
        stmt = statements[0]
        kind = stmt.type
        if kind == duckdb.StatementType.EXPLAIN:
            inner = re.sub(r"(?is)^\s*explain\s+(analyze\s+)?", "", stmt.query.strip())
            try:
                inner_types = (
                    [s.type for s in duckdb.extract_statements(inner)] if inner != stmt.query else []
                )
            except duckdb.Error:
                inner_types = []
            if inner_types == [duckdb.StatementType.SELECT]:
                return
        elif kind == duckdb.StatementType.SELECT:
            return
        name = str(kind).rsplit(".", 1)[-1]
        raise UsageError(
            f"reads run queries only (SELECT, WITH ... SELECT, DESCRIBE, SHOW); this SQL is a statement of "
            f"type {name}, which mlstack's local read does not run",
            fix="write tables with mlstack.data.write() or `mlstack data load FILE TABLE`; for anything "
            f"else open the DuckDB file with duckdb itself ({self.db_path})",
        )

    def _dataset(self, name: str, version: Version) -> tuple[pads.Dataset, int]:
        """The Arrow dataset of one Delta version.

        deltalake's own dataset reads through a Python-wrapped filesystem (~1.7x slower on a full scan);
        for the common case — local files, no partition columns, no column mapping — the same files at
        the same version go to pyarrow's native local filesystem instead.
        """
        dt = self._delta(name, version)
        delta_ds = dt.to_pyarrow_dataset()
        meta = dt.metadata()
        mapping = (meta.configuration or {}).get("delta.columnMapping.mode", "none")
        if not meta.partition_columns and mapping == "none":
            uris = dt.file_uris()
            paths = [u[len("file://") :] if u.startswith("file://") else u for u in uris]
            if all(os.path.isabs(p) for p in paths):
                return pads.dataset(paths, schema=delta_ds.schema, format=delta_ds.format), dt.version()
        return delta_ds, dt.version()

    def _read_table(
        self, name: str, columns: Sequence[str] | None, version: Version
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]]]:
        lake = self._lake_name(name)
        if self._is_lake_table(lake):
            dataset, v = self._dataset(lake, version)
            self._check_columns(lake, dataset.schema, columns)
            reader = pads.Scanner.from_dataset(
                dataset, columns=list(columns) if columns else None
            ).to_reader()
            return reader, [(lake, v)]
        if lake in {n for n, _ in self._duckdb_tables()}:
            if version is not None:
                raise UsageError(
                    f"{lake!r} is a native DuckDB table, which has no versions (got version={version!r})",
                    fix="write it to the lake with mlstack.data.write() to get versions",
                )
            con = self._connect()
            sql = self.select_sql(lake, columns, None)
            try:
                reader = con.sql(sql).to_arrow_reader()
            except duckdb.Error as exc:
                con.close()
                raise DataError(f"reading {lake!r} failed: {exc}") from None
            return batches_then(_failing_as_data_error(reader), con.close), [(lake, None)]
        raise not_found(lake, self._all_names(), f"the local stack ({self.lake_root} and {self.db_path})")

    @staticmethod
    def _check_columns(name: str, schema: pa.Schema, columns: Sequence[str] | None) -> None:
        if not columns:
            return
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DataError(
                f"table {name!r} has no column {', '.join(repr(c) for c in missing)}",
                fix=f"its columns are: {', '.join(schema.names)}",
            )

    def read_arrow(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> pa.Table:
        # a whole lake table in one go: a multithreaded dataset scan, no batch-by-batch Python overhead
        text = self._check_query(sql_or_table)
        if is_table_name(text) and not isinstance(version, Mapping):
            lake = self._lake_name(text)
            if self._is_lake_table(lake):
                dataset, v = self._dataset(lake, version)
                self._check_columns(lake, dataset.schema, columns)
                table = dataset.to_table(columns=list(columns) if columns else None)
                self._record([(lake, v)])
                return table
        return super().read_arrow(sql_or_table, columns=columns, version=version)

    def _read_sql(
        self, sql: str, version: Version | Mapping[str, Version]
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]] | None]:
        names = referenced_tables(sql, self.dialect)
        lake = set(self._lake_tables())
        wanted = sorted(lake) if names is None else [n.lower() for n in names if n.lower() in lake]
        versions: dict[str, Version] = {}
        if isinstance(version, Mapping):
            versions = {self._lake_name(k): v for k, v in version.items()}
            unknown = sorted(set(versions) - set(wanted))
            if unknown:
                raise UsageError(
                    f"version= names {', '.join(unknown)}, which the query does not read from the lake",
                    fix=f"name only tables the query reads: {', '.join(wanted) or '(none)'}",
                )
        elif version is not None:
            if len(wanted) != 1:
                raise UsageError(
                    f"version={version!r} is ambiguous: the query reads {len(wanted)} lake tables "
                    f"({', '.join(wanted) or 'none'})",
                    fix="pass version={'table': 3, ...} to pin each table",
                )
            versions = {wanted[0]: version}
        con = self._connect()
        lineage: list[tuple[str, Version]] = []
        try:
            for name in wanted:
                dataset, v = self._dataset(name, versions.get(name))
                con.register(name, dataset)
                lineage.append((name, v))
            reader = con.sql(sql).to_arrow_reader()
        except duckdb.CatalogException as exc:
            missing = re.search(r"Table with name (\S+) does not exist", str(exc))
            if missing:
                con.close()
                raise not_found(missing.group(1), self._all_names(), "the local stack") from None
            text = _with_position(con, sql, exc)
            con.close()
            raise DataError(f"query failed: {text}", fix=_sql_fix(exc)) from None
        except duckdb.Error as exc:
            text = _with_position(con, sql, exc)
            con.close()
            raise DataError(f"query failed: {text}", fix=_sql_fix(exc)) from None
        except BaseException:
            con.close()
            raise
        if names is not None:  # native DuckDB tables the query read have no version
            lineage += [(n.lower(), None) for n in names if n.lower() not in lake]
        else:
            lineage = []  # unknown: let the generic fallback record the SQL text
        return batches_then(_failing_as_data_error(reader), con.close), (lineage or None)

    def select_sql(self, table: str, columns: Sequence[str] | None, version: Version) -> str:
        cols = ", ".join(self.quote(c) for c in columns) if columns else "*"
        return f"SELECT {cols} FROM {self.quote(table)}"

    def shards(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> list[Shard]:
        """One shard per Parquet file of a lake table version; one SQL shard for a query or DuckDB table."""
        text = self._check_query(sql_or_table)
        if is_table_name(text) and not isinstance(version, Mapping):
            lake = self._lake_name(text)
            if self._is_lake_table(lake):
                dataset, v = self._dataset(lake, version)
                self._check_columns(lake, dataset.schema, columns)
                base = self._table_dir(lake)
                out: list[Shard] = []
                for i, frag in enumerate(dataset.get_fragments()):
                    parts = pads.get_partition_keys(frag.partition_expression) or {}
                    rows = frag.count_rows() if frag.metadata is None else frag.metadata.num_rows
                    out.append(
                        ParquetShard(
                            index=i,
                            rows=rows,
                            label=f"{lake}@{v}",
                            path=str(base / frag.path) if not os.path.isabs(frag.path) else frag.path,
                            columns=list(columns) if columns else None,
                            partition_values=dict(parts),
                        )
                    )
                self._record([(lake, v)])
                return out
        shards = super().shards(text, columns=columns, version=version)
        return [s for s in shards if isinstance(s, SqlShard)]

    # ---------------------------------------------------------------- writes
    def table_schema(self, table: str) -> pa.Schema | None:
        name = self._lake_name(table)
        if not self._is_lake_table(name):
            return None
        try:
            return pa.schema(DeltaTable(str(self._table_dir(name))).schema().to_arrow())
        except (DeltaError, pa.ArrowException, TypeError):  # an exotic Delta type: let the write decide
            return None

    def write(self, table: str, data: Any, mode: str = "append") -> WriteResult:
        """Write a new Delta version of ``table``: all of ``data`` or, when reading it fails, nothing.

        A stream that fails half-way (a bad row in a CSV) commits no version: the table stays as it was, and
        a table this write was creating leaves no folder behind.
        """
        m = check_mode(mode)
        name = self._lake_name(table)
        arrow = to_arrow(data)
        path = self._table_dir(name)
        self.lake_root.mkdir(parents=True, exist_ok=True)
        counted = _Counted(arrow)
        with self._lock:
            created = not path.exists()
            try:
                write_deltalake(
                    str(path),
                    counted.source(),
                    mode=m,
                    schema_mode="overwrite" if m == "overwrite" else None,
                )
            except BaseException as exc:
                if created:
                    _remove_uncommitted(path)
                raise self._write_error(name, path, exc, counted.error) from None
            version = DeltaTable(str(path)).version()
        return WriteResult(name, counted.rows, m, version)

    def _write_error(
        self, name: str, path: Path, exc: BaseException, source_error: BaseException | None
    ) -> BaseException:
        """What a failed write raises: the data's own error when reading it failed, else a DataError."""
        if isinstance(source_error, MlstackError):
            return source_error  # e.g. a CSV row that does not parse, with its line and column
        if source_error is not None:
            return DataError(
                f"reading the data to write to {name!r} failed: {_message(source_error).splitlines()[0]}",
                fix="check the data source; nothing was written",
            )
        if isinstance(exc, MlstackError | KeyboardInterrupt | SystemExit | MemoryError):
            return exc
        have = ""
        try:
            if (path / "_delta_log").is_dir():
                have = ", ".join(pa.schema(DeltaTable(str(path)).schema().to_arrow()).names)
        except Exception:  # the table's own schema is only a hint in the message
            have = ""
        text = _message(exc).splitlines()[0]
        if isinstance(exc, SchemaMismatchError) or "Cast error" in text or "Schema error" in text:
            return DataError(
                f"cannot append to {name!r}: the data does not match the table's columns ({text})",
                fix=(f"the table has columns {have}; " if have else "")
                + "convert the data to the table's types, or pass mode='overwrite' (--mode overwrite) to replace "
                "the table and its schema",
            )
        return DataError(
            f"writing Delta table {name!r} failed: {text}", fix="nothing was written; retry the write"
        )

    # ---------------------------------------------------------------- health
    def ping(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "kind": self.kind,
            "database": str(self.db_path),
            "lake_root": str(self.lake_root),
            "duckdb": duckdb.__version__,
            "database_exists": self.db_path.is_file(),
            "lake_tables": len(self._lake_tables()),
        }
        with self._connect() as con:
            con.execute("select 1").fetchall()
        return facts


class _Counted:
    """Count rows as they stream into the writer (a reader can be consumed only once), and keep the error
    reading them raised: the Delta writer wraps it into its own text, traceback included."""

    def __init__(self, data: pa.Table | pa.RecordBatchReader) -> None:
        self.data = data
        self.rows = 0
        self.error: BaseException | None = None

    def source(self) -> pa.Table | pa.RecordBatchReader:
        if isinstance(self.data, pa.Table):
            self.rows = self.data.num_rows
            return self.data
        reader = self.data

        def gen():  # type: ignore[no-untyped-def]
            try:
                for batch in reader:
                    self.rows += batch.num_rows
                    yield batch
            except BaseException as exc:
                self.error = exc
                raise

        return pa.RecordBatchReader.from_batches(reader.schema, gen())


def _remove_uncommitted(path: Path) -> None:
    """Remove the folder a failed write was creating, unless some writer committed a version into it."""
    import shutil

    log = path / "_delta_log"
    if log.is_dir() and any(p.suffix == ".json" for p in log.iterdir()):
        return
    shutil.rmtree(path, ignore_errors=True)


def _failing_as_data_error(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """DuckDB runs a query as it is read: an error half-way (a cast that fails on row 3 million) surfaces from
    the Arrow stream as an OSError; it becomes the DataError it would have been at the start."""

    def gen() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise DataError(f"query failed: {_message(exc)}", fix=_sql_fix(exc)) from None

    return pa.RecordBatchReader.from_batches(reader.schema, gen())


def _message(exc: BaseException) -> str:
    """DuckDB's whole message: its hints (``Candidate bindings``, ``Did you mean``) and the caret under the
    spot in ``LINE 1: ...`` are the most useful part of it."""
    text = str(exc).strip("\n").rstrip()
    return text or type(exc).__name__


def _with_position(con: duckdb.DuckDBPyConnection, sql: str, exc: BaseException) -> str:
    """The error's message with DuckDB's ``LINE 1: ...`` and caret.

    The relational API (``con.sql``) drops the position of bind errors that ``con.execute`` reports; a bind
    error fails again at bind time, before anything runs, so asking ``execute`` costs nothing.
    """
    text = _message(exc)
    if "\nLINE " in text or not isinstance(exc, duckdb.BinderException | duckdb.CatalogException):
        return text
    try:
        con.execute(sql)
    except duckdb.Error as again:
        full = _message(again)
        if full.startswith(text.splitlines()[0]):
            return full
    return text


def _sql_fix(exc: BaseException) -> str:
    text = str(exc)
    if "file system operations are disabled" in text or "external extensions is disabled" in text:
        return (
            "reads see the stack's tables only: SQL has no file or network access here; load files with "
            "`mlstack data load FILE TABLE`"
        )
    if "read-only" in text:
        return (
            "reads open the DuckDB file read-only; write tables with mlstack.data.write() or "
            "`mlstack data load FILE TABLE`, or change the DuckDB file with duckdb itself"
        )
    if isinstance(exc, duckdb.BinderException | duckdb.CatalogException):
        return "check the table and column names (`mlstack data tables` lists the tables)"
    if isinstance(exc, duckdb.ConversionException) or text.startswith("Conversion Error"):
        return (
            "check the casts in the query and the values they meet (TRY_CAST gives NULL instead of failing)"
        )
    return "check the SQL syntax (DuckDB dialect)"

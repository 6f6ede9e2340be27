"""The DataSource interface every warehouse adapter implements, and what they share.

Arrow is the contract: reads return a ``pyarrow.RecordBatchReader`` (streaming), writes take Arrow or
pandas. ``read()`` is implemented once here (lineage + dispatch); adapters implement ``_read_table`` and
``_read_sql``. Every read names the tables it touched in the current run's inputs (``mlstack.run``), so an
artifact written later carries the tables and versions it was trained on.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from mlstack import run as _run
from mlstack.errors import NotFoundError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

Mode = Literal["append", "overwrite"]
Version = int | str | None

# a bare (optionally qualified, optionally quoted) table name rather than SQL text
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+"|`[^`]+`)'
_TABLE_RE = re.compile(rf"^\s*{_IDENT}(?:\.{_IDENT}){{0,2}}\s*$")


_VERSION_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
# what a rendered timestamp may contain: digits and the separators of ISO 8601, nothing that can end a literal
_SAFE_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?: ?[+-][0-9]{2}:[0-9]{2})?"
)


def preview(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that must not echo big input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..." + f" ({len(str(value))} characters)"


def parse_version(version: object, *, what: str = "version") -> int | dt.datetime | None:
    """A time-travel version as a number or a timestamp, never as text to splice into SQL.

    Accepts an int, a ``datetime``/``date``, or a string holding a whole number (``"3"``, ``"-3600"``) or an
    ISO 8601 timestamp (``"2026-01-01"``, ``"2026-01-01 12:00:00"``, ``"2026-01-01T12:00:00+00:00"``, ``Z``).
    Anything else is a UsageError naming the value.
    """
    if version is None:
        return None
    if isinstance(version, bool):
        raise UsageError(
            f"{what} must be a number or a timestamp, got {version!r}", fix="pass 3 or 2026-01-01"
        )
    if isinstance(version, int):
        return version
    if isinstance(version, dt.datetime):
        return version
    if isinstance(version, dt.date):
        return dt.datetime(version.year, version.month, version.day)
    if isinstance(version, str):
        text = version.strip()
        if _VERSION_NUMBER.fullmatch(text):
            return int(text)
        if len(text) <= 40 and text.isascii():
            try:
                return dt.datetime.fromisoformat(text)
            except ValueError:
                pass
    raise UsageError(
        f"{what} {preview(version)} is neither a version number nor a timestamp",
        fix="pass a whole number (3) or an ISO 8601 timestamp (2026-01-01, 2026-01-01 12:00:00, "
        "2026-01-01T12:00:00+00:00)",
    )


def timestamp_literal(ts: dt.datetime, *, tz_sep: str = "") -> str:
    """``ts`` as the text of a SQL timestamp literal (no quotes): ``2026-01-01 12:00:00[.ffffff][+00:00]``.

    Built from the datetime's fields, so it holds only digits and ISO separators; checked again anyway.
    """
    text = ts.replace(tzinfo=None).isoformat(sep=" ")
    offset = ts.utcoffset()
    if offset is not None:
        total = int(offset.total_seconds()) // 60
        sign = "-" if total < 0 else "+"
        text += f"{tz_sep}{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
    if not _SAFE_TIMESTAMP.fullmatch(text):  # pragma: no cover - isoformat of a datetime cannot do this
        raise UsageError(f"cannot use timestamp {text!r} for time travel", fix="pass 2026-01-01 12:00:00")
    return text


def is_table_name(text: str) -> bool:
    """True when ``text`` is a table name (``t``, ``schema.t``, ``cat.schema.t``), False for SQL."""
    return bool(_TABLE_RE.match(text))


def split_name(name: str) -> list[str]:
    """``a."B c".d`` -> ``['a', 'B c', 'd']`` (quotes removed)."""
    parts = re.findall(rf"{_IDENT}", name.strip())
    return [p[1:-1] if p[:1] in '"`' else p for p in parts]


def referenced_tables(sql: str, dialect: str | None = None) -> list[str] | None:
    """Names of the tables a SQL statement reads, qualified as written; None when it cannot be parsed.

    CTE names are not tables. Uses sqlglot when installed (it comes with the snowflake test extra and is a
    small pure-Python package); without it, lineage falls back to the SQL text itself.
    """
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:  # pragma: no cover - sqlglot is optional
        return None
    import logging

    # sqlglot logs a warning for statements it only knows as commands (EXPLAIN ...): not the user's business
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    try:
        trees = sqlglot.parse(sql, read=dialect)
    except Exception:  # sqlglot raises several error types for odd SQL; lineage must not break a read
        return None
    names: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        if isinstance(tree, exp.Command):
            return None  # sqlglot did not parse it: the tables it reads are unknown
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        for t in tree.find_all(exp.Table):
            if not t.name or (not t.db and t.name.lower() in ctes):
                continue
            if isinstance(t.this, exp.Func | exp.Anonymous):
                continue  # table functions: read_parquet(...), range(...)
            parts = [p for p in (t.catalog, t.db, t.name) if p]
            qualified = ".".join(parts)
            if qualified not in names:
                names.append(qualified)
    return names


def to_arrow(data: Any) -> pa.Table | pa.RecordBatchReader:
    """Accept Arrow (table, batch, reader), pandas, a dict of columns or a list of row dicts."""
    if isinstance(data, pa.Table | pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    mod = type(data).__module__
    if mod.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if mod.startswith("polars") and hasattr(data, "to_arrow"):
        return data.to_arrow()
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if isinstance(data, list) and (not data or isinstance(data[0], Mapping)):
        return pa.Table.from_pylist(data)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    raise UsageError(
        f"cannot write data of type {type(data).__name__}",
        fix="pass a pyarrow Table/RecordBatch/RecordBatchReader, a pandas DataFrame, a dict of columns "
        "or a list of row dicts",
    )


def check_mode(mode: str) -> Mode:
    if mode not in ("append", "overwrite"):
        raise UsageError(f"write mode must be 'append' or 'overwrite', got {mode!r}", fix="mode='append'")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the table, rows written, the mode, and the new version where the store has one."""

    table: str
    rows: int
    mode: Mode
    #: Delta version (local), statement id to time-travel to (Snowflake), None where the store has none
    version: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "mode": self.mode, "version": self.version}


@dataclass(frozen=True)
class TableInfo:
    """One table a source can read: name, where it lives, and what is cheaply known about it."""

    name: str
    kind: str  # "delta", "duckdb", "table", "view"
    version: int | None = None
    rows: int | None = None
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "rows": self.rows,
            "location": self.location,
        }


@dataclass
class Shard:
    """One picklable unit of a read for distributed loaders: send it to a worker, call ``read()`` there.

    Subclasses hold only plain data (paths, URLs, a SQL string and the manifest section, a connector's
    picklable result batch), never an open connection.
    """

    index: int
    rows: int | None = None
    label: str = ""

    def read(self) -> pa.Table:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_pandas(self) -> pd.DataFrame:
        return self.read().to_pandas()


@dataclass
class SqlShard(Shard):
    """A whole query run on whichever worker reads it (the fallback when a store has no native splits)."""

    section: dict[str, Any] = field(default_factory=dict)
    sql: str = ""
    columns: list[str] | None = None
    version: Any = None

    def read(self) -> pa.Table:
        from mlstack import manifest as _manifest
        from mlstack import registry

        data = _manifest.validate_section("data", self.section)
        model = _manifest._section_model("data", data["kind"])
        assert model is not None
        cls = registry.load_backend("data", data["kind"])
        src: DataSource = cls(model.model_validate(data))
        try:
            return src.read_arrow(self.sql, columns=self.columns, version=self.version)
        finally:
            src.close()


class DataSource(ABC):
    """One warehouse, seen through Arrow. Adapters subclass it; users get one from ``mlstack.data.source()``."""

    kind: str = "?"
    #: sqlglot dialect used to find table names in SQL text
    dialect: str | None = None

    def __init__(self, section: Any) -> None:
        self.section = section

    # ---------------------------------------------------------------- what adapters implement
    @abstractmethod
    def _read_table(
        self, name: str, columns: Sequence[str] | None, version: Version
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]]]:
        """Stream one table; return the reader and the (table, version) pairs to record as lineage."""

    @abstractmethod
    def _read_sql(
        self, sql: str, version: Version | Mapping[str, Version]
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]] | None]:
        """Stream a query; lineage pairs, or None to let the generic SQL parser name the tables."""

    @abstractmethod
    def tables(self) -> list[TableInfo]:
        """Every table this source can read, sorted by name."""

    @abstractmethod
    def write(self, table: str, data: Any, mode: str = "append") -> WriteResult:
        """Create ``table`` if needed and append to (or overwrite) it."""

    @abstractmethod
    def ping(self) -> dict[str, Any]:
        """Log in and return facts (user, role, warehouse, ...); CredentialsError/BackendError otherwise."""

    def close(self) -> None:
        """Release connections (sources are reusable until closed)."""
        return None

    def table_schema(self, table: str) -> pa.Schema | None:
        """The Arrow schema of ``table`` when it exists and knowing it is cheap; None otherwise."""
        return None

    # ---------------------------------------------------------------- shared behaviour
    def read(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> pa.RecordBatchReader:
        """Stream a table (optionally some ``columns``, at a ``version``) or a SQL query as Arrow batches."""
        text = self._check_query(sql_or_table)
        if is_table_name(text):
            if isinstance(version, Mapping):
                raise UsageError(
                    "version= for a table read is one version, not a mapping", fix="pass version=3"
                )
            reader, lineage = self._read_table(text, list(columns) if columns else None, version)
            self._record(lineage)
            return reader
        if columns:
            raise UsageError(
                "columns= applies to table reads; a SQL query selects its own columns",
                fix="name the columns in the SELECT list",
            )
        self.check_read_sql(text)
        reader, found = self._read_sql(text, version)
        if found is None:
            names = referenced_tables(text, self.dialect)
            if names is None:
                self._record([(f"sql:{text[:200]}", None)])
            else:
                v = version if not isinstance(version, Mapping) else None
                found = [(n, (version.get(n) if isinstance(version, Mapping) else v)) for n in names]
        if found is not None:
            self._record(found)
        return reader

    def read_arrow(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> pa.Table:
        """The whole result as one Arrow table."""
        return self.read(sql_or_table, columns=columns, version=version).read_all()

    def read_pandas(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> pd.DataFrame:
        """The whole result as a pandas DataFrame (via Arrow)."""
        return self.read_arrow(sql_or_table, columns=columns, version=version).to_pandas()

    def shards(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> list[Shard]:
        """Split a read into picklable units. The default is one shard running the whole query remotely."""
        text = self._check_query(sql_or_table)
        sql = text
        if is_table_name(text):
            sql = self.select_sql(text, columns, version if not isinstance(version, Mapping) else None)
            columns = None
            version = None
        else:
            self.check_read_sql(text)
        section = self.section.model_dump(mode="json", by_alias=True, exclude_none=True)
        return [SqlShard(index=0, label=text, section=section, sql=sql, columns=None, version=version)]

    def check_read_sql(self, sql: str) -> None:
        """Refuse SQL that is not exactly one read statement (UsageError naming what it is).

        Reads run what they are given on the warehouse: this keeps ``read("select 1; drop table t")`` or
        ``read("copy into @stage ...")`` from being run at all. Adapters with an engine-side parser refine it.
        """
        from mlstack.data.readonly import check_read_only

        check_read_only(sql, dialect=self.dialect or "", where=f"mlstack's {self.kind} read")

    def select_sql(self, table: str, columns: Sequence[str] | None, version: Version) -> str:
        """``SELECT cols FROM table`` in this store's dialect (time travel included when ``version``)."""
        cols = ", ".join(self.quote(c) for c in columns) if columns else "*"
        return f"SELECT {cols} FROM {table}{self.version_clause(version)}"

    def version_clause(self, version: Version) -> str:
        if version is None:
            return ""
        raise UsageError(f"the {self.kind} data source has no table versions (got version={version!r})")

    @staticmethod
    def quote(ident: str) -> str:
        return '"' + ident.replace('"', '""') + '"'

    def check_read(self, table: str | None = None) -> dict[str, Any]:
        """Read a few rows from ``table`` (else the first table listed); what ``mlstack doctor`` calls."""
        names = [t.name for t in self.tables()]
        if table is None:
            if not names:
                return {"tables": 0, "read": None}
            table = names[0]
        reader = self._read_table(table, None, None)[0]
        batch = next(iter(reader), None)
        return {
            "tables": len(names),
            "read": table,
            "columns": reader.schema.names,
            "rows_seen": 0 if batch is None else batch.num_rows,
        }

    def _remote_read_plan(
        self,
        text: str,
        columns: Sequence[str] | None,
        version: Version | Mapping[str, Version],
        lineage_name: Any,
        version_example: str,
    ) -> tuple[str, list[tuple[str, Version]]]:
        """SQL to run remotely and the lineage it makes, for a table name or a query.

        A table read takes ``columns`` and one ``version``; a query names its own tables (found by parsing it)
        and carries time travel in its own SQL.
        """
        if is_table_name(text):
            if isinstance(version, Mapping):
                raise UsageError("version= for a table read is one version", fix=f"version={version_example}")
            return self.select_sql(text, columns, version), [(lineage_name(text), version)]
        if columns or version is not None:
            raise UsageError("columns= and version= apply to table reads", fix="put them in the SQL")
        self.check_read_sql(text)
        return text, [(n, None) for n in (referenced_tables(text, self.dialect) or [])]

    def _check_query(self, sql_or_table: Any) -> str:
        if not isinstance(sql_or_table, str) or not sql_or_table.strip():
            raise UsageError(
                f"read() takes a table name or SQL text, got {sql_or_table!r}",
                fix="mlstack.data.read('sales') or mlstack.data.read('select * from sales')",
            )
        return sql_or_table.strip().rstrip(";").strip()

    def _record(self, lineage: Iterable[tuple[str, Version]]) -> None:
        for name, version in lineage:
            _run.record_input("table", name, None if version is None else str(version), source=self.kind)


def batches_then(reader: pa.RecordBatchReader, on_close: Any) -> pa.RecordBatchReader:
    """Wrap ``reader`` so ``on_close()`` runs once it is exhausted (or garbage collected)."""

    def gen() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            on_close()

    return pa.RecordBatchReader.from_batches(reader.schema, gen())


def not_found(name: str, available: Sequence[str], where: str) -> NotFoundError:
    """The error for a missing table, listing what does exist."""
    shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
    fix = (
        f"existing tables: {shown}"
        if available
        else f"the store has no tables yet; load one with `mlstack data load FILE {name}`"
    )
    return NotFoundError(f"table {name!r} does not exist in {where}", fix=fix)

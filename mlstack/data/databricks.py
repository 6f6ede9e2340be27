"""The Databricks data source: a SQL warehouse through the Statement Execution API (databricks-sdk).

Reads use ``EXTERNAL_LINKS`` + ``ARROW_STREAM``: the warehouse writes the result as Arrow chunks to cloud
storage and returns presigned links, which are downloaded in parallel (without the workspace token, with
the headers each link lists) and streamed in order. Small results (metadata, ``LIMIT n`` with n <= 10,000,
writes) use ``INLINE`` + ``JSON_ARRAY`` and skip the storage round trip. ``shards()`` returns one picklable
shard per chunk link (links expire after about 15 minutes: read shards soon after making them).

Credentials never come from the manifest: the manifest's ``profile`` names a ``~/.databrickscfg`` section
(or ``$DATABRICKS_CONFIG_FILE``); without one the SDK's default chain applies (``DATABRICKS_TOKEN``,
OAuth M2M ``DATABRICKS_CLIENT_ID``/``DATABRICKS_CLIENT_SECRET``, Azure/GCP identities).
Time travel: ``version=3`` reads ``VERSION AS OF 3``, a string reads ``TIMESTAMP AS OF '...'``.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import datetime as dt
import decimal
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import DatabricksError, NotFound, PermissionDenied, Unauthenticated
from databricks.sdk.service.sql import (
    Disposition,
    ExecuteStatementRequestOnWaitTimeout,
    Format,
    StatementParameterListItem,
    StatementResponse,
    StatementState,
)

from mlstack._redact import redact
from mlstack.data.base import (
    DataSource,
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
    MlstackError,
    NotFoundError,
    UsageError,
)
from mlstack.manifest import DatabricksData

log = logging.getLogger(__name__)

INLINE_MAX_ROWS = 10_000
#: chunk downloads in flight at once (also bounds the memory a stream holds ahead of the reader)
PARALLEL_DOWNLOADS = 8
#: rows per INSERT statement when a big write has no volume to stage files in
INSERT_BATCH = 1_000
#: files uploaded to the volume at once
PARALLEL_UPLOADS = 4
#: a statement may run this long (polled), then it is cancelled
POLL_TIMEOUT_S = 3600.0
#: one chunk download: connecting to storage, then reading the chunk
_DOWNLOAD_CONNECT_TIMEOUT_S = 10
_DOWNLOAD_TIMEOUT_S = 120
# A dead or unreachable workspace must fail a job fast, as Snowflake's login does (30 s): each HTTP request to
# the workspace times out after this many seconds, and the SDK stops retrying a call after as many (its own
# defaults are 60 s per request and 300 s of retries, which a dead host spends in full, twice over). The
# SDK's host-metadata probe, made once when the client is created, gets at most DISCOVERY_TIMEOUT of it.
# A dead host so fails in about 30 s (the budget, the SDK's last back-off sleep, the probe).
# Override with timeout= or the environment variable; 0 leaves the SDK's defaults.
TIMEOUT_ENV = "MLSTACK_DATABRICKS_TIMEOUT"
DEFAULT_TIMEOUT = 20
DISCOVERY_TIMEOUT = 5
#: the server holds a statement request open this long waiting for the result (then it is polled); used
#: only when the budget leaves room for it, otherwise statements are submitted and polled at once
STATEMENT_WAIT_S = 10

_ARROW_TYPES: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(),
    "BYTE": pa.int8(),
    "TINYINT": pa.int8(),
    "SHORT": pa.int16(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "INTEGER": pa.int32(),
    "LONG": pa.int64(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP_NTZ": pa.timestamp("us"),
    "BINARY": pa.binary(),
    "STRING": pa.string(),
}


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def version_clause(version: Version) -> str:
    """``VERSION AS OF n`` for a number, ``TIMESTAMP AS OF '...'`` for a timestamp; parsed, never spliced."""
    parsed = parse_version(version, what="a Databricks table version")
    if parsed is None:
        return ""
    if isinstance(parsed, int):
        if parsed < 0:
            raise UsageError(
                f"a Delta table version is 0 or more, got {version!r}",
                fix="pass 0 for the first version (DESCRIBE HISTORY lists them), or a timestamp",
            )
        return f" VERSION AS OF {parsed}"
    return f" TIMESTAMP AS OF '{timestamp_literal(parsed)}'"


def arrow_to_databricks_type(t: pa.DataType) -> str:
    checks = [
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_int8, "TINYINT"),
        (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_int32, "INT"),
        (pa.types.is_integer, "BIGINT"),
        (pa.types.is_float32, "FLOAT"),
        (pa.types.is_floating, "DOUBLE"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_binary, "BINARY"),
        (pa.types.is_large_binary, "BINARY"),
        (pa.types.is_string, "STRING"),
        (pa.types.is_large_string, "STRING"),
        (pa.types.is_string_view, "STRING"),
    ]
    for pred, name in checks:
        if pred(t):
            return name
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"  # type: ignore[attr-defined]
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz else "TIMESTAMP_NTZ"  # type: ignore[attr-defined]
    if pa.types.is_dictionary(t):
        return arrow_to_databricks_type(t.value_type)  # type: ignore[attr-defined]
    raise UsageError(
        f"cannot map Arrow type {t} to a Databricks column type",
        fix="cast the column to a number, string, boolean, date or timestamp before writing",
    )


def _literal(v: Any) -> str:
    """A SQL literal for a Python value (used for batched INSERT ... VALUES)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int | decimal.Decimal):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return f"CAST('{'NaN' if v != v else ('Infinity' if v > 0 else '-Infinity')}' AS DOUBLE)"
        return repr(v)
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, bytes):
        return f"unbase64('{base64.b64encode(v).decode()}')"
    s = str(v).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{s}'"


def _schema_of(resp: StatementResponse) -> pa.Schema:
    cols = resp.manifest.schema.columns if resp.manifest and resp.manifest.schema else None
    fields: list[pa.Field] = []
    for c in cols or []:
        tname = (c.type_name.value if c.type_name is not None else "STRING").upper()
        t = _ARROW_TYPES.get(tname)
        if t is None and tname == "DECIMAL":
            t = pa.decimal128(c.type_precision or 38, c.type_scale or 0)
        fields.append(pa.field(c.name or f"col{len(fields)}", t or pa.string()))
    return pa.schema(fields)


def _from_json_rows(rows: list[list[Any]], schema: pa.Schema) -> pa.Table:
    """JSON_ARRAY data (every value a string or null) typed by the result manifest."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for values, f in zip(cols, schema, strict=True):
        arr = pa.array(list(values), pa.string())
        if pa.types.is_string(f.type):
            arrays.append(arr)
        elif pa.types.is_boolean(f.type):
            arrays.append(pa.array([None if v is None else v.lower() == "true" for v in values], pa.bool_()))
        elif pa.types.is_binary(f.type):
            arrays.append(pa.array([None if v is None else base64.b64decode(v) for v in values], pa.binary()))
        else:
            arrays.append(arr.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _download(url: str, headers: Mapping[str, str] | None) -> pa.Table:
    """Fetch one presigned Arrow chunk. No workspace token: presigned storage rejects a second auth.

    Error texts are redacted: a network error quotes the URL, whose query string is the link's signature.
    """
    try:
        r = requests.get(
            url, headers=dict(headers or {}), timeout=(_DOWNLOAD_CONNECT_TIMEOUT_S, _DOWNLOAD_TIMEOUT_S)
        )
    except requests.RequestException as exc:
        raise BackendError(
            f"downloading a result chunk failed: {redact(str(exc))}", fix="check access to cloud storage"
        ) from None
    if r.status_code != 200:
        hint = "the link may have expired (about 15 minutes); read again" if r.status_code == 403 else None
        raise BackendError(
            f"downloading a result chunk failed: HTTP {r.status_code}: {redact(r.text[:200])}",
            fix=hint or "check network access from this machine to the workspace's storage",
        )
    with pa.ipc.open_stream(r.content) as reader:
        return reader.read_all()


@dataclass
class DatabricksChunkShard(Shard):
    """One chunk of a result: a presigned link (and the headers it needs); no credentials inside."""

    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    expiration: str | None = None

    def read(self) -> pa.Table:
        return _download(self.url, self.headers)


class DatabricksSource(DataSource):
    """A Unity Catalog catalog/schema queried through one SQL warehouse."""

    kind = "databricks"
    dialect = "databricks"

    def __init__(
        self, section: DatabricksData, client: WorkspaceClient | None = None, *, timeout: int | None = None
    ) -> None:
        """``timeout``: seconds each call to the workspace may take (per HTTP request, and in all for the
        SDK's retries), 0 for the SDK's own defaults; default ``$MLSTACK_DATABRICKS_TIMEOUT``, else 30."""
        super().__init__(section)
        self._client = client
        self._lock = threading.Lock()
        self._timeout = timeout

    def timeout(self) -> int:
        """The per-call budget in seconds: the keyword, else ``$MLSTACK_DATABRICKS_TIMEOUT``, else 30."""
        if self._timeout is not None:
            value: Any = self._timeout
            where = "timeout"
        else:
            raw = os.environ.get(TIMEOUT_ENV, "").strip()
            if not raw:
                return DEFAULT_TIMEOUT
            value, where = raw, f"${TIMEOUT_ENV}"
        try:
            seconds = int(value)
            if seconds < 0 or str(seconds) != str(value).strip():
                raise ValueError(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}={value!r}: not a whole number of seconds",
                fix=f"set {TIMEOUT_ENV} to seconds, e.g. 30 (0 = the SDK's defaults), or unset it for "
                f"{DEFAULT_TIMEOUT}",
            ) from None
        return seconds

    def _wait(self) -> str:
        """The statement API's wait_timeout: the server may hold a request this long, inside the budget."""
        budget = self.timeout()
        return f"{STATEMENT_WAIT_S}s" if budget == 0 or budget >= STATEMENT_WAIT_S * 2 else "0s"

    # ---------------------------------------------------------------- client and statements
    @property
    def client(self) -> WorkspaceClient:
        with self._lock:
            if self._client is None:
                s = self.section
                budget = self.timeout()
                probe = min(budget, DISCOVERY_TIMEOUT)
                limits = {"http_timeout_seconds": probe, "retry_timeout_seconds": probe} if budget else {}
                sdk_log = logging.getLogger("databricks.sdk")
                level = sdk_log.level
                try:
                    # the probe's failure is logged as a warning and ignored by the SDK; a real problem
                    # surfaces with the first call, as mlstack's own error
                    sdk_log.setLevel(logging.ERROR)
                    cfg = Config(host=s.host, **({"profile": s.profile} if s.profile else {}), **limits)
                    if budget:  # the API client is made from these, after the probe
                        cfg.http_timeout_seconds = budget
                        cfg.retry_timeout_seconds = budget
                    self._client = WorkspaceClient(config=cfg)
                except configparser.Error as exc:  # ~/.databrickscfg itself does not parse
                    raise ConfigError(
                        f"cannot read the Databricks config file: {redact(str(exc))}",
                        fix="fix the line named above: each line of a profile is `key = value` "
                        "($DATABRICKS_CONFIG_FILE, else ~/.databrickscfg)",
                    ) from None
                except ValueError as exc:  # the SDK's config errors (missing profile, no auth method)
                    raise CredentialsError(
                        f"no usable Databricks credentials for {s.host}: {redact(str(exc))}",
                        fix=f"add a [{s.profile or 'DEFAULT'}] section with host and token to ~/.databrickscfg "
                        "(or set DATABRICKS_TOKEN / DATABRICKS_CLIENT_ID+DATABRICKS_CLIENT_SECRET)",
                    ) from None
                finally:
                    sdk_log.setLevel(level)
            return self._client

    def _translate(self, exc: Exception, what: str) -> Exception:
        msg = redact(str(exc).strip())
        if isinstance(exc, Unauthenticated | PermissionDenied) or "Invalid access token" in msg:
            return CredentialsError(
                f"Databricks refused the credentials ({what}): {msg}",
                fix=f"renew the token of profile {self.section.profile or 'DEFAULT'} in ~/.databrickscfg",
            )
        if isinstance(exc, NotFound):
            return NotFoundError(
                f"Databricks {what}: {msg}",
                fix=f"check warehouse_id {self.section.warehouse_id!r} and the host",
            )
        if isinstance(exc, DatabricksError):
            return BackendError(f"Databricks {what} failed: {msg}")
        if isinstance(exc, requests.RequestException | OSError):
            budget = self.timeout()
            limit = (
                f"; mlstack gives up on a call after {budget} s (${TIMEOUT_ENV})"
                if budget
                else f" (${TIMEOUT_ENV}=0: the SDK's own time limits)"
            )
            return BackendError(
                f"cannot reach Databricks at {self.section.host} ({what}): {msg}",
                fix=f"check the host URL and that the workspace is reachable from here{limit}",
            )
        return BackendError(f"Databricks {what} failed: {type(exc).__name__}: {msg}")

    def execute(
        self,
        sql: str,
        *,
        inline: bool,
        parameters: Mapping[str, Any] | None = None,
        what: str = "query",
    ) -> StatementResponse:
        """Run one statement on the warehouse and wait for it; raise a mapped error when it fails."""
        s = self.section
        params = (
            [
                StatementParameterListItem(name=k, value=None if v is None else str(v))
                for k, v in parameters.items()
            ]
            if parameters
            else None
        )
        try:
            resp = self.client.statement_execution.execute_statement(
                statement=sql,
                warehouse_id=s.warehouse_id,
                catalog=s.catalog,
                schema=s.schema_,
                disposition=Disposition.INLINE if inline else Disposition.EXTERNAL_LINKS,
                format=Format.JSON_ARRAY if inline else Format.ARROW_STREAM,
                wait_timeout=self._wait(),
                on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
                parameters=params,
            )
            deadline = time.monotonic() + POLL_TIMEOUT_S
            delay = 0.05
            while resp.status and resp.status.state in (StatementState.PENDING, StatementState.RUNNING):
                if time.monotonic() > deadline:
                    self.client.statement_execution.cancel_execution(resp.statement_id or "")
                    raise BackendError(f"{what} still running after {POLL_TIMEOUT_S:.0f}s; cancelled")
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                resp = self.client.statement_execution.get_statement(resp.statement_id or "")
        except (DatabricksError, requests.RequestException, OSError, ValueError) as exc:
            raise self._translate(exc, what) from None
        state = resp.status.state if resp.status else None
        if state != StatementState.SUCCEEDED:
            err = resp.status.error if resp.status else None
            message = (err.message if err else None) or f"statement ended {state}"
            if "TABLE_OR_VIEW_NOT_FOUND" in message:
                raise NotFoundError(
                    f"{what} failed: {message}", fix="check the table name (`mlstack data tables` lists them)"
                )
            raise DataError(f"{what} failed: {message}", fix="check the SQL")
        return resp

    def _chunk_links(self, resp: StatementResponse) -> Iterator[tuple[int, Any]]:
        """(chunk index, ExternalLink) for every chunk: chunk 0's links come with the response."""
        total = (resp.manifest.total_chunk_count if resp.manifest else 0) or 0
        first = resp.result.external_links if resp.result and resp.result.external_links else []
        got = {link.chunk_index or 0: link for link in first}
        for i in range(total):
            link = got.get(i)
            if link is None:
                try:
                    data = self.client.statement_execution.get_statement_result_chunk_n(
                        resp.statement_id or "", i
                    )
                except (DatabricksError, requests.RequestException, OSError) as exc:
                    raise self._translate(exc, f"fetching chunk {i}") from None
                for ln in data.external_links or []:
                    got[ln.chunk_index or 0] = ln
                link = got.get(i)
                if link is None:
                    raise BackendError(f"Databricks returned no link for result chunk {i}")
            yield i, link

    def _stream_links(self, resp: StatementResponse) -> pa.RecordBatchReader:
        """Download chunks in parallel (a sliding window: in order, bounded memory) and stream them.

        The first chunk is awaited here, so errors surface from ``read()`` and the stream's schema is the
        Arrow schema the warehouse wrote (the JSON manifest's types only describe an empty result).
        """
        links = self._chunk_links(resp)
        pool = ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS, thread_name_prefix="dbx-chunk")
        window: list[Future[pa.Table]] = []
        try:
            for _, link in links:
                window.append(pool.submit(_download, link.external_link or "", link.http_headers))
                if len(window) >= PARALLEL_DOWNLOADS:
                    break
            if not window:
                pool.shutdown()
                schema = _schema_of(resp)
                return pa.RecordBatchReader.from_batches(schema, iter(()))
            first = window[0].result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        schema = first.schema

        def gen() -> Iterator[pa.RecordBatch]:
            try:
                window.pop(0)
                yield from first.to_batches()
                for _, link in links:
                    window.append(pool.submit(_download, link.external_link or "", link.http_headers))
                    yield from _conform(window.pop(0).result(), schema).to_batches()
                while window:
                    yield from _conform(window.pop(0).result(), schema).to_batches()
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

        return pa.RecordBatchReader.from_batches(schema, gen())

    def _inline_table(self, resp: StatementResponse) -> pa.Table:
        schema = _schema_of(resp)
        rows: list[list[Any]] = list(resp.result.data_array or []) if resp.result else []
        nxt = resp.result.next_chunk_index if resp.result else None
        while nxt is not None:
            try:
                data = self.client.statement_execution.get_statement_result_chunk_n(
                    resp.statement_id or "", nxt
                )
            except (DatabricksError, requests.RequestException, OSError) as exc:
                raise self._translate(exc, f"fetching chunk {nxt}") from None
            rows.extend(data.data_array or [])
            nxt = data.next_chunk_index
        return _from_json_rows(rows, schema)

    # ---------------------------------------------------------------- reads
    def _qualified(self, name: str) -> str:
        parts = split_name(name)
        s = self.section
        full = [s.catalog, s.schema_][: max(0, 3 - len(parts))] + parts
        return ".".join(full)

    def select_sql(self, table: str, columns: Sequence[str] | None, version: Version) -> str:
        cols = ", ".join(ident(c) for c in columns) if columns else "*"
        target = ".".join(ident(p) for p in split_name(self._qualified(table)))
        return f"SELECT {cols} FROM {target}{version_clause(version)}"

    def version_clause(self, version: Version) -> str:
        return version_clause(version)

    def _query(self, sql: str, what: str) -> pa.RecordBatchReader:
        if _small(sql):
            table = self._inline_table(self.execute(sql, inline=True, what=what))
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        return self._stream_links(self.execute(sql, inline=False, what=what))

    def _read_table(
        self, name: str, columns: Sequence[str] | None, version: Version
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]]]:
        reader = self._query(self.select_sql(name, columns, version), f"reading {name}")
        return reader, [(self._qualified(name), version)]

    def _read_sql(
        self, sql: str, version: Version | Mapping[str, Version]
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]] | None]:
        if version is not None:
            raise UsageError(
                "version= applies to table reads on Databricks; in SQL write the time travel clause yourself",
                fix="SELECT ... FROM sales VERSION AS OF 3",
            )
        return self._query(sql, "query"), None

    def shards(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> list[Shard]:
        """One shard per result chunk link (presigned; expires in about 15 minutes)."""
        text = self._check_query(sql_or_table)
        sql, lineage = self._remote_read_plan(text, columns, version, self._qualified, "3")
        resp = self.execute(sql, inline=False, what="query")
        out: list[Shard] = [
            DatabricksChunkShard(
                index=i,
                rows=link.row_count,
                label=text,
                url=link.external_link or "",
                headers=dict(link.http_headers or {}),
                expiration=link.expiration,
            )
            for i, link in self._chunk_links(resp)
        ]
        self._record(lineage)
        return out

    def tables(self) -> list[TableInfo]:
        s = self.section
        resp = self.execute(
            "SELECT table_name, table_type FROM system.information_schema.tables "
            "WHERE table_catalog = :catalog AND table_schema = :schema ORDER BY table_name",
            inline=True,
            parameters={"catalog": s.catalog, "schema": s.schema_},
            what="listing tables",
        )
        t = self._inline_table(resp)
        return [
            TableInfo(
                str(name),
                "view" if "VIEW" in str(ttype).upper() else "table",
                None,
                None,
                f"{s.catalog}.{s.schema_}",
            )
            for name, ttype in zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True)
        ]

    # ---------------------------------------------------------------- writes
    def write(self, table: str, data: Any, mode: str = "append") -> WriteResult:
        """Load ``data`` into the Delta table ``table`` (created if missing) in one transaction.

        Small writes go as one statement carrying the rows. Bigger ones are Parquet files uploaded to the
        manifest's ``volume`` with the Files API (one request per file), then:

        - append to an existing table: ``COPY INTO`` (one Delta commit);
        - a new table, or an overwrite: ``CREATE [OR REPLACE] TABLE ... AS SELECT ... FROM read_files(...)``
          (one Delta commit; a replaced table keeps its history, so time travel still reads the old rows).

        The uploaded files are deleted whatever happens. Without a ``volume`` in the manifest, big writes are
        INSERT statements into a new table next to the target, which then is copied in with one statement:
        still all or nothing, but one request per ``INSERT_BATCH`` rows.
        """
        from mlstack.data import bulk

        m = check_mode(mode)
        arrow = to_arrow(data)
        columns = [(f.name, arrow_to_databricks_type(f.type)) for f in arrow.schema]
        target = ".".join(ident(p) for p in split_name(self._qualified(table)))
        # Delta keeps microseconds; Spark cannot read Parquet nanosecond timestamps at all
        options = {"coerce_timestamps": "us", "allow_truncated_timestamps": True}
        with bulk.spool(arrow, parquet_options=options) as sp:
            have = self._table_columns(table)
            append = bool(have) and m == "append"
            if append:
                _check_append(table, have, [c for c, _ in columns])
            if sp.small:
                self._write_small(target, table, sp.table, columns, m, append=append, exists=bool(have))
            elif self._volume_path() is None:
                self._write_without_volume(target, table, sp, columns, m, append=append, exists=bool(have))
            else:
                with self._uploaded(sp, table) as folder:
                    if append:
                        self._copy_into(target, table, folder, sp.rows)
                    else:
                        source = f"read_files('{folder}', format => 'parquet')"
                        self.execute(
                            _create_as(target, columns, source, replace=m == "overwrite"),
                            inline=True,
                            what=f"writing {table}",
                        )
        return WriteResult(table, sp.rows, m, None)

    def _table_columns(self, table: str) -> list[str]:
        """The columns of ``table`` (in order); [] when it does not exist."""
        catalog, schema, name = split_name(self._qualified(table))
        resp = self.execute(
            "SELECT column_name FROM system.information_schema.columns WHERE lower(table_catalog) = lower(:catalog) "
            "AND lower(table_schema) = lower(:schema) AND lower(table_name) = lower(:name) ORDER BY ordinal_position",
            inline=True,
            parameters={"catalog": catalog, "schema": schema, "name": name},
            what=f"looking up {table}",
        )
        return [str(v) for v in self._inline_table(resp).column(0).to_pylist()]

    def _volume_path(self) -> str | None:
        """``/Volumes/<catalog>/<schema>/<volume>`` of the manifest's volume, or None."""
        volume = self.section.volume
        if not volume:
            return None
        parts = volume.split(".")
        full = [self.section.catalog, self.section.schema_][: 3 - len(parts)] + parts
        return "/Volumes/" + "/".join(full)

    def _write_small(
        self,
        target: str,
        table: str,
        data: pa.Table,
        columns: list[tuple[str, str]],
        mode: str,
        *,
        append: bool,
        exists: bool,
    ) -> None:
        """One statement carrying the rows: INSERT (append), else CREATE [OR REPLACE] TABLE ... AS VALUES."""
        what = f"writing {table}"
        if append:
            if data.num_rows:
                names = ", ".join(ident(n) for n, _ in columns)
                self.execute(
                    f"INSERT INTO {target} ({names}) VALUES\n{_values(data)}", inline=True, what=what
                )
            return
        if data.num_rows == 0:
            cols = ", ".join(f"{ident(n)} {t}" for n, t in columns)
            create = "CREATE OR REPLACE TABLE" if mode == "overwrite" else "CREATE TABLE"
            self.execute(f"{create} {target} ({cols})", inline=True, what=what)
            return
        source = f"VALUES\n{_values(data)}\nAS t({', '.join(ident(n) for n, _ in columns)})"
        self.execute(_create_as(target, columns, source, replace=mode == "overwrite"), inline=True, what=what)

    def _copy_into(self, target: str, table: str, folder: str, rows: int) -> None:
        resp = self.execute(
            f"COPY INTO {target} FROM '{folder}' FILEFORMAT = PARQUET "
            "FORMAT_OPTIONS ('mergeSchema' = 'false') COPY_OPTIONS ('mergeSchema' = 'false')",
            inline=True,
            what=f"writing {table}",
        )
        result = self._inline_table(resp)
        if "num_inserted_rows" in result.column_names:
            loaded = int(result.column("num_inserted_rows")[0].as_py() or 0)
            if loaded != rows:
                raise DataError(
                    f"writing {table}: COPY INTO inserted {loaded} of {rows} rows from {folder}",
                    fix="the files were loaded before (COPY INTO skips them) or are unreadable; retry the write",
                )

    @contextlib.contextmanager
    def _uploaded(self, sp: Any, table: str) -> Iterator[str]:
        """Upload the spooled files to a fresh folder of the volume; delete them on exit, whatever happened."""
        from databricks.sdk.service.files import FilesAPI

        from mlstack.data import bulk

        base = self._volume_path()
        assert base is not None
        folder = f"{base}/mlstack_loads/{bulk.load_id()}"
        # the documented single-request upload (up to 5 GiB a file), one request per file
        files = FilesAPI(self.client.api_client)
        done: list[str] = []
        lock = threading.Lock()

        def put(path: Any) -> None:
            remote = f"{folder}/{path.name}"
            with open(path, "rb") as fh:
                files.upload(remote, fh, overwrite=False)
            with lock:
                done.append(remote)

        try:
            try:
                files.create_directory(folder)
                workers = max(1, min(PARALLEL_UPLOADS, len(sp.files)))
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dbx-upload") as pool:
                    futures = [pool.submit(put, p) for p in sp.files]
                    try:
                        for f in futures:
                            f.result()
                    finally:
                        for f in futures:
                            f.cancel()
            except (DatabricksError, requests.RequestException, OSError) as exc:
                raise self._upload_error(exc, table, base) from None
            yield folder
        finally:
            self._remove_uploads(files, folder, done)

    def _upload_error(self, exc: Exception, table: str, volume: str) -> Exception:
        """An upload failure, saying nothing was written and what to check (grants, the volume's name)."""
        name = volume[len("/Volumes/") :].replace("/", ".")
        what = f"uploading the files for {table} to {volume}"
        fix = "nothing was written: the table is as it was"
        if isinstance(exc, PermissionDenied):  # signed in, but without the volume's grants
            return BackendError(
                f"Databricks refused {what}: {redact(str(exc).strip())}",
                fix=f"{fix}; the job's principal needs READ VOLUME and WRITE VOLUME on {name}",
            )
        err = self._translate(exc, what)
        if isinstance(exc, NotFound):
            fix += f"; the volume {name} does not exist: check data.volume in the stack manifest"
        if isinstance(err, MlstackError):
            err.fix = fix
        return err

    def _remove_uploads(self, files: Any, folder: str, uploaded: list[str]) -> None:
        """Delete one load's files and its folder (best effort: a failure is logged, not raised)."""
        try:
            for remote in uploaded:
                files.delete(remote)
            files.delete_directory(folder)
        except (DatabricksError, requests.RequestException, OSError) as exc:
            log.warning("could not delete the uploaded files in %s: %s", folder, redact(str(exc)))

    def _write_without_volume(
        self,
        target: str,
        table: str,
        sp: Any,
        columns: list[tuple[str, str]],
        mode: str,
        *,
        append: bool,
        exists: bool,
    ) -> None:
        """No volume to stage files in: INSERT batches into a new table, then one statement takes them over."""
        import pyarrow.parquet as pq

        from mlstack.data import bulk

        log.warning(
            "writing %d rows to %s with INSERT statements (%d rows each): set data.volume in the stack manifest "
            "(the DatabricksDataLayer component exports it) for bulk loads",
            sp.rows,
            table,
            INSERT_BATCH,
        )
        catalog, schema, name = split_name(self._qualified(table))
        side_name = f"{name}__mlstack_load_{bulk.load_id()[:12]}"
        side = ".".join(ident(p) for p in (catalog, schema, side_name))
        cols = ", ".join(f"{ident(n)} {t}" for n, t in columns)
        names = ", ".join(ident(n) for n, _ in columns)
        what = f"writing {table}"
        self.execute(f"CREATE TABLE {side} ({cols})", inline=True, what=what)
        try:
            for path in sp.files:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=INSERT_BATCH):
                    part = pa.Table.from_batches([batch])
                    self.execute(
                        f"INSERT INTO {side} ({names}) VALUES\n{_values(part)}", inline=True, what=what
                    )
            if append:
                self.execute(
                    f"INSERT INTO {target} ({names}) SELECT {names} FROM {side}", inline=True, what=what
                )
            else:
                self.execute(
                    _create_as(target, columns, side, replace=mode == "overwrite"), inline=True, what=what
                )
        finally:
            try:
                self.execute(f"DROP TABLE IF EXISTS {side}", inline=True, what=f"dropping {side}")
            except (DataError, BackendError, NotFoundError, CredentialsError) as exc:
                log.warning("could not drop the load table %s: %s", side, exc)

    # ---------------------------------------------------------------- health
    def ping(self) -> dict[str, Any]:
        s = self.section
        try:
            me = self.client.current_user.me()
            wh = self.client.warehouses.get(s.warehouse_id)
        except (DatabricksError, requests.RequestException, OSError, ValueError) as exc:
            raise self._translate(exc, "ping") from None
        return {
            "kind": self.kind,
            "host": s.host,
            "user": me.user_name,
            "warehouse_id": s.warehouse_id,
            "warehouse_state": wh.state.value if wh.state else None,
            "catalog": s.catalog,
            "schema": s.schema_,
        }


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """Chunks carry their own Arrow schema; align them with the manifest's so the stream is uniform."""
    if t.schema.equals(schema):
        return t
    return t.rename_columns(schema.names).cast(schema)


def _small(sql: str) -> bool:
    """True for queries whose result is known to be small: a top-level LIMIT n with n <= INLINE_MAX_ROWS."""
    m = re.search(r"\blimit\s+(\d+)\s*$", sql, re.IGNORECASE)
    return bool(m) and int(m.group(1)) <= INLINE_MAX_ROWS  # type: ignore[union-attr]


def _values(data: pa.Table) -> str:
    """The rows of ``data`` as a SQL VALUES list."""
    return ",\n".join(
        "(" + ", ".join(_literal(v) for v in row) + ")"
        for row in zip(*(c.to_pylist() for c in data.columns), strict=True)
    )


def _create_as(target: str, columns: list[tuple[str, str]], source: str, *, replace: bool) -> str:
    """``CREATE [OR REPLACE] TABLE target AS SELECT CAST(c AS type) AS c, ... FROM source``: the table and its
    rows in one Delta commit, with the column types the data's Arrow types map to."""
    select = ", ".join(f"CAST({ident(n)} AS {t}) AS {ident(n)}" for n, t in columns)
    return f"CREATE {'OR REPLACE ' if replace else ''}TABLE {target} AS SELECT {select} FROM {source}"


def _check_append(table: str, have: list[str], names: list[str]) -> None:
    """Delta refuses columns the table lacks; say so before anything is uploaded."""
    known = {n.lower() for n in have}
    extra = [n for n in names if n.lower() not in known]
    if extra:
        raise DataError(
            f"cannot append to {table!r}: the table has no column {', '.join(map(repr, extra))} "
            f"(it has {', '.join(have)})",
            fix="rename or drop those columns, or pass mode='overwrite' (--mode overwrite) to replace the table "
            "and its columns; nothing was written",
        )

"""The lakehouse data source: Parquet tables in S3, catalogued in Glue, queried with Athena.

Where tables live (one model): each table is a folder ``<location>/<table>/`` of Parquet files registered
in the manifest's Glue database as an external Parquet table.

- ``write()`` adds a Parquet file to that folder (``overwrite`` first empties it) and creates or updates
  the Glue table's columns. Appending data whose columns differ from the table's is refused.
- A table read of a Parquet table skips Athena: pyarrow scans the table's S3 location directly (with
  projection), which costs no Athena scan fees and streams at S3 speed. Iceberg tables, other formats and
  any ``version=`` go through Athena (``FOR VERSION AS OF n`` / ``FOR TIMESTAMP AS OF``: Iceberg only).
- SQL runs in the manifest's Athena workgroup (whose enforced output location and encryption apply), and
  its result pages stream back typed by Athena's column metadata. Athena pages hold 1,000 rows, so large
  results are better read as tables, or written by a query run in Athena itself (CTAS/UNLOAD: reads run
  queries only) and read as a table.

Credentials: the AWS credential chain (environment, ~/.aws, SSO, IRSA on EKS). ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``) points S3 at an S3-compatible endpoint, as boto3 does.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mlstack._redact import redact
from mlstack.data.base import (
    DataSource,
    Shard,
    TableInfo,
    Version,
    WriteResult,
    check_mode,
    is_table_name,
    parse_version,
    split_name,
    timestamp_literal,
    to_arrow,
)
from mlstack.errors import BackendError, ConflictError, CredentialsError, DataError, NotFoundError, UsageError
from mlstack.manifest import LakehouseData

POLL_TIMEOUT_S = 3600.0
_CRED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}
_PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_PARQUET_IN = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_PARQUET_OUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


def s3_filesystem(region: str) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for ``region``, honouring AWS_ENDPOINT_URL(_S3) like boto3 does."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        u = urlparse(endpoint)
        return pafs.S3FileSystem(
            region=region, endpoint_override=u.netloc, scheme=u.scheme or "https", allow_bucket_creation=False
        )
    return pafs.S3FileSystem(region=region)


def arrow_to_glue_type(t: pa.DataType) -> str:
    checks = [
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_int8, "tinyint"),
        (pa.types.is_int16, "smallint"),
        (pa.types.is_int32, "int"),
        (pa.types.is_integer, "bigint"),
        (pa.types.is_float32, "float"),
        (pa.types.is_floating, "double"),
        (pa.types.is_date, "date"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_binary, "binary"),
        (pa.types.is_large_binary, "binary"),
        (pa.types.is_string, "string"),
        (pa.types.is_large_string, "string"),
    ]
    for pred, name in checks:
        if pred(t):
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"  # type: ignore[attr-defined]
    if pa.types.is_dictionary(t):
        return arrow_to_glue_type(t.value_type)  # type: ignore[attr-defined]
    raise UsageError(
        f"cannot map Arrow type {t} to a Glue column type",
        fix="cast the column to a number, string, boolean, date or timestamp before writing",
    )


def athena_type(type_name: str, precision: int | None, scale: int | None) -> pa.DataType:
    t = type_name.lower()
    simple: dict[str, pa.DataType] = {
        "boolean": pa.bool_(),
        "tinyint": pa.int8(),
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "real": pa.float32(),
        "float": pa.float32(),
        "double": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("ms"),
        "varbinary": pa.binary(),
    }
    if t in simple:
        return simple[t]
    if t == "decimal":
        return pa.decimal128(precision or 38, scale or 0)
    return pa.string()


def _page_to_batch(rows: list[list[str | None]], schema: pa.Schema) -> pa.RecordBatch:
    """Athena result rows (strings) as a typed batch."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for values, f in zip(cols, schema, strict=True):
        if pa.types.is_boolean(f.type):
            arrays.append(pa.array([None if v is None else v.lower() == "true" for v in values], pa.bool_()))
        elif pa.types.is_binary(f.type):
            arrays.append(
                pa.array([None if v is None else bytes.fromhex(v.replace(" ", "")) for v in values])
            )
        else:
            arrays.append(pa.array(list(values), pa.string()).cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass
class S3ParquetShard(Shard):
    """One Parquet object of a lakehouse table (no credentials inside: the worker's AWS chain reads it)."""

    path: str = ""  # bucket/key
    region: str = ""
    columns: list[str] | None = None
    partition_values: dict[str, Any] = field(default_factory=dict)

    def read(self) -> pa.Table:
        wanted = self.columns
        file_cols = [c for c in wanted if c not in self.partition_values] if wanted else None
        table = pq.read_table(self.path, columns=file_cols, filesystem=s3_filesystem(self.region))
        for name, value in self.partition_values.items():
            if wanted is None or name in wanted:
                table = table.append_column(name, pa.array([value] * table.num_rows))
        return table.select(wanted) if wanted else table


class LakehouseSource(DataSource):
    """Glue database + Athena workgroup over an S3 location."""

    kind = "lakehouse"
    dialect = "athena"

    def __init__(self, section: LakehouseData) -> None:
        super().__init__(section)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        loc = urlparse(section.location)
        self.bucket = loc.netloc
        self.prefix = loc.path.strip("/")

    # ---------------------------------------------------------------- clients and errors
    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = boto3.session.Session(region_name=self.section.region).client(
                    service
                )
            return self._clients[service]

    def _translate(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, NoCredentialsError):
            return CredentialsError(
                f"no AWS credentials for {what}",
                fix="configure the AWS credential chain (aws sso login, AWS_PROFILE, or IRSA on EKS)",
            )
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            msg = redact(str(exc.response.get("Error", {}).get("Message", str(exc))))
            if code in _CRED_CODES:
                return CredentialsError(
                    f"AWS refused {what}: {code}: {msg}",
                    fix="check the role's grants on the lakehouse (S3LakehouseStack grant_read/grant_write)",
                )
            if code in ("EntityNotFoundException", "NoSuchBucket", "ResourceNotFoundException"):
                return NotFoundError(f"{what}: {code}: {msg}", fix="check the manifest's data section")
            if code == "InvalidRequestException":
                return DataError(f"{what} failed: {msg}", fix="check the SQL (Athena/Trino dialect)")
            return BackendError(f"{what} failed: {code}: {msg}")
        text = redact(str(exc))  # an error of the S3 filesystem or botocore may quote a URL
        if isinstance(exc, OSError) and "ACCESS_DENIED" in text.upper():
            return CredentialsError(f"S3 refused {what}: {text}", fix="check the role's S3 grants")
        return BackendError(f"{what} failed: {type(exc).__name__}: {text}")

    # ---------------------------------------------------------------- Athena
    def run_query(self, sql: str, what: str = "query") -> str:
        """Start ``sql`` in the workgroup, wait for it, return the execution id (raises on failure)."""
        athena = self._client("athena")
        s = self.section
        try:
            qid = athena.start_query_execution(
                QueryString=sql,
                QueryExecutionContext={"Database": s.database, "Catalog": "AwsDataCatalog"},
                WorkGroup=s.workgroup,
            )["QueryExecutionId"]
            deadline = time.monotonic() + POLL_TIMEOUT_S
            delay = 0.1
            while True:
                status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
                state = status["State"]
                if state == "SUCCEEDED":
                    return str(qid)
                if state in ("FAILED", "CANCELLED"):
                    reason = status.get("StateChangeReason", state)
                    if "TABLE_NOT_FOUND" in reason or "does not exist" in reason:
                        raise NotFoundError(
                            f"{what} failed: {reason}", fix="`mlstack data tables` lists the tables"
                        )
                    raise DataError(f"{what} failed: {reason}", fix="check the SQL (Athena/Trino dialect)")
                if time.monotonic() > deadline:
                    athena.stop_query_execution(QueryExecutionId=qid)
                    raise BackendError(f"{what} still running after {POLL_TIMEOUT_S:.0f}s; stopped")
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, what) from None

    def _results(self, qid: str) -> pa.RecordBatchReader:
        athena = self._client("athena")
        pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid)
        it = iter(pages)
        try:
            first = next(it)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "fetching results") from None
        meta = first["ResultSet"].get("ResultSetMetadata", {}).get("ColumnInfo", [])
        schema = pa.schema(
            [
                pa.field(c["Name"], athena_type(c.get("Type", "varchar"), c.get("Precision"), c.get("Scale")))
                for c in meta
            ]
        )

        def rows_of(page: dict[str, Any]) -> list[list[str | None]]:
            return [
                [d.get("VarCharValue") for d in r.get("Data", [])] for r in page["ResultSet"].get("Rows", [])
            ]

        head = rows_of(first)
        if head and head[0] == [c["Name"] for c in meta]:
            head = head[1:]  # Athena repeats the column labels as the first row of a SELECT

        def gen() -> Iterator[pa.RecordBatch]:
            yield _page_to_batch(head, schema)
            try:
                for page in it:
                    yield _page_to_batch(rows_of(page), schema)
            except (ClientError, BotoCoreError) as exc:
                raise self._translate(exc, "fetching results") from None

        return pa.RecordBatchReader.from_batches(schema, gen())

    # ---------------------------------------------------------------- Glue
    def _glue_table(self, name: str) -> dict[str, Any] | None:
        try:
            return self._client("glue").get_table(DatabaseName=self.section.database, Name=name)["Table"]  # type: ignore[no-any-return]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                return None
            raise self._translate(exc, f"looking up table {name}") from None
        except BotoCoreError as exc:
            raise self._translate(exc, f"looking up table {name}") from None

    def _name(self, table: str) -> str:
        parts = split_name(table) if is_table_name(table) else []
        if len(parts) == 2 and parts[0] == self.section.database:
            parts = parts[1:]
        if len(parts) != 1:
            raise UsageError(
                f"lakehouse table names are one identifier in database {self.section.database!r}, got {table!r}",
                fix="use a name like 'sales'",
            )
        return parts[0].lower()

    @staticmethod
    def _is_parquet(t: dict[str, Any]) -> bool:
        params = {k.lower(): str(v).lower() for k, v in (t.get("Parameters") or {}).items()}
        if params.get("table_type") == "iceberg":
            return False
        sd = t.get("StorageDescriptor") or {}
        serde = ((sd.get("SerdeInfo") or {}).get("SerializationLibrary") or "").lower()
        return "parquet" in serde or "parquet" in (sd.get("InputFormat") or "").lower()

    def tables(self) -> list[TableInfo]:
        out: list[TableInfo] = []
        try:
            for page in (
                self._client("glue").get_paginator("get_tables").paginate(DatabaseName=self.section.database)
            ):
                for t in page.get("TableList", []):
                    params = {k.lower(): str(v).lower() for k, v in (t.get("Parameters") or {}).items()}
                    kind = (
                        "view"
                        if t.get("TableType") == "VIRTUAL_VIEW"
                        else "iceberg"
                        if params.get("table_type") == "iceberg"
                        else "table"
                    )
                    loc = (t.get("StorageDescriptor") or {}).get("Location")
                    out.append(TableInfo(t["Name"], kind, None, None, loc))
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "listing tables") from None
        return sorted(out, key=lambda i: i.name)

    # ---------------------------------------------------------------- reads
    def _dataset(self, t: dict[str, Any]) -> pads.Dataset:
        loc = urlparse((t.get("StorageDescriptor") or {}).get("Location") or "")
        keys = [k["Name"] for k in t.get("PartitionKeys") or []]
        path = f"{loc.netloc}/{loc.path.strip('/')}"
        try:
            return pads.dataset(
                path,
                format="parquet",
                filesystem=s3_filesystem(self.section.region),
                partitioning="hive" if keys else None,
            )
        except (OSError, pa.ArrowInvalid) as exc:
            raise self._translate(exc, f"reading {t['Name']}") from None

    def select_sql(self, table: str, columns: Sequence[str] | None, version: Version) -> str:
        cols = ", ".join(self.quote(c) for c in columns) if columns else "*"
        target = f"{self.quote(self.section.database)}.{self.quote(self._name(table))}"
        return f"SELECT {cols} FROM {target}{self.version_clause(version)}"

    def version_clause(self, version: Version) -> str:
        parsed = parse_version(version, what="an Iceberg table version")
        if parsed is None:
            return ""
        if isinstance(parsed, int):
            if parsed < 0:
                raise UsageError(
                    f"an Iceberg snapshot id is 0 or more, got {version!r}",
                    fix="pass a snapshot id or a timestamp",
                )
            return f" FOR VERSION AS OF {parsed}"
        return f" FOR TIMESTAMP AS OF TIMESTAMP '{timestamp_literal(parsed, tz_sep=' ')}'"

    def _read_table(
        self, name: str, columns: Sequence[str] | None, version: Version
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]]]:
        table = self._name(name)
        t = self._glue_table(table)
        if t is None:
            raise NotFoundError(
                f"table {table!r} does not exist in Glue database {self.section.database!r}",
                fix="`mlstack data tables` lists the tables; `mlstack data load FILE TABLE` creates one",
            )
        lineage: list[tuple[str, Version]] = [(f"{self.section.database}.{table}", version)]
        if version is None and self._is_parquet(t):
            ds = self._dataset(t)
            missing = [c for c in columns or [] if c not in ds.schema.names]
            if missing:
                raise DataError(
                    f"table {table!r} has no column {', '.join(missing)}",
                    fix=f"its columns: {', '.join(ds.schema.names)}",
                )
            return pads.Scanner.from_dataset(
                ds, columns=list(columns) if columns else None
            ).to_reader(), lineage
        qid = self.run_query(self.select_sql(table, columns, version), f"reading {table}")
        return self._results(qid), lineage

    def _read_sql(
        self, sql: str, version: Version | Mapping[str, Version]
    ) -> tuple[pa.RecordBatchReader, list[tuple[str, Version]] | None]:
        if version is not None:
            raise UsageError(
                "version= applies to table reads; in SQL write FOR VERSION AS OF yourself (Iceberg tables)",
                fix="SELECT ... FROM sales FOR VERSION AS OF 3",
            )
        return self._results(self.run_query(sql)), None

    def shards(
        self,
        sql_or_table: str,
        *,
        columns: Sequence[str] | None = None,
        version: Version | Mapping[str, Version] = None,
    ) -> list[Shard]:
        """One shard per Parquet object of a Parquet table; otherwise one SQL shard."""
        text = self._check_query(sql_or_table)
        if is_table_name(text) and version is None:
            table = self._name(text)
            t = self._glue_table(table)
            if t is not None and self._is_parquet(t):
                ds = self._dataset(t)
                out: list[Shard] = []
                for i, frag in enumerate(ds.get_fragments()):
                    parts = pads.get_partition_keys(frag.partition_expression) or {}
                    out.append(
                        S3ParquetShard(
                            index=i,
                            label=table,
                            path=frag.path,
                            region=self.section.region,
                            columns=list(columns) if columns else None,
                            partition_values=dict(parts),
                        )
                    )
                self._record([(f"{self.section.database}.{table}", None)])
                return out
        return super().shards(text, columns=columns, version=version)

    # ---------------------------------------------------------------- writes
    def write(self, table: str, data: Any, mode: str = "append") -> WriteResult:
        m = check_mode(mode)
        name = self._name(table)
        arrow = to_arrow(data)
        if isinstance(arrow, pa.RecordBatchReader):
            arrow = arrow.read_all()
        columns = [{"Name": f.name.lower(), "Type": arrow_to_glue_type(f.type)} for f in arrow.schema]
        existing = self._glue_table(name)
        if existing is not None and not self._is_parquet(existing):
            raise UsageError(
                f"{name!r} is not a Parquet table (Iceberg or another format)",
                fix="write to it with Athena SQL (INSERT INTO / MERGE)",
            )
        if existing is not None and m == "append":
            have = (existing.get("StorageDescriptor") or {}).get("Columns") or []
            if [(c["Name"], c["Type"]) for c in have] != [(c["Name"], c["Type"]) for c in columns]:
                raise DataError(
                    f"cannot append to {name!r}: the data's columns do not match the table",
                    fix="the table has columns "
                    + ", ".join(f"{c['Name']} {c['Type']}" for c in have)
                    + "; pass mode='overwrite' to replace the table and its schema",
                )
        folder = "/".join(p for p in (self.bucket, self.prefix, name) if p)
        location = f"s3://{folder}/"
        if existing is not None:
            location = (existing.get("StorageDescriptor") or {}).get("Location") or location
            folder = location[len("s3://") :].rstrip("/")
        fs = s3_filesystem(self.section.region)
        key = f"{folder}/part-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.parquet"
        try:
            if m == "overwrite":
                try:
                    fs.delete_dir_contents(folder, missing_dir_ok=True)
                except FileNotFoundError:
                    pass
            pq.write_table(arrow.rename_columns([c["Name"] for c in columns]), key, filesystem=fs)
        except OSError as exc:
            raise self._translate(exc, f"writing {name} to {location}") from None
        table_input = {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "StorageDescriptor": {
                "Columns": columns,
                "Location": location,
                "InputFormat": _PARQUET_IN,
                "OutputFormat": _PARQUET_OUT,
                "SerdeInfo": {"SerializationLibrary": _PARQUET_SERDE},
            },
        }
        glue = self._client("glue")
        try:
            if existing is None:
                glue.create_table(DatabaseName=self.section.database, TableInput=table_input)
            elif m == "overwrite":
                glue.update_table(DatabaseName=self.section.database, TableInput=table_input)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "AlreadyExistsException":
                raise ConflictError(
                    f"table {name!r} was created by another writer at the same time", fix="retry the write"
                ) from None
            raise self._translate(exc, f"registering {name} in Glue") from None
        return WriteResult(name, arrow.num_rows, m, None)

    # ---------------------------------------------------------------- health
    def ping(self) -> dict[str, Any]:
        s = self.section
        try:
            ident = self._client("sts").get_caller_identity()
            wg = self._client("athena").get_work_group(WorkGroup=s.workgroup)["WorkGroup"]
            self._client("glue").get_database(Name=s.database)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "ping") from None
        return {
            "kind": self.kind,
            "identity": ident.get("Arn"),
            "account": ident.get("Account"),
            "region": s.region,
            "workgroup": s.workgroup,
            "workgroup_state": wg.get("State"),
            "database": s.database,
            "location": s.location,
        }

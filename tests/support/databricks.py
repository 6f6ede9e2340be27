"""Test support: a FAKE Databricks SQL Statement Execution server (no emulator of Databricks exists).

This is a fake, not Databricks: http.server + DuckDB + Arrow IPC, speaking the wire shapes the unmodified
``databricks-sdk`` uses, so the real client code runs end to end:

- ``POST /api/2.0/sql/statements`` with ``INLINE``/``JSON_ARRAY`` (values as strings, as Databricks sends
  them) or ``EXTERNAL_LINKS``/``ARROW_STREAM`` (first chunk's links in the response);
- ``GET /api/2.0/sql/statements/{id}`` (polling; ``pending_polls`` makes statements report PENDING first);
- ``GET /api/2.0/sql/statements/{id}/result/chunks/{n}`` (links or data of chunk n);
- ``GET /fake-cloud-storage/{id}/{n}?sig=...``: the "presigned" chunk download. Like a real presigned URL
  it must be fetched WITHOUT the workspace Authorization header, and with the ``http_headers`` the link
  lists (the fake requires one, as Azure's encryption headers are required);
- ``GET /api/2.0/preview/scim/v2/Me``, ``GET /api/2.0/sql/warehouses/{id}`` (for ping);
- ``GET /.well-known/databricks-config`` -> 404, as the SDK probes it first;
- the Files API on Unity Catalog volumes (``/api/2.0/fs/files{path}``: PUT upload with ``overwrite``, GET,
  HEAD, DELETE; ``/api/2.0/fs/directories{path}``: PUT, GET listing, HEAD, DELETE of an empty folder), over a
  temporary folder; only paths under ``/Volumes/<catalog>/<schema>/<volume>/`` of a volume the fake knows
  (``volumes``; by default ``files`` in the default catalog and schema).

SQL is Databricks SQL transpiled to DuckDB with sqlglot; catalog and schema map to a DuckDB database and
schema. ``COPY INTO <table> FROM '/Volumes/...' FILEFORMAT = PARQUET [FILES = (...)] [COPY_OPTIONS
('force' = 'true')]`` loads the folder's Parquet files in one transaction, matching columns by name (a column
the table lacks fails the load, as Delta's schema enforcement does; a column the files lack is NULL), and
skips files it loaded into that table before, as Databricks does; it returns ``num_affected_rows``,
``num_inserted_rows``, ``num_skipped_corrupt_files``. ``read_files('/Volumes/...', format => 'parquet')``
reads a volume folder's Parquet files. Errors mimic Databricks' classes (``[TABLE_OR_VIEW_NOT_FOUND]``,
``[TABLE_OR_VIEW_ALREADY_EXISTS]``, ``[PARSE_SYNTAX_ERROR]``). Not emulated: Delta time travel (``VERSION AS
OF`` fails), permissions, link expiry, warehouse start-up, other file formats.
Every request is recorded in ``requests`` for assertions; ``statement_fault`` and ``upload_fault`` make
chosen statements or uploads fail, to test what a client does then.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import secrets
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

FAKE_USER = "fake-user@example.com"
REQUIRED_LINK_HEADER = "x-fake-storage-key"
FILES_API = "/api/2.0/fs/"


@dataclass
class _Result:
    schema: Any  # pyarrow.Schema
    chunks: list[Any]  # list[pyarrow.Table]
    state: str = "SUCCEEDED"
    error: dict[str, str] | None = None
    polls_left: int = 0
    disposition: str = "INLINE"
    fmt: str = "JSON_ARRAY"


@dataclass
class RecordedRequest:
    method: str
    path: str
    authorization: str | None
    headers: dict[str, str]
    body: dict[str, Any] | None


_DBX_TYPES = [
    ("is_boolean", "BOOLEAN"),
    ("is_int8", "BYTE"),
    ("is_int16", "SHORT"),
    ("is_int32", "INT"),
    ("is_int64", "LONG"),
    ("is_float32", "FLOAT"),
    ("is_float64", "DOUBLE"),
    ("is_decimal", "DECIMAL"),
    ("is_date", "DATE"),
    ("is_timestamp", "TIMESTAMP"),
    ("is_binary", "BINARY"),
    ("is_large_binary", "BINARY"),
]


def _type_name(t: Any) -> str:
    import pyarrow as pa

    for pred, name in _DBX_TYPES:
        if getattr(pa.types, pred)(t):
            return name
    return "STRING"


def _json_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        import base64

        return base64.b64encode(v).decode()
    return str(v)


class FakeDatabricksSql:
    """The FAKE Statement Execution server. Use as a context manager; ``host`` is its http URL."""

    def __init__(
        self,
        *,
        token: str | None = None,
        warehouse_id: str = "fake-warehouse-1",
        catalog: str = "workspace",
        schema: str = "default",
        chunk_rows: int = 1000,
        pending_polls: int = 0,
    ) -> None:
        import duckdb

        self.token = token or "dapi-fake-" + secrets.token_hex(8)
        self.warehouse_id = warehouse_id
        self.catalog = catalog
        self.schema = schema
        self.chunk_rows = chunk_rows
        self.pending_polls = pending_polls
        self.requests: list[RecordedRequest] = []
        self._results: dict[str, _Result] = {}
        self._sign_key = secrets.token_bytes(16)
        self._link_header_value = secrets.token_hex(8)
        self._db = duckdb.connect(":memory:")
        self._db_lock = threading.Lock()
        self._ensure(catalog, schema)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Unity Catalog volumes the Files API and COPY INTO accept: (catalog, schema, volume)
        self.volumes: set[tuple[str, str, str]] = {(catalog, schema, "files")}
        self._volume_root = Path(tempfile.mkdtemp(prefix="fake-databricks-volumes-"))
        self._loaded: dict[str, set[str]] = {}  # table -> files COPY INTO loaded (its idempotence)
        #: statement text -> an error message to fail it with (unexecuted), or None to run it
        self.statement_fault: Callable[[str], str | None] | None = None
        #: (method, volume path) -> (HTTP status, JSON error body) to answer a Files API call with, or None
        self.upload_fault: Callable[[str, str], tuple[int, dict[str, Any]] | None] | None = None

    # ---------------------------------------------------------------- lifecycle
    @property
    def host(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeDatabricksSql:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

            def do_HEAD(self) -> None:
                fake._handle(self, "HEAD")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-databricks", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._db.close()
        shutil.rmtree(self._volume_root, ignore_errors=True)

    def manifest_section(self) -> dict[str, Any]:
        return {
            "kind": "databricks",
            "host": self.host,
            "warehouse_id": self.warehouse_id,
            "catalog": self.catalog,
            "schema": self.schema,
            "profile": "fake",
        }

    def write_config(self, path: Path, profile: str = "fake", token: str | None = None) -> Path:
        """A ~/.databrickscfg with one profile pointing at this fake (token auth)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"[{profile}]\nhost = {self.host}\ntoken = {token or self.token}\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    def sql(self, statement: str) -> Any:
        """Run DuckDB SQL directly against the fake's store (test setup and checks)."""
        with self._db_lock:
            self._db.execute(f'USE "{self.catalog}"."{self.schema}"')
            return (
                self._db.sql(statement).to_arrow_table()
                if statement.lstrip().lower().startswith(("select", "with"))
                else self._db.execute(statement)
            )

    # ---------------------------------------------------------------- SQL
    def _ensure(self, catalog: str, schema: str) -> None:
        with self._db_lock:
            dbs = {r[0] for r in self._db.execute("select database_name from duckdb_databases()").fetchall()}
            if catalog not in dbs:
                self._db.execute(f"ATTACH ':memory:' AS \"{catalog}\"")
            self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{schema}"')

    def _run(self, statement: str, catalog: str, schema: str, params: list[dict[str, Any]] | None) -> _Result:
        import duckdb
        import pyarrow as pa
        import sqlglot

        try:
            trees = [t for t in sqlglot.parse(statement, read="databricks") if t is not None]
        except sqlglot.errors.ParseError as exc:
            return _error("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error: {exc}")
        if len(trees) != 1:
            return _error("BAD_REQUEST", "only one statement per request is supported")
        if isinstance(trees[0], sqlglot.exp.Copy):
            return self._copy_into(trees[0], catalog, schema)
        try:
            sql = self._read_files(trees[0]).sql(dialect="duckdb")
        except _FakeError as exc:
            return _error("BAD_REQUEST", str(exc))
        named: dict[str, Any] = {}
        for p in params or []:
            named[p["name"]] = p.get("value")
            sql = re.sub(rf":{re.escape(p['name'])}\b", f"${p['name']}", sql)
        with self._db_lock:
            try:
                self._db.execute(f'USE "{catalog}"."{schema}"')
                rel = self._db.execute(sql, named or None)
                with warnings.catch_warnings():  # DuckDB warns about the copy; fine for a fake
                    warnings.simplefilter("ignore")
                    try:
                        table = rel.to_arrow_table()
                    except duckdb.InvalidInputException:  # DDL without a result set
                        table = pa.table({})
            except duckdb.CatalogException as exc:
                m = re.search(r"Table with name (\S+) already exists", str(exc))
                if m:
                    return _error(
                        "BAD_REQUEST",
                        f"[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `{m.group(1)}` because it "
                        "already exists. SQLSTATE: 42P07",
                    )
                m = re.search(r"Table with name (\S+) does not exist", str(exc))
                if m:
                    return _error(
                        "BAD_REQUEST",
                        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{m.group(1)}` cannot be found. "
                        "Verify the spelling and correctness of the schema and catalog. SQLSTATE: 42P01",
                    )
                return _error("BAD_REQUEST", f"[UNRESOLVED_OBJECT] {exc}")
            except duckdb.ParserException as exc:
                return _error("BAD_REQUEST", f"[PARSE_SYNTAX_ERROR] {exc} SQLSTATE: 42601")
            except duckdb.Error as exc:
                return _error("BAD_REQUEST", f"[INTERNAL_ERROR] {exc}")
        n = table.num_rows
        chunks = [table.slice(i, self.chunk_rows) for i in range(0, n, self.chunk_rows)] or []
        return _Result(table.schema, chunks, polls_left=self.pending_polls)

    # ---------------------------------------------------------------- HTTP
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        is_file = url.path.startswith(FILES_API)
        body = json.loads(raw) if raw and not is_file else None
        auth = h.headers.get("Authorization")
        self.requests.append(
            RecordedRequest(method, url.path, auth, {k.lower(): v for k, v in h.headers.items()}, body)
        )
        path = url.path.rstrip("/")
        if path == "/.well-known/databricks-config":
            return _send(h, 404, {"error_code": "NOT_FOUND", "message": "not found"})
        if path.startswith("/fake-cloud-storage/"):
            return self._download(h, path, parse_qs(url.query))
        if auth != f"Bearer {self.token}":
            return _send(
                h, 401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token. [ReqId: fake]"}
            )
        if path == "/api/2.0/preview/scim/v2/Me" and method == "GET":
            return _send(h, 200, {"id": "1001", "userName": FAKE_USER, "active": True, "displayName": "Fake"})
        m = re.fullmatch(r"/api/2.0/sql/warehouses/([^/]+)", path)
        if m and method == "GET":
            if m.group(1) != self.warehouse_id:
                return _send(h, 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No warehouse"})
            return _send(
                h,
                200,
                {
                    "id": self.warehouse_id,
                    "name": "fake warehouse",
                    "state": "RUNNING",
                    "cluster_size": "2X-Small",
                },
            )
        if url.path.startswith(FILES_API):
            return self._files_api(h, method, url.path, parse_qs(url.query), raw)
        if path == "/api/2.0/sql/statements" and method == "POST":
            return self._execute(h, body or {})
        m = re.fullmatch(r"/api/2.0/sql/statements/([^/]+)", path)
        if m and method == "GET":
            return self._status(h, m.group(1))
        m = re.fullmatch(r"/api/2.0/sql/statements/([^/]+)/result/chunks/(\d+)", path)
        if m and method == "GET":
            return self._chunk(h, m.group(1), int(m.group(2)))
        return _send(
            h, 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for {method} {path}"}
        )

    def _execute(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if body.get("warehouse_id") != self.warehouse_id:
            return _send(
                h,
                404,
                {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"warehouse {body.get('warehouse_id')} not found",
                },
            )
        disposition = body.get("disposition", "INLINE")
        fmt = body.get("format", "JSON_ARRAY")
        if disposition == "INLINE" and fmt != "JSON_ARRAY":
            return _send(
                h, 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"{fmt} requires EXTERNAL_LINKS"}
            )
        catalog = body.get("catalog") or self.catalog
        schema = body.get("schema") or self.schema
        self._ensure(catalog, schema)
        injected = self.statement_fault(body["statement"]) if self.statement_fault else None
        if injected:
            res = _error("BAD_REQUEST", injected)
        else:
            res = self._run(body["statement"], catalog, schema, body.get("parameters"))
        res.disposition, res.fmt = disposition, fmt
        sid = str(uuid.uuid4())
        self._results[sid] = res
        return _send(h, 200, self._response(sid, res))

    def _status(self, h: BaseHTTPRequestHandler, sid: str) -> None:
        res = self._results.get(sid)
        if res is None:
            return _send(h, 404, {"error_code": "NOT_FOUND", "message": f"statement {sid} not found"})
        return _send(h, 200, self._response(sid, res))

    def _response(self, sid: str, res: _Result) -> dict[str, Any]:
        if res.polls_left > 0:
            res.polls_left -= 1
            return {"statement_id": sid, "status": {"state": "PENDING"}}
        if res.state != "SUCCEEDED":
            return {"statement_id": sid, "status": {"state": res.state, "error": res.error}}
        columns = [
            {"name": f.name, "position": i, "type_name": _type_name(f.type), "type_text": _type_name(f.type)}
            for i, f in enumerate(res.schema)
        ]
        offsets = []
        off = 0
        for c in res.chunks:
            offsets.append({"chunk_index": len(offsets), "row_offset": off, "row_count": c.num_rows})
            off += c.num_rows
        out: dict[str, Any] = {
            "statement_id": sid,
            "status": {"state": "SUCCEEDED"},
            "manifest": {
                "format": res.fmt,
                "schema": {"column_count": len(columns), "columns": columns},
                "total_chunk_count": len(res.chunks),
                "total_row_count": off,
                "chunks": offsets,
                "truncated": False,
            },
        }
        if res.chunks:
            out["result"] = self._chunk_body(sid, res, 0)
        return out

    def _chunk_body(self, sid: str, res: _Result, n: int) -> dict[str, Any]:
        chunk = res.chunks[n]
        offset = sum(c.num_rows for c in res.chunks[:n])
        nxt = n + 1 if n + 1 < len(res.chunks) else None
        base: dict[str, Any] = {"chunk_index": n, "row_offset": offset, "row_count": chunk.num_rows}
        if nxt is not None:
            base["next_chunk_index"] = nxt
            base["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{sid}/result/chunks/{nxt}"
        if res.disposition == "INLINE":
            rows = [[_json_value(v) for v in row.values()] for row in chunk.to_pylist()]
            return {**base, "data_array": rows}
        sig = hmac.new(self._sign_key, f"{sid}/{n}".encode(), "sha256").hexdigest()
        link = {
            **base,
            "byte_count": chunk.nbytes,
            "external_link": f"{self.host}/fake-cloud-storage/{sid}/{n}?sig={sig}",
            "expiration": "2099-01-01T00:00:00.000Z",
            "http_headers": {REQUIRED_LINK_HEADER: self._link_header_value},
        }
        return {"external_links": [link]}

    def _chunk(self, h: BaseHTTPRequestHandler, sid: str, n: int) -> None:
        res = self._results.get(sid)
        if res is None or res.state != "SUCCEEDED" or not 0 <= n < len(res.chunks):
            return _send(h, 404, {"error_code": "NOT_FOUND", "message": f"chunk {n} of {sid} not found"})
        return _send(h, 200, self._chunk_body(sid, res, n))

    def _download(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        import pyarrow as pa

        m = re.fullmatch(r"/fake-cloud-storage/([^/]+)/(\d+)", path)
        if h.headers.get("Authorization"):  # presigned URLs reject a second auth mechanism
            return _send_raw(
                h, 400, b"<Error><Code>InvalidArgument</Code>Only one auth mechanism allowed</Error>"
            )
        if h.headers.get(REQUIRED_LINK_HEADER) != self._link_header_value:
            return _send_raw(h, 403, b"<Error><Code>AccessDenied</Code>missing required header</Error>")
        if not m:
            return _send_raw(h, 404, b"<Error><Code>NoSuchKey</Code></Error>")
        sid, n = m.group(1), int(m.group(2))
        expected = hmac.new(self._sign_key, f"{sid}/{n}".encode(), "sha256").hexdigest()
        if query.get("sig", [""])[0] != expected:
            return _send_raw(h, 403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        res = self._results.get(sid)
        if res is None or not 0 <= n < len(res.chunks):
            return _send_raw(h, 404, b"<Error><Code>NoSuchKey</Code></Error>")
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, res.schema) as w:
            w.write_table(res.chunks[n])
        return _send_raw(h, 200, sink.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream")

    # ---------------------------------------------------------------- volumes: Files API, COPY INTO, read_files
    def volume_dir(self, volume_path: str) -> Path:
        """The local folder behind ``/Volumes/<catalog>/<schema>/<volume>/...`` (raises _FakeError when the path
        is not in a volume the fake knows)."""
        parts = [p for p in volume_path.split("/") if p]
        if len(parts) < 4 or parts[0] != "Volumes" or any(p in (".", "..") for p in parts):
            raise _FakeError(
                f"[INVALID_PARAMETER_VALUE] {volume_path!r} is not a path in a Unity Catalog volume"
            )
        if (parts[1], parts[2], parts[3]) not in self.volumes:
            raise _NotFound(f"Volume '{parts[1]}.{parts[2]}.{parts[3]}' does not exist.")
        return self._volume_root.joinpath(*parts[1:])

    def volume_files(self, volume_path: str) -> list[str]:
        """Every file under a volume folder, as volume paths (what tests check is left behind)."""
        base = self.volume_dir(volume_path)
        if not base.exists():
            return []
        root = self._volume_root
        return sorted("/Volumes/" + str(p.relative_to(root)) for p in base.rglob("*") if p.is_file())

    def _files_api(
        self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> None:
        kind, _, vpath = path[len(FILES_API) :].partition("/")
        vpath = "/" + vpath
        fault = self.upload_fault(method, vpath) if self.upload_fault else None
        if fault:
            return _send(h, fault[0], fault[1])
        try:
            local = self.volume_dir(vpath)
        except _NotFound as exc:
            return _send(h, 404, {"error_code": "NOT_FOUND", "message": str(exc)})
        except _FakeError as exc:
            return _send(h, 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": str(exc)})
        if kind == "files":
            return self._file(h, method, vpath, local, query, raw)
        if kind == "directories":
            return self._directory(h, method, vpath, local)
        return _send(
            h, 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for {method} {path}"}
        )

    def _file(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        vpath: str,
        local: Path,
        query: dict[str, list[str]],
        raw: bytes,
    ) -> None:
        if method == "PUT":
            overwrite = query.get("overwrite", ["true"])[0].lower() != "false"
            if local.is_dir():
                return _send(h, 409, {"error_code": "ALREADY_EXISTS", "message": f"{vpath} is a directory"})
            if local.exists() and not overwrite:
                return _send(
                    h, 409, {"error_code": "ALREADY_EXISTS", "message": f"The file {vpath} already exists."}
                )
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.upload")
            tmp.write_bytes(raw)
            tmp.replace(local)  # a reader never sees half a file
            return _send_raw(h, 204, b"")
        if not local.is_file():
            return _send(h, 404, {"error_code": "NOT_FOUND", "message": f"The file {vpath} does not exist."})
        if method == "GET":
            return _send_raw(h, 200, local.read_bytes(), "application/octet-stream")
        if method == "HEAD":
            h.send_response(200)
            h.send_header("Content-Length", str(local.stat().st_size))
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            return None
        if method == "DELETE":
            local.unlink()
            return _send_raw(h, 204, b"")
        return _send(h, 405, {"error_code": "BAD_REQUEST", "message": f"{method} is not allowed on files"})

    def _directory(self, h: BaseHTTPRequestHandler, method: str, vpath: str, local: Path) -> None:
        if method == "PUT":
            local.mkdir(parents=True, exist_ok=True)
            return _send_raw(h, 204, b"")
        if not local.is_dir():
            return _send(
                h, 404, {"error_code": "NOT_FOUND", "message": f"The directory {vpath} does not exist."}
            )
        if method == "HEAD":
            h.send_response(200)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        if method == "GET":
            contents = [
                {
                    "path": vpath.rstrip("/") + "/" + p.name,
                    "name": p.name,
                    "is_directory": p.is_dir(),
                    **({} if p.is_dir() else {"file_size": p.stat().st_size}),
                    "last_modified": int(p.stat().st_mtime * 1000),
                }
                for p in sorted(local.iterdir())
            ]
            return _send(h, 200, {"contents": contents})
        if method == "DELETE":
            if any(local.iterdir()):
                return _send(
                    h,
                    409,
                    {"error_code": "DIRECTORY_NOT_EMPTY", "message": f"The directory {vpath} is not empty."},
                )
            local.rmdir()
            return _send_raw(h, 204, b"")
        return _send(
            h, 405, {"error_code": "BAD_REQUEST", "message": f"{method} is not allowed on directories"}
        )

    def _parquet_files(self, folder: str, names: list[str] | None = None) -> list[Path]:
        base = self.volume_dir(folder)
        if names:
            files = [base / n for n in names]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise _FakeError(f"[PATH_NOT_FOUND] Path does not exist: {missing[0]}")
            return files
        if base.is_file():
            return [base]
        # Spark skips hidden files (names starting with _ or .) when it lists a folder
        return sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))

    def _read_files(self, tree: Any) -> Any:
        """``read_files('/Volumes/...', format => 'parquet')`` -> DuckDB's read_parquet over the local files."""
        from sqlglot import exp

        def swap(node: Any) -> Any:
            if isinstance(node, exp.Anonymous) and str(node.this).lower() == "read_files":
                args = list(node.expressions)
                if not args or not isinstance(args[0], exp.Literal):
                    raise _FakeError("[INVALID_PARAMETER_VALUE] read_files needs a path")
                options = {
                    str(a.this.name if hasattr(a.this, "name") else a.this).lower(): a.expression.name
                    for a in args[1:]
                    if isinstance(a, exp.Kwarg | exp.PropertyEQ)
                }
                if options.get("format", "").lower() != "parquet":
                    raise _FakeError("[UNSUPPORTED] the fake reads only format => 'parquet'")
                files = self._parquet_files(args[0].name)
                if not files:
                    raise _FakeError(f"[CANNOT_INFER_EMPTY_SCHEMA] no files in {args[0].name}")
                listed = exp.Array(expressions=[exp.Literal.string(str(f)) for f in files])
                return exp.Anonymous(this="read_parquet", expressions=[listed])
            return node

        return tree.transform(swap)

    def _copy_into(self, tree: Any, catalog: str, schema: str) -> _Result:
        """Databricks' COPY INTO for Parquet files in a volume: one transaction, by column name, idempotent."""
        import duckdb
        import pyarrow as pa
        from sqlglot import exp

        table = tree.this if isinstance(tree.this, exp.Table) else tree.this.this
        target = [table.catalog or catalog, table.db or schema, table.name]
        source = tree.args["files"][0]
        if not isinstance(source, exp.Literal):
            return _error("BAD_REQUEST", "[UNSUPPORTED] the fake copies from a path literal only")
        params = {}
        for p in tree.args.get("params") or []:
            key = p.this.name.upper()
            if p.expression is not None:
                params[key] = p.expression.name
            else:
                params[key] = {
                    str(e.this.name).lower(): str(e.args["value"].name).lower()
                    for e in p.expressions
                    if isinstance(e, exp.Property)
                } or [e.name for e in p.expressions]
        if str(params.get("FILEFORMAT", "")).upper() != "PARQUET":
            return _error("BAD_REQUEST", "[UNSUPPORTED] the fake copies FILEFORMAT = PARQUET only")
        force = isinstance(params.get("COPY_OPTIONS"), dict) and params["COPY_OPTIONS"].get("force") == "true"
        names = params.get("FILES") if isinstance(params.get("FILES"), list) else None
        try:
            files = self._parquet_files(source.name, names)
        except _NotFound as exc:
            return _error("BAD_REQUEST", f"[RESOURCE_DOES_NOT_EXIST] {exc}")
        except _FakeError as exc:
            return _error("BAD_REQUEST", str(exc))
        key = ".".join(target).lower()
        seen = self._loaded.setdefault(key, set())
        todo = [f for f in files if force or str(f) not in seen]
        quoted = ".".join(f'"{p}"' for p in target)
        inserted = 0
        with self._db_lock:
            try:
                cols = {
                    r[0].lower()
                    for r in self._db.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND "
                        "table_schema = ? AND table_name = ?",
                        target,
                    ).fetchall()
                }
                if not cols:
                    return _error(
                        "BAD_REQUEST",
                        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{'.'.join(target)}` cannot be found. "
                        "SQLSTATE: 42P01",
                    )
                if todo:
                    listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in todo)
                    have = [
                        r[0]
                        for r in self._db.execute(
                            f"DESCRIBE SELECT * FROM read_parquet([{listed}])"
                        ).fetchall()
                    ]
                    extra = [c for c in have if c.lower() not in cols]
                    if extra:
                        return _error(
                            "BAD_REQUEST",
                            "[DELTA_METADATA_MISMATCH.SCHEMA_MISMATCH] A schema mismatch detected when writing to "
                            f"the Delta table: the data has columns {extra} the table does not. SQLSTATE: 42KDG",
                        )
                    self._db.execute("BEGIN TRANSACTION")
                    try:
                        inserted = self._db.execute(
                            f"INSERT INTO {quoted} BY NAME SELECT * FROM read_parquet([{listed}])"
                        ).fetchone()[0]
                        self._db.execute("COMMIT")
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
            except duckdb.Error as exc:
                return _error("BAD_REQUEST", f"[COPY_INTO_FAILED] {exc}")
        seen.update(str(f) for f in todo)
        result = pa.table(
            {
                "num_affected_rows": pa.array([inserted], pa.int64()),
                "num_inserted_rows": pa.array([inserted], pa.int64()),
                "num_skipped_corrupt_files": pa.array([0], pa.int64()),
            }
        )
        return _Result(result.schema, [result], polls_left=self.pending_polls)

    def download_count(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/fake-cloud-storage/"))


class _FakeError(Exception):
    """A request the fake refuses, with Databricks' error text."""


class _NotFound(_FakeError):
    """A volume or file that does not exist."""


def _error(code: str, message: str) -> _Result:
    import pyarrow as pa

    return _Result(pa.schema([]), [], state="FAILED", error={"error_code": code, "message": message})


def _send(h: BaseHTTPRequestHandler, status: int, obj: dict[str, Any]) -> None:
    _send_raw(h, status, json.dumps(obj).encode(), "application/json")


def _send_raw(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/xml") -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


@contextlib.contextmanager
def fake_databricks_server(**kwargs: Any) -> Iterator[FakeDatabricksSql]:
    """Start the FAKE Statement Execution server on a free loopback port; stopped on exit."""
    with FakeDatabricksSql(**kwargs) as fake:
        yield fake


@dataclass
class FakeDatabricks:
    """The running fake plus the ~/.databrickscfg that points the SDK at it (profile ``fake``)."""

    server: FakeDatabricksSql
    config_file: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest_section(self) -> dict[str, Any]:
        return self.server.manifest_section()


@pytest.fixture
def fake_databricks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatabricks]:
    """A FAKE Databricks SQL endpoint (small chunks, one PENDING poll) and a config profile for it."""
    for var in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    with fake_databricks_server(chunk_rows=500, pending_polls=1) as fake:
        cfg = fake.write_config(tmp_path / "databrickscfg")
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
        yield FakeDatabricks(fake, cfg)

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
- ``GET /.well-known/databricks-config`` -> 404, as the SDK probes it first.

SQL is Databricks SQL transpiled to DuckDB with sqlglot; catalog and schema map to a DuckDB database and
schema. Errors mimic Databricks' classes (``[TABLE_OR_VIEW_NOT_FOUND]``, ``[PARSE_SYNTAX_ERROR]``). Not
emulated: Delta time travel (``VERSION AS OF`` fails), permissions, link expiry, warehouse start-up.
Every request is recorded in ``requests`` for assertions.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import secrets
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

FAKE_USER = "fake-user@example.com"
REQUIRED_LINK_HEADER = "x-fake-storage-key"


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
            sqls = sqlglot.transpile(statement, read="databricks", write="duckdb")
        except sqlglot.errors.ParseError as exc:
            return _error("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error: {exc}")
        if len(sqls) != 1:
            return _error("BAD_REQUEST", "only one statement per request is supported")
        sql = sqls[0]
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
        body = json.loads(raw) if raw else None
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

    def download_count(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/fake-cloud-storage/"))


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

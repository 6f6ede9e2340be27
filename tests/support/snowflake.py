"""Test support: Snowflake through fakesnow's server mode (the real connector over HTTP).

fakesnow 0.12.1 imports internals of snowflake-connector-python 4.x, while ``mlstack[snowflake]`` installs
the 5.x connector (a Rust rewrite). So the fake server runs from its own virtualenv with connector 4.x, as a
subprocess on a free loopback port, and the code under test talks to it with whatever connector it has.
Connector 5.x also wants ``masterToken``, ``validityInSeconds`` and ``sessionId`` in the login response, which fakesnow
does not send: a small ASGI shim in front of fakesnow's app adds them (values are placeholders; fakesnow
checks no credentials anyway). The shim also completes PUT's stage info for connector 5.x, implements the
``REMOVE`` and ``SWAP WITH`` statements fakesnow lacks, logs requests and injects faults (see ``_SERVER``):
it is part of the fake, named as such.

The server's interpreter: ``$MLSTACK_FAKESNOW_PYTHON``, else ``<repo>/.venv-fakesnow/bin/python``, which is
created on first use (set MLSTACK_FAKESNOW_AUTOCREATE=0 to not) as if by

    python3 -m venv .venv-fakesnow
    .venv-fakesnow/bin/pip install 'fakesnow[server]==0.12.1' 'snowflake-connector-python>=4,<5'

Without it the Snowflake tests skip (and fail in CI, where ``CI=true``, so a broken setup is not silent).

Use ``fakesnow_server()`` (a context manager yielding connection settings) anywhere, or the fixtures:
``fakesnow_server_info`` (one server per test session/xdist worker) and ``snowflake_connection``
(a connections.toml entry in a private ``SNOWFLAKE_HOME`` plus a fresh database name per test).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_VAR = "MLSTACK_FAKESNOW_PYTHON"

# Runs inside the fakesnow virtualenv: fakesnow's Starlette app behind a shim (a FAKE, extending a fake) that
# - completes login responses for connector 5.x;
# - completes PUT stage info as Snowflake sends it for GCS (region, flags, a presigned URL that names the
#   x-goog-* headers it signs: connector 5.x refuses to send a conditional upload otherwise);
# - implements `REMOVE @stage/path` and `ALTER TABLE a SWAP WITH b`, which fakesnow 0.12.1 does not parse,
#   on fakesnow's own DuckDB session (deleting the stage's files; three renames in one transaction);
# - logs every request (method, path, SQL text, query id, success) and can fail chosen statements or
#   uploads, through its own /__fake__/ endpoints (no Snowflake API has them).
_SERVER = textwrap.dedent(
    """
    import gzip, json, os, re, sys, uuid
    import uvicorn
    import fakesnow.server as fs
    from fakesnow.transforms import stage as fs_stage
    from sqlglot import exp, parse_one

    LOGIN = "/session/v1/login-request"
    QUERY = "/queries/v1/query-request"
    CONTROL = "/__fake__/"
    SIGNED = "host%3Bx-goog-if-generation-match%3Bx-goog-meta-sfc-digest%3Bx-goog-meta-encryptiondata%3Bx-goog-meta-matdesc"
    REMOVE = re.compile(r"\\s*(?:REMOVE|RM)\\s+(@\\S+?)\\s*;?\\s*$", re.I | re.S)
    SWAP = re.compile(r"\\s*ALTER\\s+TABLE\\s+(\\S+)\\s+SWAP\\s+WITH\\s+(\\S+?)\\s*;?\\s*$", re.I | re.S)
    LOG = []
    FAULTS = []

    def take_fault(kind, text):
        for f in FAULTS:
            if f["kind"] == kind and f["times"] > 0 and re.search(f.get("pattern") or "", text, re.I | re.S):
                f["times"] -= 1
                return f
        return None

    async def read_body(receive):
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                return b"".join(chunks)

    def replay(raw):
        sent = []

        async def receive():
            if sent:
                return {"type": "http.disconnect"}
            sent.append(1)
            return {"type": "http.request", "body": raw, "more_body": False}

        return receive

    async def send_json(send, status, obj):
        out = json.dumps(obj).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    def error_body(code, message, sqlstate="XX000"):
        data = {"errorCode": code, "sqlState": sqlstate, "queryId": str(uuid.uuid4())}
        return {"data": data, "code": code, "message": message, "success": False}

    def patch_stage_info(body):
        data = body.get("data") if isinstance(body, dict) else None
        info = data.get("stageInfo") if isinstance(data, dict) else None
        if isinstance(info, dict):
            info.setdefault("region", "US-CENTRAL1")
            info.setdefault("isClientSideEncrypted", False)
            info.setdefault("useRegionalUrl", False)
            info.setdefault("useVirtualUrl", False)
            info.setdefault("endPoint", None)
            info.setdefault("storageAccount", None)
            url = info.get("presignedUrl")
            if isinstance(url, str) and "X-Goog-SignedHeaders" not in url:
                info["presignedUrl"] = url + ("&" if "?" in url else "?") + "X-Goog-SignedHeaders=" + SIGNED
        return body

    def patch_login(body):
        data = body.get("data") or {}
        if body.get("success") and isinstance(data, dict):
            data.setdefault("masterToken", "fake-master-" + str(data.get("token", "")))
            data.setdefault("validityInSeconds", 3600)
            data.setdefault("masterValidityInSeconds", 14400)
            data.setdefault("sessionId", abs(hash(data.get("token", ""))) % (10**12))
        return body

    def session_of(scope):
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        m = re.search(r'Token="([^"]*)"', auth)
        return fs.sessions.get(m.group(1)) if m else None

    def literal(text):
        return "'" + str(text).replace("'", "''") + "'"

    def remove(conn, target):
        stage_var, _, prefix = target[1:].partition("/")
        catalog, schema, name = fs_stage.parts_from_var(stage_var, conn.database, conn.schema)
        lookup = fs_stage.stage_lookup_sql(catalog, schema, name, conn.table_stages)
        row = conn._duck_conn.execute(lookup).fetchone()
        if row is None:
            raise LookupError(f"SQL compilation error:\\nStage '{catalog}.{schema}.{name}' does not exist or not authorized.")
        root = fs_stage.internal_dir(row[0])
        removed = []
        for folder, _, files in os.walk(root):
            for f in files:
                path = os.path.join(folder, f)
                if os.path.relpath(path, root).startswith(prefix):
                    os.remove(path)
                    removed.append(fs_stage.internal_file_name(path))
        if not removed:
            return "SELECT 'x' AS \\"name\\", 'removed' AS \\"result\\" WHERE 1 = 0"
        return " UNION ALL ".join(f"SELECT {literal(n)} AS \\"name\\", 'removed' AS \\"result\\"" for n in removed)

    def table_parts(conn, text):
        t = parse_one(f"SELECT * FROM {text}", read="snowflake").find(exp.Table)
        parts = [p for p in (t.args.get("catalog"), t.args.get("db"), t.args.get("this")) if p is not None]
        names = [p.this if p.quoted else p.this.upper() for p in parts]
        return ([conn.database, conn.schema][: 3 - len(names)] + names)

    def swap(conn, a, b):
        ca, sa, na = table_parts(conn, a)
        cb, sb, nb = table_parts(conn, b)
        if (ca, sa) != (cb, sb):
            raise LookupError("the fake SWAP WITH swaps tables of one schema only")
        tmp = "_fs_swap_" + uuid.uuid4().hex[:12]
        q = lambda c, s, n: f'"{c}"."{s}"."{n}"'
        duck = conn._duck_conn
        duck.execute("BEGIN TRANSACTION")
        try:
            for c, s, n in ((ca, sa, na), (cb, sb, nb)):
                if not duck.execute(
                    "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
                    [c, s, n],
                ).fetchone():
                    raise LookupError(f"SQL compilation error:\\nObject '{c}.{s}.{n}' does not exist or not authorized.")
            duck.execute(f'ALTER TABLE {q(ca, sa, na)} RENAME TO "{tmp}"')
            duck.execute(f'ALTER TABLE {q(cb, sb, nb)} RENAME TO "{na}"')
            duck.execute(f'ALTER TABLE {q(ca, sa, tmp)} RENAME TO "{nb}"')
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise
        return "SELECT 'Statement executed successfully.' AS \\"status\\""

    async def rewrite(scope, receive, send, patch, entry=None):
        start, chunks = {}, []

        async def patched(msg):
            if msg["type"] == "http.response.start":
                start.update(msg)
                return
            chunks.append(msg.get("body", b""))
            if msg.get("more_body"):
                return
            body = patch(json.loads(b"".join(chunks) or b"{}"))
            if entry is not None and isinstance(body, dict):
                entry["success"] = bool(body.get("success"))
                entry["query_id"] = (body.get("data") or {}).get("queryId")
            out = json.dumps(body).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(out)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": out})

        return await fs.app(scope, receive, patched)

    async def query(scope, receive, send, entry):
        raw = await read_body(receive)
        gz = dict(scope["headers"]).get(b"content-encoding", b"").lower() == b"gzip"
        body = json.loads(gzip.decompress(raw) if gz else raw)
        sql = body.get("sqlText") or ""
        entry["sql"] = sql
        fault = take_fault("sql", sql)
        if fault:
            entry["success"] = False
            return await send_json(send, 200, error_body(fault.get("code", "100071"), fault["message"]))
        replaced = None
        try:
            m = REMOVE.match(sql)
            if m:
                replaced = remove(session_of(scope), m.group(1))
            m = SWAP.match(sql)
            if m:
                replaced = swap(session_of(scope), m.group(1), m.group(2))
        except LookupError as e:
            entry["success"] = False
            return await send_json(send, 200, error_body("002003", str(e), "02000"))
        if replaced is not None:
            body["sqlText"] = replaced
            raw = json.dumps(body).encode()
            headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-length", b"content-encoding")]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(raw)).encode())]}
        return await rewrite(scope, replay(raw), send, patch_stage_info, entry)

    async def control(scope, receive, send):
        raw = await read_body(receive)
        what = scope["path"][len(CONTROL):]
        if what == "log":
            return await send_json(send, 200, {"log": LOG})
        if what == "reset":
            LOG.clear()
            FAULTS.clear()
            return await send_json(send, 200, {})
        if what == "faults":
            FAULTS.append(json.loads(raw))
            return await send_json(send, 200, {})
        return await send_json(send, 404, {"message": "no such fake endpoint"})

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await fs.app(scope, receive, send)
        path = scope["path"]
        if path.startswith(CONTROL):
            return await control(scope, receive, send)
        entry = {"method": scope["method"], "path": path}
        LOG.append(entry)
        outer = send

        async def send(msg):
            if msg["type"] == "http.response.start":
                entry["status"] = msg["status"]
            await outer(msg)

        if path == LOGIN:
            return await rewrite(scope, receive, send, patch_login)
        if path == QUERY:
            return await query(scope, receive, send, entry)
        if path.startswith("/fs_bucket/") and scope["method"] == "HEAD":
            # GCS answers a presigned HEAD (the connector's existence probe): fakesnow routes only PUT
            local = os.path.normpath(os.path.join(fs_stage.LOCAL_BUCKET_PATH, path[len("/fs_bucket/"):]))
            found = local.startswith(fs_stage.LOCAL_BUCKET_PATH + os.sep) and os.path.isfile(local)
            size = os.path.getsize(local) if found else 0
            headers = [(b"content-length", str(size).encode())]
            await send({"type": "http.response.start", "status": 200 if found else 404, "headers": headers})
            return await send({"type": "http.response.body", "body": b""})
        if path.startswith("/fs_bucket/") and scope["method"] == "PUT":
            fault = take_fault("upload", path)
            if fault:
                await read_body(receive)
                out = b"<Error><Code>AccessDenied</Code><Message>injected by the fake</Message></Error>"
                status = int(fault.get("status", 403))
                headers = [(b"content-type", b"application/xml"), (b"content-length", str(len(out)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                return await send({"type": "http.response.body", "body": out})
        return await fs.app(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


@dataclass(frozen=True)
class FakesnowServer:
    """Where the fake Snowflake listens; ``connect_kwargs`` for ``snowflake.connector.connect``."""

    host: str
    port: int
    pid: int

    def _control(self, what: str, body: dict[str, object] | None = None) -> dict[str, object]:
        import json
        import urllib.request

        req = urllib.request.Request(
            f"http://{self.host}:{self.port}/__fake__/{what}",
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def requests(self) -> list[dict[str, object]]:
        """Every request the fake served since the last reset: method, path, and for queries sql/query_id/success."""
        return list(self._control("log")["log"])  # type: ignore[call-overload]

    def reset(self) -> None:
        """Forget the request log and any pending faults."""
        self._control("reset", {})

    def fail_sql(self, pattern: str, message: str = "injected failure", times: int = 1) -> None:
        """The next ``times`` statements matching ``pattern`` (a regex) fail with ``message``, unexecuted."""
        self._control("faults", {"kind": "sql", "pattern": pattern, "message": message, "times": times})

    def fail_upload(self, status: int = 400, times: int = 1) -> None:
        """The next ``times`` PUT uploads of files to the fake's storage answer ``status``.

        Connector 5.x takes a 400 as an expired presigned URL: it asks for a new one once, then gives up (a 403
        or 5xx is retried with back-off for several seconds). Pass ``times`` >= 2 to fail the upload for good.
        """
        self._control("faults", {"kind": "upload", "pattern": "", "status": status, "times": times})

    def connect_kwargs(self, database: str | None = None, schema: str | None = None) -> dict[str, object]:
        kw: dict[str, object] = {
            "account": "fakesnow",
            "user": "fake",
            "password": "snow",
            "host": self.host,
            "port": self.port,
            "protocol": "http",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            # connector 5.x warns unless told how a closed session ends (as mlstack's own connections do)
            "enable_server_session_keep_alive_auto_detection": False,
        }
        if database:
            kw["database"] = database
        if schema:
            kw["schema"] = schema
        return kw


def server_python() -> str | None:
    """The interpreter that has fakesnow + connector 4.x, or None."""
    env = os.environ.get(PYTHON_VAR)
    if env:
        return env if Path(env).exists() else None
    candidate = REPO / ".venv-fakesnow" / "bin" / "python"
    # bin/python exists as soon as another xdist worker starts making the venv: wait for its completion mark
    done = candidate.parent.parent / COMPLETE
    autocreate = os.environ.get("MLSTACK_FAKESNOW_AUTOCREATE", "1") == "1"
    if not done.exists() and autocreate:
        _create_server_venv(candidate.parent.parent)
    # a venv made by hand (autocreate off) has no mark: take it as it is
    return str(candidate) if candidate.exists() and (done.exists() or not autocreate) else None


# fakesnow 0.12.1's server speaks to the 4.x connector; the code under test uses whatever mlstack[snowflake]
# installs (5.x), so the server lives in its own virtualenv, made once on first use.
SERVER_REQUIREMENTS = ("fakesnow[server]==0.12.1", "snowflake-connector-python>=4,<5")
COMPLETE = ".mlstack-complete"  # written last: a venv without it is still being made (or broken)


def _create_server_venv(venv: Path) -> None:
    """Create the server's virtualenv once (xdist workers wait on a file lock for the first one)."""
    import fcntl
    import shutil
    import sys

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".venv-fakesnow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (venv / COMPLETE).exists():
                return
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            pip = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *SERVER_REQUIREMENTS],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if pip.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)  # never leave a half-made venv that looks usable
                raise RuntimeError(f"could not install the fakesnow server virtualenv: {pip.stderr[-2000:]}")
            (venv / COMPLETE).write_text("")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def fakesnow_server(python: str | None = None, deadline_s: float = 60.0) -> Iterator[FakesnowServer]:
    """Start the fake Snowflake server (loopback, free port), wait until it accepts, stop it by pid after."""
    python = python or server_python()
    if python is None:
        raise RuntimeError(
            f"no fakesnow server interpreter: set {PYTHON_VAR} or create .venv-fakesnow (see this module)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [python, "-c", _SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + deadline_s
        while not _ready(port):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"fakesnow server exited with {proc.returncode}: {err[-2000:]}")
            if time.monotonic() > end:
                raise RuntimeError(f"fakesnow server not ready on port {port} after {deadline_s}s")
            time.sleep(0.1)
        yield FakesnowServer("127.0.0.1", port, proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="session")
def fakesnow_server_info() -> Iterator[FakesnowServer]:
    """One fake Snowflake server per test session (per xdist worker)."""
    if server_python() is None:
        msg = f"fakesnow server virtualenv missing (set {PYTHON_VAR} or create .venv-fakesnow)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    with fakesnow_server() as srv:
        yield srv


@dataclass(frozen=True)
class SnowflakeConnection:
    """A connections.toml entry pointing at the fake server, and the database this test owns."""

    server: FakesnowServer
    home: Path
    connection_name: str
    database: str
    schema: str

    def manifest_section(self) -> dict[str, object]:
        return {
            "kind": "snowflake",
            "account": "fakesnow",
            "warehouse": "test_wh",
            "database": self.database,
            "schema": self.schema,
            "role": "test_role",
            "user": "fake",
            "connection_name": self.connection_name,
        }


def write_connections_toml(home: Path, name: str, server: FakesnowServer, **extra: object) -> Path:
    """Write ``home/connections.toml`` (mode 0600, as the connector requires) with one entry."""
    home.mkdir(parents=True, exist_ok=True)
    fields = {**server.connect_kwargs(), **extra}
    fields.pop("session_parameters", None)
    fields.pop("enable_server_session_keep_alive_auto_detection", None)
    lines = [f"[{name}]"]
    for k, v in fields.items():
        lines.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"')
    path = home / "connections.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def snowflake_connection(
    fakesnow_server_info: FakesnowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SnowflakeConnection:
    """A private SNOWFLAKE_HOME with a 'mlstack_test' connection to the fake, and a fresh database name."""
    home = tmp_path / "snowflake-home"
    write_connections_toml(home, "mlstack_test", fakesnow_server_info)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    fakesnow_server_info.reset()  # no request log or fault of an earlier test
    db = "db_" + uuid.uuid4().hex[:10]
    return SnowflakeConnection(fakesnow_server_info, home, "mlstack_test", db, "public")


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.support.snowflake
    with fakesnow_server() as s:
        sys.stdout.write(f"fake Snowflake on http://{s.host}:{s.port} (pid {s.pid}); Ctrl-C stops it\n")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)

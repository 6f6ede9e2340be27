"""Test support: Snowflake through fakesnow's server mode (the real connector over HTTP).

fakesnow 0.12.1 imports internals of snowflake-connector-python 4.x, while ``mlstack[snowflake]`` installs
the 5.x connector (a Rust rewrite). So the fake server runs from its own virtualenv with connector 4.x, as a
subprocess on a free loopback port, and the code under test talks to it with whatever connector it has.
Connector 5.x also wants ``masterToken``, ``validityInSeconds`` and ``sessionId`` in the login response, which fakesnow
does not send: a tiny ASGI shim in front of fakesnow's app adds them (values are placeholders; fakesnow
checks no credentials anyway).

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

# Runs inside the fakesnow virtualenv. Wraps fakesnow's Starlette app so logins satisfy connector 5.x.
_SERVER = textwrap.dedent(
    """
    import json, sys
    import uvicorn
    import fakesnow.server as fs

    LOGIN = "/session/v1/login-request"

    async def app(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != LOGIN:
            return await fs.app(scope, receive, send)
        start, chunks = {}, []

        async def patched(msg):
            if msg["type"] == "http.response.start":
                start.update(msg)
                return
            chunks.append(msg.get("body", b""))
            if msg.get("more_body"):
                return
            body = json.loads(b"".join(chunks) or b"{}")
            data = body.get("data") or {}
            if body.get("success") and isinstance(data, dict):
                data.setdefault("masterToken", "fake-master-" + str(data.get("token", "")))
                data.setdefault("validityInSeconds", 3600)
                data.setdefault("masterValidityInSeconds", 14400)
                data.setdefault("sessionId", abs(hash(data.get("token", ""))) % (10**12))
            out = json.dumps(body).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(out)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": out})

        return await fs.app(scope, receive, patched)

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


@dataclass(frozen=True)
class FakesnowServer:
    """Where the fake Snowflake listens; ``connect_kwargs`` for ``snowflake.connector.connect``."""

    host: str
    port: int
    pid: int

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
            pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *SERVER_REQUIREMENTS],
                                 capture_output=True, text=True, timeout=900)
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
    db = "db_" + uuid.uuid4().hex[:10]
    return SnowflakeConnection(fakesnow_server_info, home, "mlstack_test", db, "public")


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.support.snowflake
    with fakesnow_server() as s:
        sys.stdout.write(f"fake Snowflake on http://{s.host}:{s.port} (pid {s.pid}); Ctrl-C stops it\n")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)

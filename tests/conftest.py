"""Fixtures every layer's tests share.

- ``pulumi_run``: run a Pulumi program under the mock runtime with a recording monitor; returns a Recording
  (type, name, inputs, options, parent, registered outputs of every resource). Fails on an empty program.
- ``moto_s3``: a moto S3 server on loopback (fast functional tests; it checks no credentials).
- ``local_home``: an empty folder used as MLSTACK_HOME, with the manifest env cleared.
Servers that enforce auth (SeaweedFS) and the warehouse stand-ins (fakesnow server, a fake Databricks
Statement Execution server) have fixtures in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Nothing in the tests may reach beyond loopback. Snowflake's connector (5.x) probes cloud metadata services
# (169.254.169.254, metadata.google.internal) at login for telemetry, and botocore may ask IMDS for
# credentials: both are switched off for this process and every subprocess it starts.
os.environ["SNOWFLAKE_DISABLE_PLATFORM_DETECTION"] = "true"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

pytest_plugins = [
    "tests.support.seaweedfs",
    "tests.support.snowflake",
    "tests.support.databricks",
    "tests.support.argo",
]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's manifest, AWS profile or run state."""
    for var in (
        "MLSTACK_MANIFEST",
        "MLSTACK_HOME",
        "MLSTACK_RUN_ID",
        "MLSTACK_RUN_INPUTS",
        "AWS_PROFILE",
        "MLSTACK_DEBUG",
        "MLSTACK_STEP",
        "MLSTACK_PIPELINE",
        "MLSTACK_NO_PROGRESS",
        # no ambient AWS credentials or endpoints: a test that needs them sets its own
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # the stack is found by walking up from the current folder: never past this test's own tmp_path
    monkeypatch.setenv("MLSTACK_CEILING_DIRECTORIES", str(tmp_path.parent))
    import mlstack.run

    mlstack.run._current = None
    try:
        import mlstack.manifest

        mlstack.manifest._cache.clear()
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "stack"
    monkeypatch.setenv("MLSTACK_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def pulumi_run() -> Callable[..., Any]:
    """Run ``program`` under the mock runtime: ``pulumi_run(fn, config={"proj:key": "v"}, project=...)``."""
    from mlstack.plan import mock_runtime

    def _run(
        program: Callable[[], Any],
        *,
        config: dict[str, str] | None = None,
        project: str = "test",
        stack: str = "test",
    ) -> mock_runtime.Recording:
        rec = mock_runtime.run(program, project=project, stack=stack, config=config)
        dups = rec.duplicate_urns()
        assert not dups, f"duplicate URNs (the real engine rejects them): {dups}"
        return rec

    return _run


class _AtomicConditionalWrites:
    """WSGI middleware: moto checks If-Match / If-None-Match and then writes, without a lock, so two
    concurrent conditional writes can both succeed (a lost alias move under 8 processes). Real S3 and
    SeaweedFS decide them atomically; serialising conditional writes makes moto behave the same."""

    def __init__(self, app: Any) -> None:
        import threading

        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        conditional = environ.get("HTTP_IF_MATCH") or environ.get("HTTP_IF_NONE_MATCH")
        if environ.get("REQUEST_METHOD") in ("PUT", "POST") and conditional:
            with self.lock:
                return list(self.app(environ, start_response))  # the whole write inside the lock
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = _AtomicConditionalWrites(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def moto_s3(_moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Endpoint URL of a clean moto server, with dummy credentials in the environment."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{_moto_server}/moto-api/reset", method="POST"), timeout=10
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield _moto_server


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")

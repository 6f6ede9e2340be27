"""Bounded time on remote calls (issue 12, finding 9): a Databricks query against a dead host used to hang for
5+ minutes (the SDK's 300 s retry budget, spent twice: its host-metadata probe, then the call).

Now every call to the workspace has a budget (``$MLSTACK_DATABRICKS_TIMEOUT``, default 20 s: per HTTP request
and for the SDK's retries; the probe gets at most 5 s of it), like Snowflake's login (30 s). The dead hosts
here are real sockets on loopback: a closed port (connection refused) and a listener that never answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.data.databricks import DEFAULT_TIMEOUT, DatabricksSource
from mlstack.errors import ConfigError
from mlstack.manifest import DatabricksData
from tests.data.conftest import manifest_dict
from tests.support.databricks import FakeDatabricks


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that completes TCP handshakes and then never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def _query(tmp_path: Path, port: int, budget: str) -> subprocess.CompletedProcess[str]:
    section = {
        "kind": "databricks",
        "host": f"http://127.0.0.1:{port}",
        "warehouse_id": "w1",
        "catalog": "main",
        "schema": "default",
    }
    m = tmp_path / "dead.json"
    m.write_text(json.dumps(manifest_dict(section, tmp_path)), encoding="utf-8")
    env = {
        **os.environ,
        "DATABRICKS_TOKEN": "dapi-not-a-real-token",
        "DATABRICKS_CONFIG_FILE": str(tmp_path / "no-databrickscfg"),
        "MLSTACK_DATABRICKS_TIMEOUT": budget,
    }
    # without the budget this took over 5 minutes: the subprocess limit turns a hang into a failure
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "data", "query", "select 1", "-m", str(m)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def test_a_dead_host_fails_within_the_budget(tmp_path: Path, closed_port: int) -> None:
    proc = _query(tmp_path, closed_port, "2")
    assert proc.returncode == 1, proc.stderr
    assert f"cannot reach Databricks at http://127.0.0.1:{closed_port}" in proc.stderr
    assert "MLSTACK_DATABRICKS_TIMEOUT" in proc.stderr and "Traceback" not in proc.stderr
    assert (
        "host metadata" not in proc.stderr
    )  # the SDK's own warning about its probe is not the user's business


def test_a_host_that_never_answers_fails_within_the_budget(tmp_path: Path, silent_port: int) -> None:
    proc = _query(tmp_path, silent_port, "2")
    assert proc.returncode == 1, proc.stderr
    assert "cannot reach Databricks" in proc.stderr and "Traceback" not in proc.stderr


def test_the_client_carries_the_budget(
    fake_databricks: FakeDatabricks, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = DatabricksData.model_validate(fake_databricks.manifest_section())
    cfg = DatabricksSource(section).client.config
    assert cfg.http_timeout_seconds == DEFAULT_TIMEOUT and cfg.retry_timeout_seconds == DEFAULT_TIMEOUT
    assert DatabricksSource(section)._wait() == "10s"
    monkeypatch.setenv("MLSTACK_DATABRICKS_TIMEOUT", "7")
    cfg = DatabricksSource(section).client.config
    assert cfg.http_timeout_seconds == 7 and cfg.retry_timeout_seconds == 7
    assert DatabricksSource(section, timeout=3).client.config.retry_timeout_seconds == 3
    # the statement API may hold a request only while the budget leaves room for it
    assert DatabricksSource(section, timeout=3)._wait() == "0s"
    src = DatabricksSource(section, timeout=3)
    src.write("t", {"a": [1, 2]})
    assert src.read_arrow("select sum(a) as s from t").column(0).to_pylist() == [3]


def test_a_bad_budget_is_a_config_error(
    fake_databricks: FakeDatabricks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_DATABRICKS_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="MLSTACK_DATABRICKS_TIMEOUT"):
        _ = DatabricksSource(DatabricksData.model_validate(fake_databricks.manifest_section())).client

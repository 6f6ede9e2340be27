"""Helpers for the doctor tests: manifests, recorded Kubernetes objects, dead loopback endpoints."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """A recorded Kubernetes object (or list of them) from tests/doctor/fixtures/."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def manifest_dict(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "project": "demo",
        "stack": "test",
        "artifacts": {"kind": "local", "root": "/tmp/does-not-matter"},
        "data": {"kind": "local", "path": "/tmp/does-not-matter/w.duckdb"},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }
    base.update(sections)
    return base


K8S_COMPUTE = {
    "kind": "kubernetes",
    "cluster_name": "ml-gpu",
    "region": "us-east-1",
    "namespace": "ml-jobs",
    "service_account": "ml-jobs",
    "gpu": {
        "resource": "nvidia.com/gpu",
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
    },
}


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connect is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def _accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=_accept, daemon=True)
    t.start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        stop.set()
        t.join(timeout=2)
        for c in held:
            c.close()
        srv.close()

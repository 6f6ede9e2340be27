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


class Attempts:
    """Spies on the boto3 clients a check builds: their config and every HTTP attempt they send.

    Dead-endpoint tests assert behaviour (one attempt, no retries, the timeouts the doctor was given) instead
    of wall-clock seconds, which a loaded machine stretches."""

    def __init__(self) -> None:
        self.clients: list[Any] = []
        self.sent: list[tuple[str, str]] = []  # (operation, url) of each attempt, retries included

    def watch(self, client: Any) -> Any:
        def _sent(request: Any, event_name: str = "", **_: Any) -> None:
            self.sent.append((event_name.rsplit(".", 1)[-1], request.url))

        self.clients.append(client)
        client.meta.events.register("before-send", _sent)
        return client

    @staticmethod
    def settle() -> None:
        """Wait for the check threads the deadline left running (so late retries would be counted too)."""
        for t in threading.enumerate():
            if t.name.startswith("doctor:"):
                t.join(60)

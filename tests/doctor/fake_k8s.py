"""A loopback stand-in for the Kubernetes API server that answers GETs with recorded objects.

Only what the doctor's fetch layer reads: /version, nodes, daemonsets, deployments, a service account,
a ConfigMap, pods (by name and by label), events (by involvedObject.name) and Argo workflows. It exists to
prove that the unmodified ``kubernetes`` client, kubeconfig context selection and the doctor's conversion
to dicts work end to end; the checks' logic is tested on the same fixtures directly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml


class FakeApi:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.daemonsets: list[dict[str, Any]] = []
        self.deployments: list[dict[str, Any]] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace, name)
        self.events: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def add(self, kind: str, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        self.objects[(kind, md.get("namespace", ""), md["name"])] = obj

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            return 200, {
                "major": "1",
                "minor": "31+",
                "gitVersion": "v1.31.2-eks-7f9249a",
                "gitCommit": "7f9249a6d4a8e2a5c8e7e4f0e9b5d6c1a2b3c4d5",
                "gitTreeState": "clean",
                "buildDate": "2026-10-22T21:46:19Z",
                "goVersion": "go1.22.8",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path == "/api/v1/nodes":
            return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": self.nodes}
        if path == "/apis/apps/v1/daemonsets":
            return 200, {
                "apiVersion": "apps/v1",
                "kind": "DaemonSetList",
                "metadata": {},
                "items": self.daemonsets,
            }
        if path == "/apis/apps/v1/deployments":
            return 200, {
                "apiVersion": "apps/v1",
                "kind": "DeploymentList",
                "metadata": {},
                "items": self.deployments,
            }
        if len(parts) == 4 and parts[:3] == ["api", "v1", "namespaces"]:
            obj = self.objects.get(("namespaces", "", parts[3]))
            return (200, obj) if obj else (404, _not_found("namespaces", parts[3]))
        if (
            len(parts) == 6
            and parts[:3] == ["apis", "argoproj.io", "v1alpha1"]
            and parts[5] == "workflowtemplates"
        ):
            items = [
                o for (kd, n, _), o in self.objects.items() if kd == "workflowtemplates" and n == parts[4]
            ]
            return 200, {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplateList", "items": items}
        if len(parts) >= 5 and parts[:3] == ["api", "v1", "namespaces"]:
            ns, kind = parts[3], parts[4]
            if len(parts) == 6:
                obj = self.objects.get((kind, ns, parts[5]))
                return (200, obj) if obj else (404, _not_found(kind, parts[5]))
            if kind == "events":
                sel = (query.get("fieldSelector") or [""])[0]
                name = sel.split("=", 1)[1] if sel.startswith("involvedObject.name=") else None
                items = [e for e in self.events if name is None or e["involvedObject"]["name"] == name]
                return 200, {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}
            if kind == "pods":
                sel = (query.get("labelSelector") or [""])[0]
                k, _, v = sel.partition("=")
                items = [
                    o
                    for (kd, n, _), o in self.objects.items()
                    if kd == "pods" and n == ns and (not k or o["metadata"].get("labels", {}).get(k) == v)
                ]
                return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
        if len(parts) == 7 and parts[:3] == ["apis", "argoproj.io", "v1alpha1"] and parts[5] == "workflows":
            obj = self.objects.get(("workflows", parts[4], parts[6]))
            return (200, obj) if obj else (404, _not_found("workflows", parts[6]))
        return 404, _not_found("path", path)


def _not_found(kind: str, name: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": f'{kind} "{name}" not found',
        "reason": "NotFound",
        "code": 404,
    }


@contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            api.requests.append(self.path)
            code, body = api.answer(url.path.rstrip("/") or "/", parse_qs(url.query))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def write_kubeconfig(path: Path, server: str, cluster: str = "ml-gpu", region: str = "us-east-1") -> Path:
    """A kubeconfig shaped like `aws eks update-kubeconfig` output, but with a static token for the fake."""
    arn = f"arn:aws:eks:{region}:123456789012:cluster/{cluster}"
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": arn,
        "clusters": [{"name": arn, "cluster": {"server": server}}],
        "contexts": [{"name": arn, "context": {"cluster": arn, "user": arn}}],
        "users": [{"name": arn, "user": {"token": "fake-token"}}],
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path

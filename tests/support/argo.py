"""A fake Argo Workflows server (named as a fake: no emulator of the Argo server exists), on loopback.

It answers the REST endpoints mlstack uses the way Argo's server does (paths, request bodies, status codes
and the gRPC-style error bodies ``{"code": N, "message": ...}``), keeps objects per namespace with server-set
metadata (uid, resourceVersion, creationTimestamp), and records every request:

- ``/api/v1/workflow-templates/{ns}``: POST create (409 when it exists), GET list; ``.../{name}``: GET, PUT
  (409 on a stale ``resourceVersion``), DELETE
- ``/api/v1/cron-workflows/{ns}``: POST create, GET list (``listOptions.labelSelector``; ``"items": null``
  when empty, items without kind/apiVersion like a Kubernetes list); ``.../{name}``: GET, PUT, DELETE. Create
  and update validate like Argo's ``ValidateCronWorkflow``: a name of at most 52 characters, at least one
  schedule, a known timezone and concurrencyPolicy, ``startingDeadlineSeconds >= 0``, and a
  ``workflowTemplateRef`` naming a WorkflowTemplate that exists in the namespace
- ``/api/v1/workflows/{ns}/submit``: POST, from an existing WorkflowTemplate (``creationTimestamp``:
  ``handler.submitted_at``)
- ``/api/v1/workflows/{ns}/{name}``: GET, scripted: ``handler.frames[name]`` is a list of Workflow objects
  returned one per GET (the last one repeats), as the controller would advance it (``pod_node()`` and
  ``workflow()`` build them); ``.../{name}/log``: GET, newline-delimited ``{"result": {"content", "podName"}}``
  from ``handler.logs[name]`` (``(podName, line)`` pairs; ``podName=`` filters), 404 for an unknown workflow

Every request needs ``Authorization: Bearer <token>`` (401 otherwise). Tests may set an object's ``status``
(as Argo's controller would) through ``handler.cron_workflows``.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

# gRPC codes the Argo server puts in error bodies
_NOT_FOUND, _ALREADY_EXISTS, _INVALID, _ABORTED, _UNAUTHENTICATED = 5, 6, 3, 10, 16
_KINDS = {
    "workflow-templates": ("template", "WorkflowTemplate", "workflowtemplates.argoproj.io"),
    "cron-workflows": ("cronWorkflow", "CronWorkflow", "cronworkflows.argoproj.io"),
}


class FakeArgo(BaseHTTPRequestHandler):
    """Request handler; each fixture makes a subclass with its own state."""

    templates: dict[str, dict[str, Any]]  # "namespace/name" -> WorkflowTemplate
    cron_workflows: dict[str, dict[str, Any]]  # "namespace/name" -> CronWorkflow
    requests: list[tuple[str, str, dict[str, Any] | None, str | None]]
    versions: Iterator[int]
    lock: threading.Lock
    frames: dict[str, list[dict[str, Any]]]  # workflow name -> what each GET returns (the last repeats)
    logs: dict[str, list[tuple[str, str]]]  # workflow name -> (podName, line)
    submitted_at: str
    token = "s3cret"

    # ------------------------------------------------------------ plumbing
    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, http: int, grpc: int, message: str) -> None:
        self._reply(http, {"code": grpc, "message": message})

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((method, self.path, body, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, _UNAUTHENTICATED, "token not valid")
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = parse_qs(url.query)
        with self.lock:
            if parts[:2] == ["api", "v1"] and len(parts) >= 4 and parts[2] in _KINDS:
                return self._object(
                    method, parts[2], parts[3], parts[4] if len(parts) > 4 else None, body, query
                )
            if parts[:3] == ["api", "v1", "workflows"] and len(parts) == 5 and parts[4] == "submit":
                return self._submit(method, parts[3], body or {})
            if parts[:3] == ["api", "v1", "workflows"] and len(parts) in (5, 6) and method == "GET":
                return self._workflow(parts[4], parts[5] if len(parts) == 6 else None, query)
        return self._error(404, _NOT_FOUND, f"no route for {method} {url.path}")

    def _store(self, resource: str) -> dict[str, dict[str, Any]]:
        return self.templates if resource == "workflow-templates" else self.cron_workflows

    # ------------------------------------------------------------ workflow templates and cron workflows
    def _object(
        self, method: str, resource: str, ns: str, name: str | None, body: Any, query: dict[str, list[str]]
    ) -> None:
        key, kind, plural = _KINDS[resource]
        store = self._store(resource)
        if name is None and method == "GET":
            return self._reply(200, self._list(store, ns, query))
        if name is None and method == "POST":
            obj = (body or {}).get(key)
            if not isinstance(obj, dict):
                return self._error(400, _INVALID, f"{key} is required")
            meta = obj.setdefault("metadata", {})
            meta.setdefault("namespace", ns)
            if meta["namespace"] != ns:
                return self._error(400, _INVALID, "the namespace of the object does not match the request")
            oname = meta.get("name")
            if not oname:
                return self._error(400, _INVALID, "metadata.name is required")
            if f"{ns}/{oname}" in store:
                return self._error(409, _ALREADY_EXISTS, f'{plural} "{oname}" already exists')
            problem = self._validate(resource, ns, obj)
            if problem:
                return self._error(400, _INVALID, problem)
            meta.pop("resourceVersion", None)
            meta.update(
                uid=str(uuid.uuid4()),
                resourceVersion=str(next(self.versions)),
                creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                generation=1,
            )
            obj.update(apiVersion="argoproj.io/v1alpha1", kind=kind)
            store[f"{ns}/{oname}"] = obj
            return self._reply(200, obj)
        current = store.get(f"{ns}/{name}")
        if current is None:
            return self._error(404, _NOT_FOUND, f'{plural} "{name}" not found')
        if method == "GET":
            return self._reply(200, current)
        if method == "DELETE":
            del store[f"{ns}/{name}"]
            return self._reply(200, {})
        if method == "PUT":
            obj = (body or {}).get(key)
            if not isinstance(obj, dict):
                return self._error(400, _INVALID, f"{key} is required")
            meta = obj.setdefault("metadata", {})
            if meta.get("name") != name:
                return self._error(400, _INVALID, "metadata.name does not match the request")
            if meta.get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return self._error(
                    409,
                    _ABORTED,
                    f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            problem = self._validate(resource, ns, obj)
            if problem:
                return self._error(400, _INVALID, problem)
            keep = {
                k: current["metadata"][k] for k in ("uid", "creationTimestamp") if k in current["metadata"]
            }
            meta.update(
                keep,
                namespace=ns,
                resourceVersion=str(next(self.versions)),
                generation=current["metadata"].get("generation", 1) + 1,
            )
            obj.update(apiVersion="argoproj.io/v1alpha1", kind=kind)
            if "status" in current and "status" not in obj:  # the controller's status survives a spec update
                obj["status"] = current["status"]
            store[f"{ns}/{name}"] = obj
            return self._reply(200, obj)
        return self._error(405, _INVALID, f"{method} is not allowed here")

    def _list(self, store: dict[str, dict[str, Any]], ns: str, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted: dict[str, str] = {}
        for sel in query.get("listOptions.labelSelector", []):
            for clause in filter(None, sel.split(",")):
                k, _, v = clause.partition("=")
                wanted[k.strip()] = v.strip().lstrip("=")
        items = []
        for key, obj in sorted(store.items()):
            labels = obj.get("metadata", {}).get("labels") or {}
            if key.split("/", 1)[0] == ns and all(labels.get(k) == v for k, v in wanted.items()):
                items.append({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
        # Argo (grpc-gateway) renders an empty repeated field as null
        return {"metadata": {"resourceVersion": str(next(self.versions))}, "items": items or None}

    def _validate(self, resource: str, ns: str, obj: dict[str, Any]) -> str | None:
        if resource != "cron-workflows":
            return None
        name = obj["metadata"].get("name", "")
        spec = obj.get("spec") or {}
        if len(name) > 52:
            return f'cron workflow name "{name}" must not be more than 52 characters long (currently {len(name)})'
        schedules = list(spec.get("schedules") or [])
        if not schedules:
            return "cron workflow must have at least one schedule"
        for s in schedules:  # the shape only; the real server parses with robfig/cron
            if not isinstance(s, str) or not (s.startswith("@") or len(s.split()) == 5):
                return f"cron schedule {s} is malformed"
        tz = spec.get("timezone")
        if tz:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                return f'invalid timezone "{tz}"'
        if spec.get("concurrencyPolicy", "") not in ("Allow", "Forbid", "Replace", ""):
            return f"'{spec['concurrencyPolicy']}' is not a valid concurrencyPolicy"
        if (spec.get("startingDeadlineSeconds") or 0) < 0:
            return "startingDeadlineSeconds must be positive"
        ref = (spec.get("workflowSpec") or {}).get("workflowTemplateRef")
        if ref and f"{ns}/{ref.get('name')}" not in self.templates:
            return f'cannot validate Workflow: workflowtemplates.argoproj.io "{ref.get("name")}" not found'
        if not ref and not (spec.get("workflowSpec") or {}).get("templates"):
            return "cannot validate Workflow: spec.templates is required"
        return None

    # ------------------------------------------------------------ submit
    def _submit(self, method: str, ns: str, body: dict[str, Any]) -> None:
        if method != "POST":
            return self._error(405, _INVALID, f"{method} is not allowed here")
        name = body.get("resourceName")
        if body.get("resourceKind") != "WorkflowTemplate" or f"{ns}/{name}" not in self.templates:
            return self._error(404, _NOT_FOUND, f'workflowtemplates.argoproj.io "{name}" not found')
        return self._reply(
            200,
            {"metadata": {"name": f"{name}-x7k2p", "namespace": ns, "creationTimestamp": self.submitted_at}},
        )

    # ------------------------------------------------------------ workflows (scripted) and their logs
    def _workflow(self, name: str, sub: str | None, query: dict[str, list[str]]) -> None:
        if sub == "log":
            if name not in self.logs:
                return self._error(404, _NOT_FOUND, f'workflows.argoproj.io "{name}" not found')
            pod = (query.get("podName") or [None])[0]
            lines = [(p, t) for p, t in self.logs[name] if pod in (None, p)]
            data = "".join(
                json.dumps({"result": {"content": t, "podName": p}}) + "\n" for p, t in lines
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if sub is not None:
            return self._error(404, _NOT_FOUND, f"no route for GET workflows/{name}/{sub}")
        frames = self.frames.get(name)
        if not frames:
            return self._error(404, _NOT_FOUND, f'workflows.argoproj.io "{name}" not found')
        return self._reply(200, frames.pop(0) if len(frames) > 1 else frames[0])

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_argo() -> Iterator[tuple[str, type[FakeArgo]]]:
    """``(url, handler)``: the fake server's base URL and its handler class holding the state."""
    handler = type(
        "Handler",
        (FakeArgo,),
        {
            "templates": {},
            "cron_workflows": {},
            "requests": [],
            "versions": itertools.count(1),
            "lock": threading.Lock(),
            "frames": {},
            "logs": {},
            "submitted_at": "2026-11-30T10:00:00Z",
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pod_node(
    name: str,
    template: str,
    phase: str,
    *,
    display: str | None = None,
    result: Any = None,
    started: str = "2026-11-30T10:00:01Z",
    finished: str | None = "2026-11-30T10:00:03Z",
    message: str = "",
) -> dict[str, Any]:
    """A Pod node of a workflow's status, as the Argo server returns it (``display``: ``train(2:0.5)``)."""
    node: dict[str, Any] = {
        "id": name,
        "name": name,
        "displayName": display or template,
        "type": "Pod",
        "templateName": template,
        "phase": phase,
        "startedAt": started,
    }
    if finished and phase in ("Succeeded", "Failed", "Error"):
        node["finishedAt"] = finished
    if result is not None:
        node["outputs"] = {"parameters": [{"name": "result", "value": json.dumps(result)}], "exitCode": "0"}
    if message:
        node["message"] = message
    return node


def workflow(
    name: str, phase: str, nodes: list[dict[str, Any]], namespace: str = "ml-jobs"
) -> dict[str, Any]:
    """A Workflow as ``GET /api/v1/workflows/{ns}/{name}`` returns it, with these pod nodes."""
    status: dict[str, Any] = {
        "phase": phase,
        "startedAt": "2026-11-30T10:00:00Z",
        "nodes": {n["id"]: n for n in nodes},
    }
    if phase in ("Succeeded", "Failed", "Error"):
        status["finishedAt"] = "2026-11-30T10:00:09Z"
    return {"metadata": {"name": name, "namespace": namespace}, "status": status}

"""Following an Argo run from the Argo server API: the same live step table as a local run, and its logs.

``follow()`` polls ``GET /api/v1/workflows/{ns}/{name}`` and turns the workflow's pod nodes into step
events (a fan-out branch is ``train(2:0.5)`` in Argo's node names: index 2); Ctrl-C stops following, never the
workflow. ``print_logs()`` streams ``GET /api/v1/workflows/{ns}/{name}/log`` (pod logs while the pods exist);
when the server cannot give them, ``mlstack runs logs`` reads the log blobs the pods stored with the run.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlstack.errors import BackendError

_PHASE = {
    "Pending": "pending",
    "Running": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Error": "failed",
    "Skipped": "skipped",
    "Omitted": "skipped",
}
_INDEX = re.compile(r"\((\d+):")
DONE = ("Succeeded", "Failed", "Error")


@dataclass
class ArgoStep:
    """A step or branch as the workflow's nodes show it (what RunView and the summary read)."""

    name: str
    index: int | None = None
    status: str = "pending"
    attempts: int = 0
    seconds: float | None = None
    preview: str | None = None
    reused_from: dict[str, Any] | None = None
    why: str | None = None
    log_tail: str = ""
    t0: float | None = None
    exit_code: int | None = None

    @property
    def label(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def steps_of(pipe: Any, wf: dict[str, Any]) -> list[ArgoStep]:
    """One ArgoStep per step (per branch) in pipeline order, from the workflow's pod nodes."""
    from mlstack.pipeline.argo import dns
    from mlstack.pipeline.entry import preview

    by_template = {dns(n): n for n in pipe.steps}
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for node in (wf.get("status") or {}).get("nodes", {}).values():
        if node.get("type") != "Pod":
            continue
        name = by_template.get(node.get("templateName") or "")
        if name is None:
            continue
        m = _INDEX.search(node.get("displayName") or node.get("name") or "")
        idx = int(m.group(1)) if m and pipe.steps[name].foreach is not None else None
        groups.setdefault((name, idx), []).append(node)
    out: list[ArgoStep] = []
    for name in pipe.validate():
        keys = sorted((k for k in groups if k[0] == name), key=lambda k: -1 if k[1] is None else k[1])
        if not keys:
            out.append(ArgoStep(name))
            continue
        for key in keys:
            pods = sorted(groups[key], key=lambda n: n.get("startedAt") or "")
            last = pods[-1]
            st = ArgoStep(name, key[1], _PHASE.get(last.get("phase", ""), "pending"), attempts=len(pods))
            t0, t1 = _ts(pods[0].get("startedAt")), _ts(last.get("finishedAt"))
            if t0 is not None:
                st.seconds = (t1 or time.time()) - t0
                st.t0 = time.monotonic() - ((t1 or time.time()) - t0)
            for p in (last.get("outputs") or {}).get("parameters") or []:
                if p.get("name") == "result" and p.get("value") is not None:
                    try:
                        st.preview = preview(json.loads(p["value"]))
                    except ValueError:
                        st.preview = preview(p["value"])
            code = (last.get("outputs") or {}).get("exitCode")
            st.exit_code = int(code) if isinstance(code, str) and code.lstrip("-").isdigit() else None
            if st.status == "failed":
                st.log_tail = last.get("message") or ""
            out.append(st)
    return out


def get_workflow(runner: Any, namespace: str, name: str) -> dict[str, Any]:
    code, wf = runner._request("GET", f"{runner.server()}/api/v1/workflows/{namespace}/{name}")
    runner._check(code, wf, f"read workflow {namespace}/{name}")
    return dict(wf)


def follow(
    runner: Any,
    pipe: Any,
    namespace: str,
    name: str,
    on_event: Callable[[str, Any], None],
    *,
    poll: float | None = None,
    timeout: float | None = None,
) -> tuple[dict[str, Any], list[ArgoStep], bool]:
    """Poll the workflow until it ends: ``(workflow, steps, finished)``; finished is False after Ctrl-C
    (the workflow keeps running: following stops, nothing is sent to the server)."""
    if poll is None:
        poll = float(os.environ.get("MLSTACK_ARGO_POLL") or 1.0)
    seen: dict[str, tuple[str, int]] = {}
    wf: dict[str, Any] = {}
    steps: list[ArgoStep] = []
    end = None if timeout is None else time.monotonic() + timeout
    for s in pipe.validate():
        on_event("pending", ArgoStep(s))
    try:
        while True:
            wf = get_workflow(runner, namespace, name)
            steps = steps_of(pipe, wf)
            for st in steps:
                if st.status == "pending" and st.index is None and st.attempts == 0:
                    continue
                state = (st.status, st.attempts)
                if seen.get(st.label) != state:
                    seen[st.label] = state
                    on_event(st.status, st)
            if (wf.get("status") or {}).get("phase") in DONE:
                return wf, steps, True
            if end is not None and time.monotonic() > end:
                return wf, steps, False
            time.sleep(poll)
    except KeyboardInterrupt:
        return wf, steps, False


# ---------------------------------------------------------------------- logs
def _pods_of(run: Any, step: str | None) -> dict[str, str]:
    """pod name -> step label, from the run's step records (each pod records its own name)."""
    out: dict[str, str] = {}
    for s in run.steps.flat():
        pod = s.doc.get("pod")
        if not pod:
            continue
        if step is None or s.label == step or s.name == step:
            out[pod] = s.label
    return out


def print_logs(run: Any, step: str | None, *, follow: bool, manifest: Any, out: Any = None) -> bool:
    """Stream pod logs through the Argo server; False when the server cannot give them (use the store)."""
    from mlstack.pipeline.argo import ArgoRunner

    out = out or sys.stdout
    orch = run.orchestrator
    ns, name = orch.get("namespace"), orch.get("workflow") or run.id
    try:
        runner = ArgoRunner(manifest, timeout=30.0 if not follow else 3600.0)
        base = runner.server()
    except Exception:
        return False
    pods = _pods_of(run, step)
    if step is not None and not pods:
        return False
    query = {"logOptions.container": "main"}
    if follow:
        query["logOptions.follow"] = "true"
    targets: list[str | None] = sorted(pods) if step is not None else [None]
    wrote = False
    for pod in targets:
        q = dict(query)
        if pod:
            q["podName"] = pod
        url = f"{base}/api/v1/workflows/{ns}/{name}/log?{urllib.parse.urlencode(q)}"
        try:
            for line in _stream(runner, url):
                try:
                    res = json.loads(line).get("result") or {}
                except ValueError:
                    continue
                label = pods.get(res.get("podName", ""), res.get("podName", ""))
                out.write(f"{label}: {res.get('content', '')}\n")
                wrote = True
        except (BackendError, urllib.error.URLError, OSError):
            return wrote
    out.flush()
    return wrote


def _stream(runner: Any, url: str) -> Any:
    req = urllib.request.Request(url, method="GET")
    req.add_header("Accept", "application/json")
    if runner.token:
        tok = runner.token if runner.token.lower().startswith("bearer ") else f"Bearer {runner.token}"
        req.add_header("Authorization", tok)
    ctx = runner._ssl_context(url)
    try:
        resp = urllib.request.urlopen(req, timeout=runner.timeout, context=ctx)
    except urllib.error.HTTPError as exc:
        raise BackendError(
            f"the Argo server answered HTTP {exc.code} for the logs",
            fix="see `mlstack runs logs` without the server",
        ) from None
    with resp:
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                yield line

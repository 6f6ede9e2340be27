"""Orchestrator checks (Argo): the workflow controller is ready; the manifest ConfigMap exists and equals
the manifest in use (a difference is drift, reported field by field)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from mlstack.doctor import kube
from mlstack.doctor.core import Check, Finding, Sink, error_text, fail, ok, warn
from mlstack.manifest import ArgoOrchestrator, KubernetesCompute, Manifest


def jobs_namespace(m: Manifest) -> str:
    if isinstance(m.compute, KubernetesCompute):
        return m.compute.namespace
    assert isinstance(m.orchestrator, ArgoOrchestrator)
    return m.orchestrator.namespace


def argo_findings(cluster: Any, m: Manifest, sink: Sink) -> None:
    o = m.orchestrator
    assert isinstance(o, ArgoOrchestrator) and isinstance(m.compute, KubernetesCompute)
    try:
        sink.add(kube.controller_finding(cluster.deployments()))
    except Exception as exc:
        f = kube.api_error(exc, m.compute, "listing deployments")
        sink.add(fail("orchestrator.controller", f.detail, f.fix or ""))
        return
    if not o.configmap:
        sink.add(
            fail(
                "orchestrator.manifest",
                "orchestrator.configmap is not set: drift between this manifest and the cluster cannot be checked",
                "set orchestrator.configmap to the ConfigMap the stack writes (`mlstack outputs` shows it)",
            )
        )
        return
    ns = jobs_namespace(m)
    try:
        cm = cluster.configmap(ns, o.configmap)
    except Exception as exc:
        f = kube.api_error(exc, m.compute, f"reading ConfigMap {ns}/{o.configmap}")
        sink.add(fail("orchestrator.manifest", f.detail, f.fix or ""))
        return
    if cm is not None:
        sink.add(ok("orchestrator.manifest", f"ConfigMap {ns}/{o.configmap} present"))
    sink.extend(kube.drift_findings(cm, m.to_dict(), f"{ns}/{o.configmap}"))
    try:
        sink.extend(pod_security_findings(ns, cluster.namespace(ns), cluster.workflow_templates(ns)))
    except Exception as exc:  # reading them is a bonus: say why it was not checked, never fail the run
        sink.add(warn("orchestrator.pod_security", f"not checked: {error_text(exc)[:160]}", ""))


def pod_security_findings(
    ns: str, namespace: dict[str, Any] | None, templates: list[dict[str, Any]]
) -> list[Finding]:
    """The jobs namespace's Pod Security level, and every WorkflowTemplate step that runs as root.

    Pipelines run non-root by default; a step marked ``@step(run_as_root=True)`` needs the namespace lowered
    from ``restricted``. Both are reported as warnings so the choice stays visible.
    """
    from mlstack.pipeline import security

    out: list[Finding] = []
    if namespace is not None:
        level = ((namespace.get("metadata") or {}).get("labels") or {}).get(
            "pod-security.kubernetes.io/enforce"
        )
        if level == "restricted":
            out.append(ok("orchestrator.pod_security", f"namespace {ns} enforces Pod Security 'restricted'"))
        else:
            out.append(
                warn(
                    "orchestrator.pod_security",
                    f"namespace {ns} enforces Pod Security {level or 'nothing'!r}, not 'restricted': "
                    "pods may run as root there",
                    "EksGpuCluster(jobs_pod_security='restricted') unless a run_as_root step needs it",
                )
            )
    for wt in templates:
        spec = wt.get("spec") or {}
        pod = spec.get("securityContext")
        name = (wt.get("metadata") or {}).get("name")
        for t in spec.get("templates") or []:
            if not isinstance(t, dict) or not ("container" in t or "script" in t):
                continue
            container = (t.get("container") or t.get("script") or {}).get("securityContext")
            if security.runs_as_root(t.get("securityContext") or pod, container):
                out.append(
                    warn(
                        "orchestrator.pod_security",
                        f"WorkflowTemplate {ns}/{name}: step {t.get('name')!r} runs as root",
                        "drop run_as_root=True from the step (or run the template through `mlstack render`, "
                        "which makes pods non-root) unless the step truly needs root",
                    )
                )
    return out


def server_finding(server_url: str, timeout: float) -> Finding:
    """The Argo server (UI and API) answers ``/api/v1/version``; 401/403 still proves it is up."""
    url = server_url.rstrip("/") + "/api/v1/version"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
        version = body.get("version") if isinstance(body, dict) else None
        return ok(
            "orchestrator.server",
            f"Argo server at {server_url} answers" + (f" (Argo {version})" if version else ""),
        )
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return ok(
                "orchestrator.server",
                f"Argo server at {server_url} answers (HTTP {exc.code}: login required)",
            )
        return warn(
            "orchestrator.server",
            f"Argo server at {server_url} answered HTTP {exc.code} to /api/v1/version",
            "check orchestrator.server_url: it should be the Argo server's base URL",
        )
    except (OSError, ValueError) as exc:  # URLError, timeouts and connection errors are OSErrors
        return fail(
            "orchestrator.server",
            f"Argo server at {server_url} is unreachable: {error_text(exc)}",
            "check orchestrator.server_url and the network path to it "
            "(kubectl -n <argo namespace> port-forward svc/argo-server 2746:2746 to reach it privately)",
        )


def checks(m: Manifest) -> list[Check]:
    o = m.orchestrator
    if not isinstance(o, ArgoOrchestrator):
        return [
            Check("orchestrator.local", lambda sink, t: sink.add(ok("orchestrator.local", "local runner")))
        ]
    if not isinstance(m.compute, KubernetesCompute):

        def _bad(sink: Sink, timeout: float) -> None:
            sink.add(
                fail(
                    "orchestrator.controller",
                    "orchestrator kind 'argo' needs compute kind 'kubernetes' (the cluster Argo runs in)",
                    "set the compute section to the Kubernetes cluster (`mlstack outputs` of the deployed stack)",
                )
            )

        return [Check("orchestrator.controller", _bad)]
    kc = m.compute

    def _argo(sink: Sink, timeout: float) -> None:
        from mlstack.doctor.compute import connect

        cluster = connect(kc, timeout, None)
        if cluster is None:
            sink.add(
                fail(
                    "orchestrator.controller",
                    "not checked: no usable kubeconfig context for the cluster (see compute.context)",
                    kube.update_kubeconfig(kc),
                )
            )
            return
        argo_findings(cluster, m, sink)

    out = [
        Check(
            "orchestrator.controller",
            _argo,
            f"check the network path to the {kc.cluster_name} endpoint, then: {kube.update_kubeconfig(kc)}",
        )
    ]
    if o.server_url:
        url = o.server_url
        out.append(
            Check(
                "orchestrator.server",
                lambda sink, t: sink.add(server_finding(url, t)),
                f"check that {url} is reachable from here (network, VPN, ingress)",
            )
        )
    return out

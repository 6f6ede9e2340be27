"""Kubernetes and Argo rules: no cluster-admin for workloads, no privileged pods, pinned charts and images,
an authenticated Argo server, artifacts through IRSA rather than static keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlstack.plan.mock_runtime import Resource, is_secret
from mlstack.plan.policy.engine import Context, as_list, rule

K = "kubernetes:"
WORKLOADS = tuple(
    K + t
    for t in (
        "core/v1:Pod",
        "apps/v1:Deployment",
        "apps/v1:DaemonSet",
        "apps/v1:StatefulSet",
        "batch/v1:Job",
        "batch/v1:CronJob",
    )
)
BINDINGS = (
    K + "rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    K + "rbac.authorization.k8s.io/v1:RoleBinding",
)
ROLES = (K + "rbac.authorization.k8s.io/v1:ClusterRole", K + "rbac.authorization.k8s.io/v1:Role")
RELEASE = (K + "helm.sh/v3:Release",)
ADMIN_ROLES = {"cluster-admin", "admin", "edit"}


def _pod_spec(i: dict[str, Any], kind: str) -> dict[str, Any]:
    spec = i.get("spec") or {}
    if kind.endswith(":Pod"):
        return spec
    if kind.endswith(":CronJob"):
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _containers(ps: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c for c in as_list(ps.get("containers")) + as_list(ps.get("initContainers")) if isinstance(c, dict)
    ]


@rule(
    "K8S-001",
    "high",
    "kubernetes",
    "privileged container or host namespaces",
    "drop privileged/hostNetwork/hostPID; grant only the capabilities the container needs",
    WORKLOADS,
)
def _privileged(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    ps = _pod_spec(ctx.inputs(r), r.type)
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if ps.get(flag) is True:
            yield f"{r.name} sets {flag}"
    for c in _containers(ps):
        if ((c.get("securityContext") or {}).get("privileged")) is True:
            yield f"{r.name}: container {c.get('name')} is privileged"


@rule(
    "K8S-002",
    "medium",
    "kubernetes",
    "container image not pinned",
    "pin images to a version tag or digest (never ':latest' or no tag)",
    WORKLOADS,
)
def _image_pinned(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for c in _containers(_pod_spec(ctx.inputs(r), r.type)):
        img = str(c.get("image") or "")
        last = img.rsplit("/", 1)[-1]
        if img and "@" not in img and (":" not in last or last.endswith(":latest")):
            yield f"{r.name}: container {c.get('name')} image {img!r} is not pinned"


@rule(
    "K8S-003",
    "high",
    "kubernetes",
    "workload identity bound to an admin ClusterRole",
    "bind the service account to a Role with only the verbs and resources it needs",
    BINDINGS,
)
def _admin_binding(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    role = (i.get("roleRef") or {}).get("name")
    if role in ADMIN_ROLES and (i.get("roleRef") or {}).get("kind") == "ClusterRole":
        for s in as_list(i.get("subjects")):
            if isinstance(s, dict) and s.get("kind") in ("ServiceAccount", "Group"):
                yield f"{r.name} binds {s.get('kind')} {s.get('name')} to ClusterRole {role}"


@rule(
    "K8S-004",
    "medium",
    "kubernetes",
    "RBAC role with wildcard verbs or resources",
    "list the verbs and resources explicitly",
    ROLES,
)
def _wildcard_role(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for x in as_list(ctx.inputs(r).get("rules")):
        if not isinstance(x, dict):
            continue
        if "*" in as_list(x.get("verbs")) or "*" in as_list(x.get("resources")):
            yield f"{r.name} grants verbs {x.get('verbs')} on {x.get('resources')}"


@rule(
    "K8S-005",
    "medium",
    "kubernetes",
    "Helm chart version not pinned",
    "set version= on the helm Release so an upgrade never changes what is deployed silently",
    RELEASE,
)
def _chart_pinned(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not ctx.inputs(r).get("version"):
        yield f"Helm release {r.name} (chart {ctx.inputs(r).get('chart')}) has no pinned version"


def _is_argo(r: Resource, ctx: Context) -> bool:
    return "argo-workflows" in str(ctx.inputs(r).get("chart") or "")


def _values(r: Resource, ctx: Context) -> dict[str, Any]:
    v = ctx.inputs(r).get("values") or {}
    return v if isinstance(v, dict) else {}


@rule(
    "ARGO-001",
    "high",
    "argo",
    "Argo server runs without authentication",
    "set server.authModes to ['client'] (Kubernetes tokens) or ['sso'] (OIDC); never 'server'",
    RELEASE,
)
def _argo_auth(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not _is_argo(r, ctx):
        return
    server = _values(r, ctx).get("server") or {}
    if server.get("enabled") is False:
        return
    modes = [str(m) for m in as_list(server.get("authModes") or server.get("authMode"))]
    args = [str(a) for a in as_list(server.get("extraArgs"))]
    modes += [a.split("=", 1)[1] for a in args if a.startswith("--auth-mode=")]
    if not modes:
        yield f"{r.name}: server.authModes not set (the chart default depends on its version)"
    elif "server" in modes:
        yield f"{r.name}: Argo server auth mode 'server' lets anyone who reaches it act as the server"


@rule(
    "ARGO-002",
    "high",
    "argo",
    "Argo artifact repository uses static access keys",
    "use IRSA (useSDKCreds: true and a service account with an IAM role); remove accessKeySecret/secretKeySecret",
    RELEASE,
)
def _argo_static_keys(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not _is_argo(r, ctx):
        return
    repo = (_values(r, ctx).get("artifactRepository") or {}).get("s3") or {}
    if repo.get("accessKeySecret") or repo.get("secretKeySecret"):
        yield f"{r.name}: artifact repository reads static keys from a Secret"
    elif repo and repo.get("useSDKCreds") is not True:
        yield f"{r.name}: artifact repository S3 without useSDKCreds (IRSA)"


@rule(
    "ARGO-003",
    "medium",
    "argo",
    "Argo server exposed on a public load balancer",
    "keep server.serviceType ClusterIP and reach it through kubectl port-forward or an internal ingress",
    RELEASE,
)
def _argo_exposed(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not _is_argo(r, ctx):
        return
    server = _values(r, ctx).get("server") or {}
    annotations = server.get("serviceAnnotations") or {}
    internal = any(
        "internal" in str(k) and str(v).lower() in ("true", "internal") for k, v in annotations.items()
    )
    if server.get("serviceType") == "LoadBalancer" and not internal:
        yield f"{r.name}: Argo server Service is an internet-facing LoadBalancer"


_CREDENTIAL_KEY = re.compile(
    r"(password|passwd|secret|private[_-]?key|token|credential|access[_-]?key|\.p8$|\.pem$|connections\.toml)",
    re.IGNORECASE,
)


@rule(
    "K8S-006",
    "high",
    "kubernetes",
    "credentials in a ConfigMap",
    "put credentials in a Kubernetes Secret from a Pulumi secret (MLStack does this for warehouse logins)",
    (K + "core/v1:ConfigMap",),
)
def _configmap_credentials(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for field in ("data", "binaryData"):
        raw = r.inputs.get(field)
        if not isinstance(raw, dict):
            continue
        for k, v in raw.items():
            if is_secret(v) or _CREDENTIAL_KEY.search(str(k)) or "PRIVATE KEY-----" in str(v):
                yield f"ConfigMap {r.name}: {field}.{k} holds what looks like a credential (ConfigMaps are not secret)"

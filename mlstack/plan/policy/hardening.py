"""Hardening rules (issue #11): non-root Argo pods, NetworkPolicies, Pod Security, images pinned by digest.

- ARGO-004 reads the argo-workflows chart's workflow defaults and any Argo workflow object the stack applies
  (WorkflowTemplate, ClusterWorkflowTemplate, Workflow, CronWorkflow as a CustomResource, e.g. from
  ``mlstack render --json``): every pod must run non-root, and a template that opts out is named.
- K8S-007: every namespace the stack creates has a default-deny ingress NetworkPolicy and an egress policy.
- K8S-008: every namespace the stack creates enforces the Pod Security Standard ``restricted``.
- K8S-009: every container image (workloads, and the Argo chart's images) is pinned as ``tag@sha256:digest``.
- EKS-009: the VPC CNI add-on enforces NetworkPolicies (``enableNetworkPolicy``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from mlstack.pipeline import security
from mlstack.plan.mock_runtime import Resource
from mlstack.plan.policy.engine import Context, as_list, rule
from mlstack.plan.policy.kubernetes import RELEASE, WORKLOADS, _containers, _is_argo, _pod_spec, _values

K = "kubernetes:"
ARGO_KINDS = tuple(
    f"{K}argoproj.io/v1alpha1:{k}"
    for k in ("WorkflowTemplate", "ClusterWorkflowTemplate", "Workflow", "CronWorkflow")
)
NAMESPACE = (K + "core/v1:Namespace",)
NETWORK_POLICY = K + "networking.k8s.io/v1:NetworkPolicy"
ADDON = ("aws:eks/addon:Addon",)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
PSS_ENFORCE = "pod-security.kubernetes.io/enforce"


def _workflow_spec(r: Resource, ctx: Context) -> dict[str, Any]:
    spec = ctx.inputs(r).get("spec") or {}
    if r.type.endswith(":CronWorkflow"):
        spec = spec.get("workflowSpec") or {}
    return spec if isinstance(spec, dict) else {}


@rule(
    "ARGO-004",
    "high",
    "argo",
    "Argo workflow pods may run as root",
    "set spec.securityContext runAsNonRoot: true and a non-zero runAsUser (mlstack render and ArgoWorkflows' "
    "workflow defaults do); keep @step(run_as_root=True) for steps that truly need root",
    RELEASE + ARGO_KINDS,
)
def _argo_non_root(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if r.type in RELEASE:
        if not _is_argo(r, ctx):
            return
        spec = ((_values(r, ctx).get("controller") or {}).get("workflowDefaults") or {}).get("spec") or {}
        if security.runs_as_root(spec.get("securityContext")):
            yield (
                f"{r.name}: controller.workflowDefaults.spec.securityContext does not make workflow pods "
                "non-root (runAsNonRoot: true, runAsUser != 0)"
            )
        return
    spec = _workflow_spec(r, ctx)
    pod = spec.get("securityContext")
    by_ref = "workflowTemplateRef" in spec and pod is None
    if security.runs_as_root(pod) and not by_ref:
        yield f"{r.name}: spec.securityContext does not make its pods non-root"
    for t in as_list(spec.get("templates")):
        if not isinstance(t, dict):
            continue
        tpod = t.get("securityContext")
        container = (t.get("container") or t.get("script") or {}).get("securityContext")
        if (tpod is not None or container is not None) and security.runs_as_root(tpod or pod, container):
            yield f"{r.name}: template {t.get('name')!r} runs as root (opted out of the non-root default)"


def _namespaces(ctx: Context) -> list[tuple[Resource, str]]:
    out = []
    for r in ctx.of_type(*NAMESPACE):
        name = (ctx.inputs(r).get("metadata") or {}).get("name")
        if isinstance(name, str):
            out.append((r, name))
    return out


@rule(
    "K8S-007",
    "medium",
    "kubernetes",
    "namespace without a default-deny NetworkPolicy",
    "add NetworkPolicies to the namespace: podSelector {} with no ingress rules (default deny), and egress "
    "limited to what its pods need (EksGpuCluster and ArgoWorkflows create them)",
    NAMESPACE,
)
def _network_policy(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    name = (ctx.inputs(r).get("metadata") or {}).get("name")
    policies = [
        ctx.inputs(p)
        for p in ctx.of_type(NETWORK_POLICY)
        if (ctx.inputs(p).get("metadata") or {}).get("namespace") in (name, None)
    ]
    deny = egress = False
    for p in policies:
        spec = p.get("spec") or {}
        if spec.get("podSelector") not in ({}, None):
            continue
        types = as_list(spec.get("policyTypes"))
        if "Ingress" in types and not spec.get("ingress"):
            deny = True
        if "Egress" in types:
            egress = True
    if not deny:
        yield f"namespace {name}: no NetworkPolicy denies ingress to every pod by default"
    if not egress:
        yield f"namespace {name}: no NetworkPolicy limits its pods' egress"


@rule(
    "K8S-008",
    "medium",
    "kubernetes",
    "namespace does not enforce the restricted Pod Security Standard",
    "label the namespace pod-security.kubernetes.io/enforce: restricted (EksGpuCluster jobs_pod_security "
    "'restricted', the default); run root steps only where a documented decision lowered it",
    NAMESPACE,
)
def _pod_security(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    meta = ctx.inputs(r).get("metadata") or {}
    level = (meta.get("labels") or {}).get(PSS_ENFORCE)
    if level != "restricted":
        yield f"namespace {meta.get('name')}: Pod Security enforce is {level or 'not set'!r}, not 'restricted'"


def _argo_images(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, tag) of every image the argo-workflows chart runs, as the values set them."""
    out = []
    common = (values.get("images") or {}).get("tag") or ""
    for part in ("controller", "server", "executor"):
        tag = ((values.get(part) or {}).get("image") or {}).get("tag") or common
        if part == "server" and (values.get("server") or {}).get("enabled") is False:
            continue
        out.append((f"{part}.image.tag", str(tag)))
    crds = values.get("crds") or {}
    if crds.get("install", True) and crds.get("full", True):
        tag = ((crds.get("upgradeJob") or {}).get("image") or {}).get("tag") or ""
        out.append(("crds.upgradeJob.image.tag", str(tag)))
    return out


@rule(
    "K8S-009",
    "medium",
    "kubernetes",
    "container image not pinned by digest",
    "pin every image as tag@sha256:<digest> (the tag says what it is, the digest makes it immutable); "
    "for the Argo chart set controller/server/executor image tags and crds.upgradeJob.image.tag so",
    WORKLOADS + RELEASE,
)
def _image_digest(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if r.type in RELEASE:
        if not _is_argo(r, ctx):
            return
        for what, tag in _argo_images(_values(r, ctx)):
            if not DIGEST.search(tag):
                yield f"{r.name}: {what} {tag or '(chart default)'!r} has no @sha256 digest"
        return
    for c in _containers(_pod_spec(ctx.inputs(r), r.type)):
        img = str(c.get("image") or "")
        if not DIGEST.search(img):
            yield f"{r.name}: container {c.get('name')} image {img!r} is not pinned by digest"


@rule(
    "EKS-009",
    "medium",
    "eks",
    "VPC CNI does not enforce NetworkPolicies",
    'set the vpc-cni add-on\'s configuration_values to {"enableNetworkPolicy": "true"} (EksGpuCluster does)',
    ADDON,
)
def _cni_policy(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    if i.get("addonName") != "vpc-cni":
        return
    raw = i.get("configurationValues")
    try:
        cfg = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        cfg = {}
    if str((cfg or {}).get("enableNetworkPolicy", "")).lower() != "true":
        yield f"{r.name}: vpc-cni without enableNetworkPolicy: NetworkPolicies are stored but not enforced"

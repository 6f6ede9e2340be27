"""Why Karpenter does not give a GPU pod a node: its own events and NodeClaim conditions, read as written.

Karpenter (v1, ``sigs.k8s.io/karpenter`` and the AWS provider) reports on the pod with ``FailedScheduling``
("Failed to schedule pod, <errors joined by '; '>") and ``Nominated`` ("Pod should schedule on:
nodeclaim/<name>"), and on NodeClaims with ``InsufficientCapacityError`` ("NodeClaim <name> event: creating
instance, insufficient capacity, ...", EC2 fleet errors such as ``InsufficientInstanceCapacity``,
``MaxSpotInstanceCountExceeded``, ``VcpuLimitExceeded``) and ``NodeClassNotReady``, or with a ``Launched``
condition whose reason names the failure (``SpotQuotaExceeded``, ``VCPULimitExceeded``, ...). Each cause becomes
a finding with its fix:

- ``job.karpenter_requirements``: no instance type of the pool meets the pod's requirements (selector, affinity)
- ``job.karpenter_resources``: no instance type the pool may launch has room for the pod's requests
- ``job.karpenter_shared_gpu``: the pod requests a shared-GPU resource Karpenter cannot launch capacity for
- ``job.karpenter_limits``: the NodePool is at its ``limits``
- ``job.untolerated_taint``: the pool's nodes carry a taint the pod does not tolerate
- ``job.karpenter_capacity``: EC2 had no capacity for the chosen types (ICE)
- ``job.karpenter_quota``: the account's Spot or On-Demand vCPU quota stopped the launch
- ``job.karpenter_nodeclass``: the EC2NodeClass is not ready
- ``job.scaling_up`` (warn): a NodeClaim was nominated and is launching

Pure functions over API-shaped dicts; :mod:`mlstack.doctor.explain` calls them and fetches the objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlstack.doctor import kube
from mlstack.doctor.core import Finding, fail, warn

COMPONENT = "karpenter"
_NODEPOOL_IN = re.compile(r"karpenter\.sh/nodepool In \[([^\]]+)\]")
_NODEPOOL_KV = re.compile(r"\(NodePool=([^,)]+)")
_TAINT = re.compile(r"did not tolerate taint \(taint=([^=:)]+)(?:=([^:)]*))?:([A-Za-z]+)\)")
_RESOURCES = re.compile(r"resources=(?:min=)?(\{[^}]*\})")
_NOMINATED = re.compile(r"nodeclaim/([a-z0-9.-]+)")
_CLAIM = re.compile(r"^NodeClaim (\S+) event: ")
_ICE_TYPE = re.compile(r"sufficient (\S+) capacity")
_ZONE = re.compile(r"Availability Zone you requested \(([^)]+)\)")


def is_karpenter(ev: Mapping[str, Any]) -> bool:
    src = (ev.get("source") or {}).get("component") or ev.get("reportingComponent") or ""
    return str(src) == COMPONENT


def _when(ev: Mapping[str, Any]) -> str:
    return str(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or "")


def split_errors(message: str) -> list[str]:
    """The per-NodePool errors of a Karpenter ``FailedScheduling`` message."""
    body = message.strip()
    for prefix in ("Failed to schedule pod, ", "Failed to schedule pod,"):
        if body.startswith(prefix):
            body = body[len(prefix) :]
    return [p.strip() for p in body.split("; ") if p.strip()]


def _pool(part: str) -> str | None:
    m = _NODEPOOL_KV.search(part) or _NODEPOOL_IN.search(part)
    return m.group(1).split()[0] if m else None


def _requested(part: str) -> dict[str, str]:
    m = _RESOURCES.search(part)
    if not m:
        return {}
    try:
        return {str(k): str(v) for k, v in json.loads(m.group(1)).items()}
    except ValueError:
        return {}


def _requirements(part: str) -> str:
    """The ``requirements=...`` of an instance-type error (the pool's and the pod's, merged by Karpenter)."""
    m = re.search(r"requirements=(.*?), resources=", part)
    return m.group(1) if m else part


def _pool_fix(pool: str | None) -> str:
    return f"kubectl get nodepool {pool} -o yaml" if pool else "kubectl get nodepools -o yaml"


def _limits_detail(pool: str | None, nodepools: Sequence[Mapping[str, Any]]) -> str:
    for np in nodepools:
        if (np.get("metadata") or {}).get("name") != pool:
            continue
        limits = (np.get("spec") or {}).get("limits") or {}
        used = (np.get("status") or {}).get("resources") or {}
        parts = [f"{k} {used.get(k, '0')} of {v}" for k, v in limits.items()]
        if parts:
            return f" (in use: {', '.join(parts)})"
    return ""


def scheduling_findings(
    message: str, who: str, nodepools: Sequence[Mapping[str, Any]] = (), gpu_resource: str = kube.GPU
) -> list[Finding]:
    """Findings for one Karpenter ``FailedScheduling`` message."""
    out: list[Finding] = []
    for part in split_errors(message):
        pool = _pool(part)
        of_pool = f"NodePool {pool}" if pool else "the NodePool"
        tm = _TAINT.search(part)
        if tm:
            t = {"key": tm.group(1), "value": tm.group(2) or "", "effect": tm.group(3)}
            out.append(
                fail(
                    "job.untolerated_taint",
                    f"{who}: Karpenter's nodes would carry taint {kube.taint_text(t)} that the pod does not tolerate",
                    f"add {kube.toleration_for(t)} to compute.gpu.tolerations in the manifest (and the step's "
                    "tolerations), or schedule it on a pool without that taint",
                )
            )
        elif "exceed limits for nodepool" in part or "node limits have been exhausted" in part:
            out.append(
                fail(
                    "job.karpenter_limits",
                    f"{who}: {of_pool} is at its limits: every instance type it could add would exceed them"
                    + _limits_detail(pool, nodepools),
                    f"raise {of_pool}'s limits (the GPU pool's limits in the stack config, then `mlstack up`; or "
                    f"kubectl patch nodepool {pool or '<pool>'} --type merge -p "
                    '\'{"spec":{"limits":{"nvidia.com/gpu":"<more>"}}}\'), or wait for running jobs to finish; '
                    "`mlstack plan` shows what the new limits cost at most",
                )
            )
        elif part.startswith("no instance type") or ("instance type" in part and "requirements=" in part):
            req = _requested(part)
            shared = sorted(r for r in req if kube.is_gpu_resource(r) and r != gpu_resource and r != kube.GPU)
            if shared:
                out.append(
                    fail(
                        "job.karpenter_shared_gpu",
                        f"{who}: it requests {', '.join(f'{r}={req[r]}' for r in shared)}, which no instance type "
                        f"advertises to Karpenter (EC2 reports whole GPUs only), so {of_pool} cannot launch a node "
                        "for it; only running shared nodes can take it",
                        "keep nodes in the shared pool (a static NodePool: spec.replicas >= 1), or have the step "
                        "request whole GPUs (nvidia.com/gpu) on a pool without sharing; see docs/compute.md "
                        "'Shared GPUs'",
                    )
                )
            elif "enough resources" in part and "met the scheduling requirements" not in part:
                asked = ", ".join(f"{k}={v}" for k, v in req.items() if k != "pods") or "its requests"
                out.append(
                    fail(
                        "job.karpenter_resources",
                        f"{who}: no instance type {of_pool} may launch has room for {asked}",
                        f"lower the step's request (gpus=, cpu=, memory=), or allow a larger instance type in "
                        f"{of_pool} (one with enough GPUs, vCPUs and memory per node): {_pool_fix(pool)}",
                    )
                )
            else:
                out.append(
                    fail(
                        "job.karpenter_requirements",
                        f"{who}: no instance type of {of_pool} meets the pod's requirements "
                        f"({_requirements(part)[:600]})",
                        "make the step's node selector/affinity match what the pool allows (instance types, "
                        f"zones, capacity type, labels), or widen the pool's requirements: {_pool_fix(pool)}",
                    )
                )
        elif part.startswith("incompatible requirements") or "minValues" in part:
            out.append(
                fail(
                    "job.karpenter_requirements",
                    f"{who}: its node selector/affinity excludes {of_pool} ({part[:300]})",
                    "select the GPU pool the job should run on (labels mlstack.dev/gpu=true, "
                    f"mlstack.dev/node-pool=<pool>) and nothing the pool cannot offer: {_pool_fix(pool)}",
                )
            )
        elif "filtered out all available instance types" in part:
            out.append(
                fail(
                    "job.karpenter_requirements",
                    f"{who}: the NodePools' requirements match no instance type offered in this region/zones",
                    "check the pools' instance types, zones and capacity types against what the region offers "
                    "(`mlstack doctor --preflight STACK`), then fix the pool: kubectl get nodepools -o yaml",
                )
            )
        else:
            out.append(
                fail(
                    "job.karpenter",
                    f"{who}: Karpenter cannot launch a node for it: {part[:300]}",
                    "compare the pod's requests, selector and tolerations with the GPU NodePool's requirements "
                    "and limits: kubectl get nodepools -o yaml",
                )
            )
    return out


def _quota_codes(types: Sequence[str], spot: bool) -> list[str]:
    from mlstack import prices

    codes = []
    for t in types:
        spec = prices.instance_type(t)
        code = (spec.quota_spot if spot else spec.quota_on_demand) if spec else None
        if code and code not in codes:
            codes.append(code)
    return codes


def _claim_types(claim: Mapping[str, Any] | None) -> list[str]:
    if not claim:
        return []
    labels = (claim.get("metadata") or {}).get("labels") or {}
    if labels.get("node.kubernetes.io/instance-type"):
        return [str(labels["node.kubernetes.io/instance-type"])]
    for r in (claim.get("spec") or {}).get("requirements") or []:
        if r.get("key") == "node.kubernetes.io/instance-type" and r.get("operator") == "In":
            return [str(v) for v in r.get("values") or []]
    return []


def launch_findings(
    text: str, claim_name: str, claim: Mapping[str, Any] | None, who: str, pool: str | None
) -> Finding | None:
    """A finding for one NodeClaim launch failure (event message or Launched condition message/reason)."""
    of_pool = f"NodePool {pool}" if pool else "the NodePool"
    types = sorted(set(_ICE_TYPE.findall(text)) | set(_claim_types(claim)))
    shown = ", ".join(types) or "the pool's instance types"
    if "MaxSpotInstanceCountExceeded" in text or "SpotQuotaExceeded" in text:
        codes = _quota_codes(types, spot=True)
        code = codes[0] if codes else "<code>"
        return fail(
            "job.karpenter_quota",
            f"{who}: NodeClaim {claim_name} could not launch {shown} as Spot: the account's Spot vCPU quota is used "
            f"up (MaxSpotInstanceCountExceeded{', quota ' + ', '.join(codes) if codes else ''})",
            f"request more Spot vCPUs: aws service-quotas request-service-quota-increase --service-code ec2 "
            f"--quota-code {code} --desired-value <vcpus> (`mlstack plan` shows the pool's need), or allow "
            f"on-demand in {of_pool}'s karpenter.sh/capacity-type",
        )
    if "VcpuLimitExceeded" in text or "VCPULimitExceeded" in text:
        codes = _quota_codes(types, spot=False)
        code = codes[0] if codes else "<code>"
        return fail(
            "job.karpenter_quota",
            f"{who}: NodeClaim {claim_name} could not launch {shown}: the account's On-Demand vCPU quota for the "
            f"instance family is used up (VcpuLimitExceeded{', quota ' + ', '.join(codes) if codes else ''})",
            f"request more vCPUs: aws service-quotas request-service-quota-increase --service-code ec2 "
            f"--quota-code {code} --desired-value <vcpus> (`mlstack doctor --preflight STACK` compares the need "
            "with the applied quota)",
        )
    if any(
        s in text
        for s in (
            "InsufficientInstanceCapacity",
            "insufficient capacity",
            "were unavailable during launch",
            "UnfulfillableCapacity",
        )
    ):
        zone = _ZONE.search(text)
        where = f" in {zone.group(1)}" if zone else ""
        return fail(
            "job.karpenter_capacity",
            f"{who}: NodeClaim {claim_name}: EC2 has no capacity for {shown}{where} now (insufficient capacity)",
            f"Karpenter retries other types and zones once its ICE cache expires (about 3 minutes); to launch "
            f"sooner and more often, widen {of_pool}: more instance types or families with the same GPU, more "
            "zones, and both spot and on-demand in karpenter.sh/capacity-type",
        )
    if "NodeClassNotReady" in text or ("nodeclass" in text.lower() and "not ready" in text.lower()):
        return fail(
            "job.karpenter_nodeclass",
            f"{who}: NodeClaim {claim_name} cannot launch: its EC2NodeClass is not ready ({text[:200]})",
            "kubectl describe ec2nodeclass: check the subnet/security group selector tags, the AMI alias and "
            "the node role (its Ready condition names the failing part)",
        )
    return None


def claim_findings(
    events: Sequence[Mapping[str, Any]],
    claims: Sequence[Mapping[str, Any]],
    who: str,
    nominated: set[str],
) -> list[Finding]:
    """Findings from NodeClaim events and Launched conditions (the nominated claims, else all given)."""
    by_name = {str((c.get("metadata") or {}).get("name")): c for c in claims}
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for ev in sorted(events, key=_when, reverse=True):
        if ev.get("reason") not in ("InsufficientCapacityError", "NodeClassNotReady"):
            continue
        msg = str(ev.get("message") or "")
        m = _CLAIM.match(msg)
        name = m.group(1) if m else str((ev.get("involvedObject") or {}).get("name") or "?")
        if nominated and name not in nominated:
            continue
        claim = by_name.get(name)
        pool = ((claim or {}).get("metadata") or {}).get("labels", {}).get(
            "karpenter.sh/nodepool"
        ) or _prefix_pool(name)
        f = launch_findings(f"{ev.get('reason')}: {msg}", name, claim, who, pool)
        if f is not None and (f.check, name) not in seen:
            seen.add((f.check, name))
            out.append(f)
    for name, claim in by_name.items():
        if nominated and name not in nominated:
            continue
        for c in (claim.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Launched" and c.get("status") != "True" and c.get("reason"):
                pool = ((claim.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool")
                text = f"{c.get('reason')}: {c.get('message') or ''}"
                f = launch_findings(text, name, claim, who, pool)
                if f is None:
                    f = fail(
                        "job.karpenter_launch",
                        f"{who}: NodeClaim {name} has not launched: {text[:240]}",
                        f"kubectl describe nodeclaim {name}; the reason names what EC2 refused",
                    )
                if (f.check, name) not in seen:
                    seen.add((f.check, name))
                    out.append(f)
    return out


def _prefix_pool(claim_name: str) -> str | None:
    # Karpenter names NodeClaims <nodepool>-<5 random characters>
    m = re.match(r"^(.*)-[a-z0-9]{5}$", claim_name)
    return m.group(1) if m else None


def pod_findings(
    pod_events: Sequence[Mapping[str, Any]],
    who: str,
    *,
    claim_events: Sequence[Mapping[str, Any]] = (),
    claims: Sequence[Mapping[str, Any]] = (),
    nodepools: Sequence[Mapping[str, Any]] = (),
    gpu_resource: str = kube.GPU,
) -> tuple[list[Finding], bool]:
    """Findings from the pod's Karpenter events and its NodeClaims; and whether Karpenter reacted at all."""
    mine = [e for e in pod_events if is_karpenter(e)]
    if not mine:
        return [], False
    out: list[Finding] = []
    nominated: set[str] = set()
    for e in mine:
        if e.get("reason") == "Nominated":
            nominated |= set(_NOMINATED.findall(str(e.get("message") or "")))
    fs = sorted((e for e in mine if e.get("reason") == "FailedScheduling"), key=_when)
    latest_nominated = max((_when(e) for e in mine if e.get("reason") == "Nominated"), default="")
    launch = claim_findings(claim_events, claims, who, nominated)
    if fs and _when(fs[-1]) >= latest_nominated:
        out.extend(scheduling_findings(str(fs[-1].get("message") or ""), who, nodepools, gpu_resource))
    out.extend(launch)
    if nominated and not launch and not out:
        out.append(
            warn(
                "job.scaling_up",
                f"{who}: Karpenter is launching a node for it ({', '.join(f'nodeclaim/{n}' for n in sorted(nominated))})",
                "wait a few minutes for the GPU node to join (NVIDIA AMI boot, device plugin); if it never does: "
                f"kubectl describe nodeclaim {sorted(nominated)[0]}",
            )
        )
    return out, True

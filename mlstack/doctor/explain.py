"""Why is this job stuck? Explanations from a pod's conditions, container states and events.

Reads the messages the Kubernetes scheduler (``FailedScheduling``), the kubelet (``Failed``/``BackOff``
image pulls, ``CreateContainerConfigError``), controllers (``FailedCreate``: namespace quotas) and the
cluster-autoscaler (``NotTriggerScaleUp``/``TriggeredScaleUp``/``FailedScaleUp``) and Karpenter (pod and
NodeClaim events, read by :mod:`mlstack.doctor.karpenter`) write, and turns each cause into a finding with its fix. Pure functions over API-shaped dicts; :func:`explain_job` fetches them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlstack import names
from mlstack.doctor import karpenter, kube
from mlstack.doctor.core import DEFAULT_TIMEOUT, Check, Finding, Report, Sink, fail, ok, run_checks, warn
from mlstack.manifest import ArgoOrchestrator, KubernetesCompute, Manifest

_NODES = re.compile(r"(\d+)/(\d+) nodes are available(?::\s*(.*?))?(?:\.\s*preemption:.*)?\.?\s*$", re.S)
_TAINT = re.compile(r"(?:untolerated taint|had taint) \{([^:}]+):\s*([^}]*)\}")
_INSUFFICIENT = re.compile(r"^Insufficient (\S+)$")
_QUOTA = re.compile(r"exceeded quota: ([^,]+), requested: (.*?), used: (.*?), limited: ([^\n]*)")
_IMAGE = re.compile(r'(?:pull(?:ing)? image|image) "([^"]+)"')
_SCALE_UP_NOT = re.compile(
    r"pod didn't trigger scale-up(?: \(it wouldn't fit if a new node is added\))?:?\s*(.*)$", re.S
)
_WAITING_PULL = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _when(ev: Mapping[str, Any]) -> str:
    return str(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or "")


def scheduler_reasons(message: str) -> list[tuple[int, str]]:
    """``[(count, reason)]`` from a FailedScheduling message (the part before ``preemption:``)."""
    m = _NODES.search(message.strip())
    if not m:
        return [(0, message.strip().rstrip("."))]
    body = (m.group(3) or "").replace(", that the pod didn't tolerate", " that the pod didn't tolerate")
    if not body:
        return [(int(m.group(2)), "no reason given")]
    out: list[tuple[int, str]] = []
    for part in re.split(r",\s*(?=\d+ )", body.strip().rstrip(".")):
        pm = re.match(r"(\d+) (.*)$", part.strip(), re.S)
        out.append((int(pm.group(1)), pm.group(2).strip()) if pm else (0, part.strip()))
    return out


def _gpu_request(pod: Mapping[str, Any], resource: str) -> float:
    total = 0.0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        total += kube.quantity(
            (res.get("limits") or {}).get(resource) or (res.get("requests") or {}).get(resource)
        )
    return total


def _gpu_requests(pod: Mapping[str, Any], resource: str) -> dict[str, float]:
    """Every GPU resource the pod asks for: whole GPUs, time-sliced slices, MIG devices."""
    names = {
        str(k)
        for c in (pod.get("spec") or {}).get("containers") or []
        for part in ("requests", "limits")
        for k in ((c.get("resources") or {}).get(part) or {})
        if kube.is_gpu_resource(str(k)) or str(k) == resource
    }
    return {n: v for n in sorted(names) if (v := _gpu_request(pod, n)) > 0}


class _Ctx:
    def __init__(
        self,
        pod: Mapping[str, Any],
        nodes: Sequence[Mapping[str, Any]] | None,
        compute: KubernetesCompute | None,
    ):
        self.pod = pod
        self.name = str(_meta(pod).get("name") or "?")
        self.ns = str(_meta(pod).get("namespace") or (compute.namespace if compute else "default"))
        self.nodes = nodes
        self.compute = compute
        self.resource = compute.gpu.resource if compute else "nvidia.com/gpu"
        spec = pod.get("spec") or {}
        self.selector: dict[str, str] = dict(spec.get("nodeSelector") or {})
        self.tolerations: list[dict[str, Any]] = list(spec.get("tolerations") or [])

    @property
    def cluster(self) -> str:
        return self.compute.cluster_name if self.compute else "<cluster>"


def _scheduling(reasons: list[tuple[int, str]], total: int, ctx: _Ctx, autoscaler: bool) -> list[Finding]:
    out: list[Finding] = []
    who = f"pod {ctx.ns}/{ctx.name}"
    for count, reason in reasons:
        nodes = f"{count} of {total} node(s)" if total else f"{count} node(s)"
        ins = _INSUFFICIENT.match(reason)
        taint = _TAINT.search(reason)
        if ins:
            res = ins.group(1)
            need = _gpu_request(ctx.pod, res) if "/" in res else None
            asked = f" (it asks for {need:g})" if need else ""
            if kube.is_gpu_resource(res) and res not in (ctx.resource, kube.GPU):
                fix = (
                    f"no node has a free {res} slice: the shared-GPU pool is full or has no node yet; add nodes to "
                    "the pool that shares GPUs this way (kubectl get nodes -l mlstack.dev/gpu-sharing), or wait "
                    "for running jobs; see free slices: kubectl describe nodes | grep -A8 'Allocated resources'"
                )
            elif res == ctx.resource or res.endswith("/gpu"):
                fix = (
                    "add GPU capacity: raise the GPU node group's max size (stack config, then `mlstack up`), "
                    "or wait for running GPU jobs; see free GPUs: kubectl describe nodes | grep -A8 'Allocated resources'"
                )
            else:
                fix = (
                    f"lower the step's {res} request, or add nodes with more {res}: "
                    "kubectl describe nodes | grep -A8 'Allocated resources'"
                )
            out.append(fail("job.insufficient", f"{who}: {nodes} lack free {res}{asked}", fix))
        elif taint:
            key, value = taint.group(1).strip(), taint.group(2).strip()
            effect = _taint_effect(ctx, key) or "NoSchedule"
            t = {"key": key, "value": value, "effect": effect}
            out.append(
                fail(
                    "job.untolerated_taint",
                    f"{who}: {nodes} carry taint {key}={value}:{effect} that the pod does not tolerate",
                    f"add {kube.toleration_for(t)} to compute.gpu.tolerations in the manifest (and the step's "
                    "tolerations), then resubmit",
                )
            )
        elif "node affinity/selector" in reason:
            if total and count < total:
                # other nodes do match the selector and were rejected for their own reasons: those are the cause
                continue
            out.append(
                fail(
                    "job.node_selector",
                    f"{who}: {nodes} do not match the pod's node selector/affinity {json.dumps(ctx.selector) if ctx.selector else ''}".rstrip(),
                    _selector_fix(ctx),
                )
            )
        elif "unbound immediate PersistentVolumeClaims" in reason:
            claims = [
                v["persistentVolumeClaim"]["claimName"]
                for v in (ctx.pod.get("spec") or {}).get("volumes") or []
                if v.get("persistentVolumeClaim")
            ]
            out.append(
                fail(
                    "job.unbound_pvc",
                    f"{who}: volume claim(s) {', '.join(claims) or '?'} are not bound to a volume",
                    f"kubectl -n {ctx.ns} describe pvc {' '.join(claims) or '<claim>'}: check that its StorageClass "
                    "exists and its provisioner (e.g. the EBS CSI driver) is installed",
                )
            )
        elif "volume node affinity conflict" in reason:
            out.append(
                fail(
                    "job.volume_zone",
                    f"{who}: {nodes} are in another zone than the pod's volume",
                    "add node capacity in the volume's zone, or recreate the volume claim with "
                    "volumeBindingMode: WaitForFirstConsumer",
                )
            )
        elif "were unschedulable" in reason:
            out.append(
                fail(
                    "job.cordoned",
                    f"{who}: {nodes} are cordoned (unschedulable)",
                    "kubectl get nodes | grep SchedulingDisabled, then kubectl uncordon <node> when maintenance is over",
                )
            )
        elif "Too many pods" in reason:
            out.append(
                fail(
                    "job.too_many_pods",
                    f"{who}: {nodes} are at their maximum pod count",
                    "add nodes (raise the node group's max size), or enable VPC CNI prefix delegation for more pods per node",
                )
            )
        elif "not ready" in reason or "node.kubernetes.io/not-ready" in reason:
            out.append(
                fail(
                    "job.nodes_not_ready",
                    f"{who}: {nodes} are not ready",
                    "kubectl describe nodes (conditions); a new GPU node takes a few minutes to become ready",
                )
            )
        elif "no nodes available" in reason:
            out.append(
                fail(
                    "job.no_nodes",
                    f"{who}: the cluster has no nodes",
                    f"check the node groups: aws eks list-nodegroups --cluster-name {ctx.cluster}",
                )
            )
        else:
            out.append(
                fail(
                    "job.unschedulable",
                    f"{who}: {nodes}: {reason}",
                    f"kubectl -n {ctx.ns} describe pod {ctx.name}",
                )
            )
    asked = _gpu_requests(ctx.pod, ctx.resource)
    gpu_short = any(
        f.check == "job.insufficient" and any(r in f.detail for r in [ctx.resource, *asked]) for f in out
    ) or (
        ctx.nodes is not None
        and bool(asked)
        and not any(kube.gpu_capacity(n, ctx.resource).get(r) for n in ctx.nodes for r in asked)
    )
    # a taint or a selector that keeps the pod off the GPU nodes is the cause; don't also blame scaling
    blocked = any(f.check in ("job.untolerated_taint", "job.node_selector") for f in out)
    if gpu_short and not autoscaler and not blocked:
        out.append(
            fail(
                "job.no_scale_up",
                f"{who}: no GPU node can take it and no autoscaler reacted: the GPU node group is at its size "
                "(or at zero) without a scale-up path",
                "install cluster-autoscaler or Karpenter for the GPU node group (tag the group "
                f"k8s.io/cluster-autoscaler/enabled and k8s.io/cluster-autoscaler/node-template/resources/{ctx.resource}"
                " so it scales from zero), or set its desired size >= 1: aws eks update-nodegroup-config "
                f"--cluster-name {ctx.cluster} --nodegroup-name <gpu-group> --scaling-config desiredSize=1",
            )
        )
    return out


def _taint_effect(ctx: _Ctx, key: str) -> str | None:
    for n in ctx.nodes or []:
        for t in kube.blocking_taints(n):
            if t.get("key") == key:
                return str(t.get("effect"))
    return None


def _selector_fix(ctx: _Ctx) -> str:
    base = "correct compute.gpu.node_selector in the manifest (or the step's node selector) to labels a node carries"
    if ctx.selector and ctx.nodes is not None:
        keys = ",".join(ctx.selector)
        seen = sorted(
            {
                f"{k}={(_meta(n).get('labels') or {}).get(k)}"
                for n in ctx.nodes
                for k in ctx.selector
                if (_meta(n).get("labels") or {}).get(k)
            }
        )
        have = f"; nodes have {', '.join(seen)}" if seen else "; no node has any of these labels"
        return f"{base}{have} (kubectl get nodes -L {keys})"
    return f"{base} (kubectl get nodes --show-labels)"


def _autoscaler(events: Sequence[Mapping[str, Any]], ctx: _Ctx) -> tuple[list[Finding], bool]:
    """Findings from cluster-autoscaler / Karpenter events, and whether any autoscaler reacted at all."""
    out: list[Finding] = []
    reacted = False
    who = f"pod {ctx.ns}/{ctx.name}"
    for ev in sorted(events, key=_when, reverse=True):
        reason, msg = ev.get("reason"), str(ev.get("message") or "")
        if reason == "TriggeredScaleUp":
            reacted = True
            out.append(
                warn(
                    "job.scaling_up",
                    f"{who}: the autoscaler is adding a node ({msg.strip()})",
                    "wait a few minutes for the node to join; if it never does, check the node group's "
                    f"activity: aws autoscaling describe-scaling-activities (cluster {ctx.cluster})",
                )
            )
            break
        if reason == "NotTriggerScaleUp":
            reacted = True
            m = _SCALE_UP_NOT.search(msg)
            wouldnt_fit = "wouldn't fit if a new node is added" in msg
            parts = re.split(r",\s*(?=\d+ )", (m.group(1) if m else msg).strip().rstrip("."))
            for part in parts:
                if "max node group size reached" in part or "max cluster" in part:
                    out.append(
                        fail(
                            "job.node_group_max",
                            f"{who}: the node group that could run it is at its maximum size ({part.strip()})",
                            "raise the GPU node group's max size (stack config, then `mlstack up`, or aws eks "
                            f"update-nodegroup-config --cluster-name {ctx.cluster} --nodegroup-name <gpu-group> "
                            "--scaling-config maxSize=N), or wait for running jobs to finish",
                        )
                    )
                elif "Insufficient" in part and (ctx.resource in part or wouldnt_fit):
                    out.append(
                        fail(
                            "job.no_scale_up",
                            f"{who}: no node group would offer enough {ctx.resource} after scale-up ({part.strip()}): "
                            "a group at zero must advertise its GPUs to the autoscaler",
                            "tag the GPU node group's Auto Scaling group "
                            f"k8s.io/cluster-autoscaler/node-template/resources/{ctx.resource}=<gpus per node>, or use a "
                            "larger GPU instance type",
                        )
                    )
                elif "node affinity/selector" in part and not any(
                    "max node group size" in p or "Insufficient" in p for p in parts
                ):
                    out.append(
                        fail(
                            "job.node_selector",
                            f"{who}: no node group has the labels the pod selects ({part.strip()})",
                            _selector_fix(ctx),
                        )
                    )
                elif "taint" in part:
                    tm = _TAINT.search(part)
                    t = (
                        {"key": tm.group(1).strip(), "value": tm.group(2).strip(), "effect": "NoSchedule"}
                        if tm
                        else None
                    )
                    out.append(
                        fail(
                            "job.untolerated_taint",
                            f"{who}: new nodes would carry a taint the pod does not tolerate ({part.strip()})",
                            f"add {kube.toleration_for(t)} to compute.gpu.tolerations"
                            if t
                            else "add the matching toleration",
                        )
                    )
            break
        if reason == "FailedScaleUp" or (reason or "").startswith("FailedScaleUp"):
            reacted = True
            capacity = any(s in msg for s in ("InsufficientInstanceCapacity", "capacity", "Capacity"))
            quota = any(s in msg for s in ("VcpuLimitExceeded", "vCPU limit", "quota"))
            out.append(
                fail(
                    "job.scale_up_failed",
                    f"{who}: the autoscaler could not add a node: {msg.strip()[:200]}",
                    "request a higher EC2 vCPU quota (`mlstack doctor --preflight STACK` shows the need): aws "
                    "service-quotas request-service-quota-increase --service-code ec2 --quota-code <code> "
                    "--desired-value <vcpus>"
                    if quota
                    else (
                        "allow more instance types or zones for the GPU node group (capacity is short in this zone)"
                        if capacity
                        else f"kubectl -n kube-system logs deploy/cluster-autoscaler | grep {ctx.name}"
                    ),
                )
            )
            break
    return out, reacted


def _image_findings(pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]], ctx: _Ctx) -> list[Finding]:
    out: list[Finding] = []
    statuses = list((pod.get("status") or {}).get("containerStatuses") or []) + list(
        (pod.get("status") or {}).get("initContainerStatuses") or []
    )
    pull_msgs = [
        str(e.get("message") or "") for e in events if "Failed to pull image" in str(e.get("message") or "")
    ]
    bad_images = {}
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _WAITING_PULL:
            bad_images[str(cs.get("image"))] = str(waiting.get("message") or waiting.get("reason"))
    for msg in pull_msgs:
        m = _IMAGE.search(msg)
        if m:
            bad_images[m.group(1)] = msg  # the kubelet's message says why; prefer it over "Back-off pulling"
    for image, msg in bad_images.items():
        low = msg.lower()
        if (
            any(s in low for s in ("not found", "manifest unknown", "does not exist", "name unknown"))
            and "authoriz" not in low
        ):
            why, fix = (
                "the image or tag does not exist",
                (f"push {image}, or correct the image (compute.image in the manifest / the step's image)"),
            )
        elif any(
            s in low
            for s in ("401", "403", "unauthorized", "denied", "authoriz", "no basic auth", "forbidden")
        ):
            why, fix = (
                "the node is not allowed to pull it",
                (
                    "for ECR: attach AmazonEC2ContainerRegistryReadOnly to the node role; for a private registry: "
                    f"kubectl -n {ctx.ns} create secret docker-registry ... and add it to the service account's "
                    "imagePullSecrets"
                ),
            )
        elif any(
            s in low for s in ("i/o timeout", "dial tcp", "no such host", "tls handshake", "context deadline")
        ):
            why, fix = (
                "the node cannot reach the registry",
                (
                    "give the nodes a route to the registry: a NAT gateway, or VPC endpoints for ECR (ecr.api, ecr.dkr, s3)"
                ),
            )
        elif "invalidimagename" in low or "invalid reference format" in low:
            why, fix = "the image reference is malformed", "correct the image name (registry/repository:tag)"
        else:
            why, fix = (
                "the pull fails",
                f"kubectl -n {ctx.ns} describe pod {ctx.name} (Events) shows the registry's answer",
            )
        out.append(
            fail(
                "job.image_pull",
                f"pod {ctx.ns}/{ctx.name}: cannot pull {image}: {why} ({_pull_reason(msg, image)})",
                fix,
            )
        )
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason == "CreateContainerConfigError":
            out.append(
                fail(
                    "job.container_config",
                    f"pod {ctx.ns}/{ctx.name}: container {cs.get('name')}: {waiting.get('message')}",
                    f"create the missing Secret/ConfigMap in namespace {ctx.ns}, or remove the reference",
                )
            )
        elif reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            oom = last.get("reason") == "OOMKilled"
            out.append(
                fail(
                    "job.crash_loop",
                    f"pod {ctx.ns}/{ctx.name}: container {cs.get('name')} keeps crashing"
                    + (" (OOMKilled: out of memory)" if oom else f" (exit code {last.get('exitCode')})"),
                    "raise the step's memory request/limit"
                    if oom
                    else f"kubectl -n {ctx.ns} logs {ctx.name} -c {cs.get('name')} --previous",
                )
            )
    return out


def _pull_reason(message: str, image: str) -> str:
    """The registry's answer from a kubelet pull message, without the image repeated three times."""
    text = message.strip()
    prefix = f'Failed to pull image "{image}": '
    if text.startswith(prefix):
        text = text[len(prefix) :]
    text = text.replace(f'"{image}"', "it").replace(image, "it")
    return text if len(text) <= 200 else "..." + text[-197:]


def quota_findings(messages: Sequence[str], namespace: str) -> list[Finding]:
    """Findings for 'exceeded quota' messages (a pod the API server refused to create)."""
    out: list[Finding] = []
    seen: set[str] = set()
    for msg in messages:
        m = _QUOTA.search(msg)
        if not m or m.group(0) in seen:
            continue
        seen.add(m.group(0))
        name = m.group(1).strip()
        out.append(
            fail(
                "job.quota",
                f"namespace {namespace} quota {name} is exhausted: requested {m.group(2)}, used {m.group(3)}, "
                f"limited {m.group(4).strip()}",
                f"kubectl -n {namespace} describe resourcequota {name}; raise its hard limit "
                f"(kubectl -n {namespace} edit resourcequota {name}) or wait for running jobs to finish",
            )
        )
    return out


_NO_JOBSET = re.compile(
    r'no matches for kind "JobSet"|the server could not find the requested resource.*jobsets'
)
_JOBSET_FORBIDDEN = re.compile(
    r'jobsets\.jobset\.x-k8s\.io(?: "[^"]*")? is forbidden: User "([^"]+)" cannot (\w+) resource "jobsets"'
)


def jobset_findings(messages: Sequence[str], namespace: str, service_account: str = "") -> list[Finding]:
    """A multi-node step's resource template could not create its JobSet: no JobSet CRD/controller in the
    cluster, or the workflow's service account may not create JobSets (the API server's own texts)."""
    out: list[Finding] = []
    text = "\n".join(messages)
    if _NO_JOBSET.search(text):
        out.append(
            fail(
                "job.jobset_missing",
                "a multi-node step could not create its JobSet: the cluster has no JobSet CRD "
                "(jobset.x-k8s.io/v1alpha2), so no JobSet controller runs there",
                "install the pinned controller: add JobSetController (mlstack.components.compute.jobset) to the "
                "stack and `pulumi up`, or `helm install jobset oci://registry.k8s.io/jobset/charts/jobset "
                "--version 0.12.0 -n jobset-system --create-namespace`; then resubmit",
            )
        )
    m = _JOBSET_FORBIDDEN.search(text)
    if m:
        who = m.group(1)
        sa = who.rsplit(":", 1)[-1] if who.startswith("system:serviceaccount:") else service_account
        out.append(
            fail(
                "job.jobset_rbac",
                f"a multi-node step could not {m.group(2)} its JobSet: {who} may not {m.group(2)} "
                f"jobsets.jobset.x-k8s.io in namespace {namespace}",
                f"grant it create/get/list/watch on jobsets (JobSetController's Role mlstack-jobsets does, bound "
                f"to the jobs service account); check: kubectl -n {namespace} auth can-i create "
                f"jobsets.jobset.x-k8s.io --as system:serviceaccount:{namespace}:{sa or '<service account>'}",
            )
        )
    return out


def explain_pod(
    pod: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] = (),
    nodes: Sequence[Mapping[str, Any]] | None = None,
    compute: KubernetesCompute | None = None,
    *,
    karpenter_state: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[Finding]:
    """Why ``pod`` is not running, from its status and its events; an ``ok`` finding when it is fine.

    ``karpenter_state`` (``nodeclaims``, ``claim_events``, ``nodepools``) lets Karpenter's own reasons through.
    """
    ctx = _Ctx(pod, nodes, compute)
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    out: list[Finding] = []
    sched = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    unschedulable = sched is not None and sched.get("status") == "False"
    fs = sorted(
        (e for e in events if e.get("reason") == "FailedScheduling" and not karpenter.is_karpenter(e)),
        key=_when,
    )
    message = ""
    if unschedulable and sched is not None:
        message = str(sched.get("message") or "")
    elif fs and phase == "Pending" and not status.get("containerStatuses"):
        message = str(fs[-1].get("message") or "")
        unschedulable = True
    if unschedulable:
        ks = karpenter_state or {}
        kfind, kreacted = karpenter.pod_findings(
            events,
            f"pod {ctx.ns}/{ctx.name}",
            claim_events=ks.get("claim_events") or (),
            claims=ks.get("nodeclaims") or (),
            nodepools=ks.get("nodepools") or (),
            gpu_resource=ctx.resource,
        )
        auto, reacted = _autoscaler(events, ctx)
        m = _NODES.search(message.strip())
        total = int(m.group(2)) if m else 0
        out.extend(
            _scheduling(scheduler_reasons(message), total, ctx, reacted or kreacted) if message else []
        )
        if kfind:
            # Karpenter names the cause; the scheduler's view (no GPU node yet, selectors of CPU nodes) is noise,
            # except for volume problems no new node solves
            out = [f for f in out if f.check in ("job.unbound_pvc", "job.volume_zone")] + kfind
        have = {f.check for f in out}
        out.extend(
            f for f in auto if f.check not in have or f.check in ("job.node_group_max", "job.scaling_up")
        )
        if not out:
            out.append(
                fail(
                    "job.unschedulable",
                    f"pod {ctx.ns}/{ctx.name} is unschedulable: {message or (sched and sched.get('reason'))}",
                    f"kubectl -n {ctx.ns} describe pod {ctx.name}",
                )
            )
    out.extend(_image_findings(pod, events, ctx))
    out.extend(quota_findings([str(e.get("message") or "") for e in events], ctx.ns))
    if not out:
        if phase in ("Running", "Succeeded"):
            out.append(ok("job.status", f"pod {ctx.ns}/{ctx.name} is {phase}: not stuck"))
        elif phase == "Failed":
            out.append(
                fail(
                    "job.failed",
                    f"pod {ctx.ns}/{ctx.name} failed: {status.get('reason') or ''} {status.get('message') or ''}".strip(),
                    f"kubectl -n {ctx.ns} logs {ctx.name} --all-containers",
                )
            )
        else:
            out.append(
                warn(
                    "job.status",
                    f"pod {ctx.ns}/{ctx.name} is {phase} with no scheduling or pull problem recorded",
                    f"kubectl -n {ctx.ns} describe pod {ctx.name}; it may simply be starting",
                )
            )
    return out


def explain_workflow(
    workflow: Mapping[str, Any],
    pods: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    events: Sequence[Mapping[str, Any]] = (),
    nodes: Sequence[Mapping[str, Any]] | None = None,
    compute: KubernetesCompute | None = None,
    *,
    karpenter_state: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[Finding]:
    """An Argo workflow: its own status and node messages (quota refusals land there), then each pod."""
    ns = str(_meta(workflow).get("namespace") or (compute.namespace if compute else "default"))
    name = str(_meta(workflow).get("name") or "?")
    st = workflow.get("status") or {}
    msgs = [str(st.get("message") or "")] + [
        str(n.get("message") or "") for n in (st.get("nodes") or {}).values()
    ]
    msgs += [str(e.get("message") or "") for e in events]
    out = quota_findings(msgs, ns)
    out += jobset_findings(msgs, ns, str((workflow.get("spec") or {}).get("serviceAccountName") or ""))
    for pod, pod_events in pods:
        out.extend(
            f
            for f in explain_pod(pod, pod_events, nodes, compute, karpenter_state=karpenter_state)
            if f.status != "ok" or len(pods) == 1
        )
    if not out:
        phase = st.get("phase") or "Pending"
        if phase in ("Running", "Succeeded"):
            out.append(ok("job.status", f"workflow {ns}/{name} is {phase}: not stuck"))
        elif phase in ("Failed", "Error"):
            out.append(
                fail(
                    "job.failed",
                    f"workflow {ns}/{name} {phase}: {st.get('message') or ''}".strip(),
                    f"argo -n {ns} logs {name}",
                )
            )
        else:
            out.append(
                warn(
                    "job.status",
                    f"workflow {ns}/{name} is {phase} and has no pod yet",
                    "check that the Argo controller runs (`mlstack doctor`) and watches this namespace: "
                    f"kubectl -n {ns} describe workflow {name}",
                )
            )
    return out


def explain_job(
    m: Manifest, name: str, *, namespace: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Report:
    """Fetch a pod (or an Argo workflow and its pods) and explain it, bounded by ``timeout``."""
    c = m.compute
    if not isinstance(c, KubernetesCompute):
        return Report(
            [
                warn(
                    "job.compute",
                    "the manifest's compute is local: jobs run as local processes, nothing can be Pending",
                    "pass the deployed stack's manifest: mlstack doctor job NAME --manifest stack.json",
                )
            ],
            0.0,
            timeout,
        )
    ns = namespace or c.namespace

    def _fetch(sink: Sink, t: float) -> None:
        from mlstack.doctor.compute import connect

        cluster = connect(c, t, None)
        if cluster is None:
            sink.add(
                fail(
                    "job.cluster",
                    f"no kubeconfig context for cluster {c.cluster_name}",
                    kube.update_kubeconfig(c),
                )
            )
            return
        try:
            pod = cluster.pod(ns, name)
            nodes = cluster.nodes()
            if pod is not None:
                events = cluster.events(ns, name)
                sink.extend(
                    explain_pod(pod, events, nodes, c, karpenter_state=_karpenter_state(cluster, events))
                )
                return
            wf = cluster.workflow(ns, name)
            wf_ns = ns
            argo_ns = m.orchestrator.namespace if isinstance(m.orchestrator, ArgoOrchestrator) else None
            if wf is None and namespace is None and argo_ns and argo_ns != ns:
                wf, wf_ns = cluster.workflow(argo_ns, name), argo_ns
            if wf is None:
                sink.add(
                    fail(
                        "job.not_found",
                        f"no pod or Argo workflow named {name} in namespace {ns}",
                        f"list them: kubectl -n {ns} get pods,workflows",
                    )
                )
                return
            pods = cluster.pods(wf_ns, f"workflows.argoproj.io/workflow={name}")
            # a multi-node step's pods belong to its JobSet, labelled with the run (the workflow's name)
            pods += cluster.pods(wf_ns, f"{names.RUN_LABEL}={name}")
            pairs = [(p, cluster.events(wf_ns, _meta(p).get("name"))) for p in pods]
            kstate = _karpenter_state(cluster, [e for _, evs in pairs for e in evs])
            sink.extend(
                explain_workflow(wf, pairs, cluster.events(wf_ns, name), nodes, c, karpenter_state=kstate)
            )
        except Exception as exc:
            sink.add(kube.api_error(exc, c, f"reading {ns}/{name}"))

    return run_checks([Check("job.cluster", _fetch, kube.update_kubeconfig(c))], timeout)


def _karpenter_state(cluster: Any, events: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """NodeClaims, their events and NodePools, fetched only when Karpenter wrote about the pod."""
    if not any(karpenter.is_karpenter(e) for e in events):
        return None
    state: dict[str, Any] = {}
    for key, fetch in (
        ("nodeclaims", cluster.nodeclaims),
        ("nodepools", cluster.nodepools),
        ("claim_events", lambda: cluster.kind_events("NodeClaim")),
    ):
        try:
            state[key] = fetch()
        except Exception:  # RBAC may hide them: the pod's own events still explain most
            state[key] = []
    return state

"""A multi-node step on a cluster: one JobSet, one pod per node, wired the way ``torchrun`` wires its workers.

``@pipeline.step(gpus=8, nodes=4)`` runs on Argo as a resource template that creates a JobSet
(``jobset.x-k8s.io/v1alpha2``, the JobSet controller v0.12 API; see docs/compute.md) and waits for it to end:

- one replicated Job ``node`` of ``nodes`` pods (``completionMode: Indexed``, all started together), each
  asking for the step's ``gpus`` (per node), CPU and memory, on the GPU pool with its toleration and node
  selector, under the jobs service account, with the non-root, read-only securityContext every pipeline pod
  has (:mod:`mlstack.pipeline.security`) and a memory-backed ``/dev/shm`` (NCCL and data loaders need more
  than the runtime's 64 MiB);
- ``network.enableDNSHostnames``: JobSet's headless service (named after the JobSet, its default subdomain)
  gives pod ``i`` the name ``<jobset>-node-0-<i>.<jobset>``, so rank 0 is reachable before it is ready;
- each pod's environment is the local runner's (:func:`mlstack.pipeline.multinode.worker_env`) for one
  process per pod: ``MASTER_ADDR`` = rank 0's pod, ``MASTER_PORT``, ``WORLD_SIZE`` = ``nodes``,
  ``RANK``/``NODE_RANK``/``GROUP_RANK``/``MLSTACK_NODE_RANK`` from the Indexed Job's completion index,
  ``LOCAL_RANK`` 0, ``LOCAL_WORLD_SIZE`` 1, ``MLSTACK_NODES``, plus ``MLSTACK_GPUS_PER_NODE``;
- ``successPolicy: All``: the step succeeds when every pod did; ``failurePolicy.maxRestarts`` = the step's
  ``retries`` (a failed pod restarts the whole group, as a rendezvous needs); ``timeout`` becomes the Job's
  ``activeDeadlineSeconds``.

The name is generated (``metadata.generateName``: the step's name, cut so every pod's hostname fits in 63
characters), so retries and concurrent runs never collide; the pods read it from the label JobSet gives them.

Only the standard library is imported: components use :func:`rbac_rules` for the Role that lets the
workflow's service account create and watch JobSets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlstack.pipeline import security

API_VERSION = "jobset.x-k8s.io/v1alpha2"
KIND = "JobSet"
GROUP = "jobset.x-k8s.io"
REPLICATED_JOB = "node"
MASTER_PORT = 29500
NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
"""Label the JobSet controller puts on every pod of a JobSet (its value: the JobSet's name)."""
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
SUCCESS_CONDITION = "status.terminalState == Completed"
FAILURE_CONDITION = "status.terminalState == Failed"
"""Argo resource-template conditions: JobSet sets ``status.terminalState`` once, to Completed or Failed."""
SHM_VOLUME = "dshm"
_RANDOM_SUFFIX = 5  # what the API server appends to a generateName
_DNS_LABEL_MAX = 63


def rbac_rules() -> list[dict[str, Any]]:
    """What the workflow's service account needs to run multi-node steps: create the JobSet and follow it
    (Argo's executor polls it until the success or failure condition holds). No update/delete: the JobSet is
    owned by the Workflow and goes with it."""
    return [{"apiGroups": [GROUP], "resources": ["jobsets"], "verbs": ["create", "get", "list", "watch"]}]


def role(namespace: str, name: str = "mlstack-jobsets") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "mlstack"},
        },
        "rules": rbac_rules(),
    }


def role_binding(namespace: str, service_account: str, name: str = "mlstack-jobsets") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "mlstack"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def name_prefix(base: str, nodes: int) -> str:
    """A ``generateName`` from ``base`` short enough that the last pod's hostname,
    ``<name>-node-0-<nodes-1>``, is a DNS label (63 characters) once the API server adds its 5 characters."""
    budget = _DNS_LABEL_MAX - _RANDOM_SUFFIX - len(f"-{REPLICATED_JOB}-0-{nodes - 1}")
    cleaned = "".join(c if c.isalnum() else "-" for c in base.lower()).strip("-") or "step"
    if not cleaned[0].isalpha():  # a DNS-1035 label starts with a letter
        cleaned = "s-" + cleaned
    return cleaned[: budget - 1].rstrip("-") + "-"


def torch_env(nodes: int, *, gpus_per_node: int = 0, port: int = MASTER_PORT) -> list[dict[str, Any]]:
    """The rendezvous variables of every pod (one process per pod), as Kubernetes ``env`` entries.

    ``JOBSET_NAME`` comes first: the later entries refer to it with ``$(JOBSET_NAME)``, which the kubelet
    expands from variables defined before them."""
    index = {"fieldRef": {"fieldPath": COMPLETION_INDEX}}
    env: list[dict[str, Any]] = [
        {"name": "JOBSET_NAME", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{NAME_LABEL}']"}}},
        # rank 0's pod through the JobSet's headless service (subdomain = the JobSet's name)
        {"name": "MASTER_ADDR", "value": f"$(JOBSET_NAME)-{REPLICATED_JOB}-0-0.$(JOBSET_NAME)"},
        {"name": "MASTER_PORT", "value": str(port)},
        {"name": "WORLD_SIZE", "value": str(nodes)},
        {"name": "ROLE_WORLD_SIZE", "value": str(nodes)},
        {"name": "LOCAL_WORLD_SIZE", "value": "1"},
        {"name": "LOCAL_RANK", "value": "0"},
        {"name": "MLSTACK_NODES", "value": str(nodes)},
        {"name": "MLSTACK_GPUS_PER_NODE", "value": str(gpus_per_node)},
        {"name": "TORCHELASTIC_RUN_ID", "value": "$(JOBSET_NAME)"},
    ]
    # one process per pod: the node rank is the global rank
    env += [
        {"name": n, "valueFrom": dict(index)}
        for n in ("NODE_RANK", "GROUP_RANK", "RANK", "ROLE_RANK", "MLSTACK_NODE_RANK")
    ]
    return env


def jobset(
    *,
    generate_name: str,
    namespace: str,
    nodes: int,
    image: str,
    command: Sequence[str],
    args: Sequence[str],
    env: Sequence[Mapping[str, Any]],
    service_account: str,
    gpus: int = 0,
    gpu_resource: str = "nvidia.com/gpu",
    cpu: str | None = None,
    memory: str | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    node_selector: Mapping[str, str] | None = None,
    volumes: Sequence[Mapping[str, Any]] = (),
    volume_mounts: Sequence[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
    pod_labels: Mapping[str, str] | None = None,
    retries: int = 0,
    timeout: int | None = None,
    run_as_root: bool = False,
    port: int = MASTER_PORT,
    on_gpu_nodes: bool = False,
) -> dict[str, Any]:
    """The JobSet of one multi-node step (see the module doc). ``env`` is the step's own environment; the
    rendezvous variables (:func:`torch_env`) are put first and win over entries of the same name."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
        raise ValueError(f"nodes={nodes!r}: a JobSet step has 2 or more nodes")
    rendezvous = torch_env(nodes, gpus_per_node=gpus, port=port)
    taken = {e["name"] for e in rendezvous}
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpu:
        requests["cpu"] = str(cpu)
    if memory:
        requests["memory"] = limits["memory"] = str(memory)
    if gpus:
        requests[gpu_resource] = limits[gpu_resource] = str(gpus)
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "command": list(command),
        "args": list(args),
        "env": rendezvous + [dict(e) for e in env if e["name"] not in taken],
        "ports": [{"name": "rendezvous", "containerPort": port, "protocol": "TCP"}],
        "securityContext": security.container_security_context(run_as_root=run_as_root),
        "volumeMounts": [*(dict(v) for v in volume_mounts), {"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
    }
    if requests or limits:
        container["resources"] = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "securityContext": security.pod_security_context(run_as_root=run_as_root),
        "containers": [container],
        "volumes": [*(dict(v) for v in volumes), {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}],
    }
    if gpus or on_gpu_nodes:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
        if node_selector:
            pod_spec["nodeSelector"] = dict(node_selector)
    job_spec: dict[str, Any] = {
        "parallelism": nodes,
        "completions": nodes,
        "completionMode": "Indexed",
        # one pod failing fails the Job at once; JobSet then restarts the whole group (failurePolicy)
        "backoffLimit": 0,
        "template": {"metadata": {"labels": dict(pod_labels or {})}, "spec": pod_spec},
    }
    if timeout:
        job_spec["activeDeadlineSeconds"] = int(timeout)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "generateName": generate_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "mlstack", **(labels or {})},
        },
        "spec": {
            "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
            "successPolicy": {"operator": "All"},
            "failurePolicy": {"maxRestarts": int(retries)},
            "replicatedJobs": [{"name": REPLICATED_JOB, "replicas": 1, "template": {"spec": job_spec}}],
        },
    }

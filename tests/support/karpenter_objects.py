"""The object shapes `mlstack plan` and `mlstack doctor` read for Karpenter and JobSet (issue #14).

These are the shapes the EksGpuCluster component must emit (and the JobSet rendering must produce): each is
valid against the pinned CRD in tests/crds/ (tests/test_crd_validation.py proves it), and the plan/doctor tests
build their recorded stacks and events from them. Names and labels used here are the contract:

- NodePool ``metadata.name`` = the GPU pool's name; ``spec.template.metadata.labels`` carry
  ``mlstack.dev/gpu=true``, ``mlstack.dev/node-pool=<name>`` and, for shared GPUs, ``mlstack.dev/gpu-sharing``
  (``time-slicing`` | ``mig``) with ``mlstack.dev/gpu-replicas`` (time-slicing) or NVIDIA's
  ``nvidia.com/mig.config`` (``all-<profile>`` / ``all-balanced``) and ``nvidia.com/device-plugin.config``
  (the device plugin's per-node config name); the GPU taint ``nvidia.com/gpu=true:NoSchedule``; ``limits``.
- EC2NodeClass: IMDSv2 required with hop limit 1, encrypted gp3 root, subnets/security groups by the
  ``karpenter.sh/discovery: <cluster>`` tag.
"""

from __future__ import annotations

import copy
from typing import Any

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def ec2_node_class(
    name: str = "gpu",
    *,
    cluster: str = "ml-gpu",
    role: str = "ml-gpu-karpenter-node",
    alias: str = "al2023@latest",
    metadata_options: dict[str, Any] | None = None,
    block_device_mappings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "amiSelectorTerms": [{"alias": alias}],
        "role": role,
        "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster}}],
        "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster}}],
        "metadataOptions": metadata_options
        if metadata_options is not None
        else {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": block_device_mappings
        if block_device_mappings is not None
        else [
            {
                "deviceName": "/dev/xvda",
                "rootVolume": True,
                "ebs": {
                    "volumeSize": "200Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": {"mlstack.dev/cluster": cluster},
    }
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "mlstack"}},
        "spec": spec,
    }


def node_pool(
    name: str = "a10g",
    *,
    node_class: str = "gpu",
    instance_types: list[str] | None = None,
    families: list[str] | None = None,
    capacity_types: tuple[str, ...] = ("spot", "on-demand"),
    zones: list[str] | None = None,
    limits: dict[str, Any] | None = None,
    sharing: dict[str, str] | None = None,
    extra_requirements: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A GPU NodePool; ``limits=None`` gives the default ceiling, ``limits={}`` none at all."""
    reqs: list[dict[str, Any]] = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(capacity_types)},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]
    if instance_types:
        reqs.append({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": instance_types})
    if families:
        reqs.append({"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": families})
    if zones:
        reqs.append({"key": "topology.kubernetes.io/zone", "operator": "In", "values": zones})
    reqs += extra_requirements or []
    labels = {"mlstack.dev/gpu": "true", "mlstack.dev/node-pool": name, **(sharing or {})}
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
                "requirements": reqs,
                "taints": [dict(GPU_TAINT)],
                "expireAfter": "336h",
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"},
    }
    chosen = {"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": "8"} if limits is None else limits
    if chosen:
        spec["limits"] = chosen
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "mlstack"}},
        "spec": spec,
    }


def node_claim(name: str = "a10g-x7k2p", *, pool: str = "a10g", node_class: str = "gpu") -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": {"karpenter.sh/nodepool": pool, "mlstack.dev/gpu": "true"},
        },
        "spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
            "requirements": [
                {"key": "karpenter.sh/nodepool", "operator": "In", "values": [pool]},
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": ["g5.xlarge", "g5.2xlarge"],
                },
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
            ],
            "resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1", "pods": "1"}},
            "taints": [dict(GPU_TAINT)],
        },
    }


def jobset(name: str = "train", *, nodes: int = 4, gpus: int = 8, image: str = "train:1.0") -> dict[str, Any]:
    """A multi-node step as a JobSet: one Job of ``nodes`` pods (indexed), rank 0 reachable through the
    JobSet's headless service (``<jobset>-<replicatedJob>-0-0.<subdomain>``)."""
    env = [
        {"name": "MASTER_ADDR", "value": f"{name}-node-0-0.{name}"},
        {"name": "MASTER_PORT", "value": "29500"},
        {"name": "WORLD_SIZE", "value": str(nodes)},
        {"name": "MLSTACK_NODES", "value": str(nodes)},
        {"name": "LOCAL_WORLD_SIZE", "value": "1"},
    ]
    # one process per pod: the node rank is the global rank (the Indexed Job's completion index)
    index = {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    env += [{"name": n, "valueFrom": dict(index)} for n in ("NODE_RANK", "RANK", "MLSTACK_NODE_RANK")]
    env.append({"name": "LOCAL_RANK", "value": "0"})
    pod = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "command": ["python", "-m", "mlstack.pipeline.entry"],
                    "env": env,
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
            "nodeSelector": {"mlstack.dev/gpu": "true"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
            ],
        }
    }
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "namespace": "ml-jobs"},
        "spec": {
            "network": {"enableDNSHostnames": True, "subdomain": name},
            "successPolicy": {"operator": "All"},
            "failurePolicy": {"maxRestarts": 0},
            "replicatedJobs": [
                {
                    "name": "node",
                    "replicas": 1,
                    "template": {
                        "spec": {
                            "parallelism": nodes,
                            "completions": nodes,
                            "completionMode": "Indexed",
                            "backoffLimit": 0,
                            "template": pod,
                        }
                    },
                }
            ],
        },
    }


def edited(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the dotted ``path`` (list indexes as numbers) set to ``value``."""
    out = copy.deepcopy(obj)
    cur: Any = out
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur.setdefault(p, {})
    last = parts[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return out

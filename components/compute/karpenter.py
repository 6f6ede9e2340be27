"""Karpenter as the GPU autoscaler of an EKS cluster: the controller, its AWS side, and one pool per GPU pool.

``Karpenter(name, KarpenterArgs(...), opts)`` takes plain typed inputs (the cluster's name, ARN, endpoint, OIDC
provider, the tag its subnets and security groups carry) and a Kubernetes provider in ``opts``, and creates:

- **the node role** (``AmazonEKSWorkerNodePolicy``, ``AmazonEC2ContainerRegistryPullOnly``,
  ``AmazonSSMManagedInstanceCore``; the VPC CNI has its own IRSA role) and its **EKS access entry** of type
  ``EC2_LINUX``, so nodes Karpenter launches can join without the aws-auth ConfigMap;
- **the interruption queue**: SQS with server-side encryption (SSE-SQS) and 5-minute retention (a late
  interruption notice is useless), a queue policy letting only EventBridge and SQS send, over TLS only, and
  **EventBridge rules** for AWS Health scheduled changes, EC2 Spot interruption warnings, rebalance
  recommendations and instance state changes, each targeting the queue;
- **the controller's IAM role**, through IRSA (default; the cluster's OIDC provider, exactly
  ``kube-system/karpenter``) or EKS Pod Identity (``identity="pod-identity"``), with a least-privilege policy
  after Karpenter's reference CloudFormation policy, scoped to this cluster: instances, fleets, launch
  templates and volumes only created with the request tags ``kubernetes.io/cluster/<cluster>=owned`` and
  ``karpenter.sh/nodepool``, terminated/deleted only when they carry them; ``iam:PassRole`` on the node role
  only (to EC2); instance profiles only with the cluster's tag; the queue by ARN; ``eks:DescribeCluster`` on
  the cluster's ARN; SSM parameters under ``/aws/service/`` and pricing reads;
- **the controller**: the ``karpenter-crd`` chart (the v1 CRDs: NodePool, NodeClaim, EC2NodeClass) and the
  ``karpenter`` chart, both pinned to :data:`KARPENTER_VERSION` (the CRDs in tests/crds are that release's),
  two replicas on the system nodes (``mlstack.dev/node-role=system``: Karpenter must not run on nodes it
  manages), the queue and cluster in its settings;
- **per GPU pool**: one ``EC2NodeClass`` (the AMI family alias, e.g. ``al2023@latest``: Karpenter picks the
  NVIDIA variant for GPU types; IMDSv2 required with hop limit 1; an encrypted gp3 root volume; subnets and
  security groups by the discovery tag) and one ``NodePool`` (instance types or families, capacity types,
  zones, the GPU taint, labels, ``limits``, ``disruption``, ``expireAfter``);
- **device-plugin sharing**: for pools that share GPUs, a ConfigMap of NVIDIA device-plugin configs, one
  entry per pool (time-slicing ``replicas``, or the MIG strategy), which nodes select with the label
  ``nvidia.com/device-plugin.config=<pool>`` (see docs/compute.md, Shared GPUs).

Which autoscaler: cluster-autoscaler stays ``EksGpuCluster``'s default (managed node groups, scale from zero
by template tags); Karpenter is opt-in. See docs/compute.md, "Scale from zero".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlstack import names, prices
from mlstack.plan import karpenter as _plan_karpenter

from .. import _policy, _tokens
from .._args import Problems
from . import gpu_types, versions

KARPENTER_VERSION = versions.KARPENTER_VERSION
"""Karpenter release of both charts (its v1 API CRDs are pinned in tests/crds at the same release)."""
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
KARPENTER_CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
GPU_LABEL = names.GPU_LABEL
POOL_LABEL = names.NODE_POOL_LABEL
SYSTEM_NODE_SELECTOR = {names.ROLE_LABEL: "system"}
GPU_TAINT = dict(names.GPU_TAINT)
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
DEVICE_PLUGIN_LABEL = names.DEVICE_PLUGIN_LABEL
"""Who advertises the node's GPUs: ``daemonset`` (the cluster's NVIDIA device plugin DaemonSet, as on
EksGpuCluster's AL2023 groups), ``os`` (Bottlerocket's built-in plugin), ``shared`` (this component's
per-pool DaemonSet with the pool's sharing config)."""
DEVICE_PLUGIN_CONFIG_PATH = "/etc/nvidia-device-plugin/config.yaml"
DEVICE_PLUGIN_CONFIGMAP = "nvidia-device-plugin-configs"
CAPACITY_TYPES = ("spot", "on-demand", "reserved")
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
_DURATION = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
_ALIAS = re.compile(r"^(al2023|bottlerocket)@(latest|v[0-9][0-9.]*)$")
# EventBridge patterns of the four notices Karpenter handles from its queue
EVENT_RULES: dict[str, dict[str, Any]] = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
}


@dataclass(frozen=True)
class TimeSlicing:
    """Share each GPU by time-slicing: the device plugin advertises it ``replicas`` times as
    ``nvidia.com/gpu.shared`` (``renameByDefault``), so a step asking for whole GPUs never lands on a slice.
    No memory or fault isolation between slices."""

    replicas: int


@dataclass(frozen=True)
class Mig:
    """Cut each GPU with Multi-Instance GPU (A100/H100/H200 types only).

    ``profile``: one profile filling every GPU (``"1g.10gb"``, ``"3g.40gb"``, ...) or ``"balanced"`` (NVIDIA's
    mixed layout). ``strategy``: ``"single"`` (MIG devices advertised as ``nvidia.com/gpu``; default, not with
    ``balanced``) or ``"mixed"`` (as ``nvidia.com/mig-<profile>``)."""

    profile: str
    strategy: Literal["single", "mixed"] = "single"


@dataclass(frozen=True)
class KarpenterPool:
    """One GPU pool: an EC2NodeClass and a NodePool of the same name."""

    name: str
    """Required. NodePool/EC2NodeClass name and ``mlstack.dev/node-pool`` label: lowercase, digits, '-'."""
    instance_types: tuple[str, ...] = ()
    """Exact GPU instance types (``g5.xlarge``...) from the shipped table; this or ``instance_families``.
    Default: none."""
    instance_families: tuple[str, ...] = ()
    """GPU instance families (``g5``, ``g6e``, ``p5``...): any size of them. Default: none (use types)."""
    capacity_types: tuple[str, ...] = ("spot", "on-demand")
    """``spot``, ``on-demand``, ``reserved``. Default: Spot first with On-Demand fallback (Karpenter prefers
    Spot when both are allowed)."""
    zones: tuple[str, ...] = ()
    """Availability zones to launch in. Default: every zone of the discovered subnets."""
    max_gpus: int = 8
    """``limits.nvidia.com/gpu``: the pool's ceiling in physical GPUs. Default 8."""
    max_cpu: int | None = None
    """``limits.cpu`` in vCPUs. Default: the most vCPUs ``max_gpus`` GPUs of the pool's types can bring."""
    max_memory_gib: int | None = None
    """``limits.memory`` in GiB. Default: the most memory ``max_gpus`` GPUs of the pool's types can bring."""
    static_nodes: int | None = None
    """A static pool of this many nodes (``spec.replicas``, limits ``nodes`` only). Required for time-slicing
    and MIG ``mixed``: Karpenter cannot launch for ``nvidia.com/gpu.shared`` or ``nvidia.com/mig-*`` requests.
    Default: None (Karpenter launches on demand, from zero)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra node labels. Default: none (the mlstack labels are always set)."""
    sharing: TimeSlicing | Mig | None = None
    """GPU sharing of the pool's nodes. Default: None (whole GPUs)."""
    consolidate_after: str = "10m"
    """How long a node stays empty before Karpenter removes it (``disruption.consolidateAfter``). Default 10m.
    Consolidation is ``WhenEmpty``: a node running a training pod is never moved to pack nodes tighter."""
    expire_after: str = "336h"
    """Node lifetime (``expireAfter``; 14 days, so AMIs and patches roll). ``Never`` to keep nodes."""
    disk_size_gib: int = 200
    """Encrypted gp3 root volume size (images with CUDA are large). Default 200."""
    ami_alias: str = "al2023@latest"
    """EC2NodeClass ``amiSelectorTerms`` alias: ``al2023@<version|latest>`` or ``bottlerocket@...``. Pin a
    version (``al2023@v20251117``) to roll AMIs only on a reviewed change. Default ``al2023@latest``."""


@dataclass(frozen=True)
class KarpenterArgs:
    """What the Karpenter component needs from the cluster, as plain values or Outputs."""

    cluster_name: pulumi.Input[str]
    """Required. The EKS cluster's name (settings.clusterName, the discovery tag's value, IAM scoping)."""
    cluster_arn: pulumi.Input[str]
    """Required. The cluster's ARN: the controller may describe this cluster only."""
    cluster_endpoint: pulumi.Input[str]
    """Required. The API server endpoint (settings.clusterEndpoint)."""
    pools: tuple[KarpenterPool, ...]
    """Required. The GPU pools, at least one."""
    oidc_provider_arn: pulumi.Input[str] | None = None
    """The cluster's IAM OIDC provider ARN. Required with ``identity="irsa"``; default None."""
    oidc_issuer_url: pulumi.Input[str] | None = None
    """The cluster's OIDC issuer URL. Required with ``identity="irsa"``; default None."""
    identity: Literal["irsa", "pod-identity"] = "irsa"
    """How the controller gets AWS credentials: IRSA (default) or EKS Pod Identity (needs the
    eks-pod-identity-agent add-on)."""
    discovery_tag: str = "karpenter.sh/discovery"
    """Tag key whose value is the cluster name on the subnets and security groups nodes use. Default
    ``karpenter.sh/discovery``."""
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """Subnets for nodes, by ID (e.g. the cluster's private subnets). Default: None (by ``discovery_tag``)."""
    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """Security groups for nodes, by ID (e.g. the EKS cluster security group). Default: None (by
    ``discovery_tag``)."""
    whole_gpu_device_plugin: bool = False
    """Also run the NVIDIA device plugin on the whole-GPU AL2023 pools' nodes (labelled
    ``mlstack.dev/device-plugin=daemonset``). Default False: EksGpuCluster's DaemonSet already serves nodes with
    that label; set True on a cluster without one. Sharing pools always get their own DaemonSet."""
    replicas: int = 2
    """Controller replicas (leader election; two survive a node loss). Default 2."""
    node_selector: Mapping[str, str] = field(default_factory=lambda: dict(SYSTEM_NODE_SELECTOR))
    """Where the controller runs: never on nodes it manages. Default: the system node group."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every AWS resource created here. Default: none."""


# ------------------------------------------------------------------------------------------------ validation
def _types_of(pool: KarpenterPool) -> list[prices.InstanceType]:
    table = prices.gpu_instance_types()
    if pool.instance_types:
        return [table[t] for t in pool.instance_types if t in table]
    return [t for t in table.values() if t.family in pool.instance_families]


def validate(args: KarpenterArgs, component: str = "Karpenter") -> None:
    """Every problem with ``args`` at once (InputPropertiesError), each naming its key, value and fix."""
    p = Problems(component)
    if args.identity not in ("irsa", "pod-identity"):
        p.add("identity", args.identity, "use 'irsa' (default) or 'pod-identity'")
    if args.identity == "irsa" and (args.oidc_provider_arn is None or args.oidc_issuer_url is None):
        p.add(
            "oidc_provider_arn",
            args.oidc_provider_arn,
            "IRSA needs the cluster's OIDC provider ARN and issuer",
        )
    if not isinstance(args.replicas, int) or args.replicas < 1:
        p.add("replicas", args.replicas, "a whole number >= 1")
    if not args.pools:
        p.add("pools", args.pools, "give at least one KarpenterPool")
    seen: set[str] = set()
    for i, pool in enumerate(args.pools):
        validate_pool(p, f"pools[{i}]", pool)
        if pool.name in seen:
            p.add(f"pools[{i}].name", pool.name, "pool names must be unique")
        seen.add(pool.name)
    p.raise_if_any()


def validate_pool(p: Problems, at: str, pool: KarpenterPool) -> None:
    if not isinstance(pool.name, str) or not _NAME.match(pool.name):
        p.add(
            f"{at}.name", pool.name, "lowercase letters, digits and '-', starting with a letter, <= 40 chars"
        )
    table = prices.gpu_instance_types()
    if not pool.instance_types and not pool.instance_families:
        p.add(f"{at}.instance_types", pool.instance_types, "give instance_types or instance_families")
    for t in pool.instance_types:
        if t not in table:
            p.add(f"{at}.instance_types", t, gpu_types.unknown_reason(t))
    families = sorted({t.family for t in table.values()})
    for f in pool.instance_families:
        if f not in families:
            p.add(
                f"{at}.instance_families",
                f,
                "not a GPU family of the shipped table; one of " + ", ".join(families),
            )
    bad = [c for c in pool.capacity_types if c not in CAPACITY_TYPES]
    if bad or not pool.capacity_types:
        p.add(f"{at}.capacity_types", pool.capacity_types, "one or more of " + ", ".join(CAPACITY_TYPES))
    if not isinstance(pool.max_gpus, int) or isinstance(pool.max_gpus, bool) or pool.max_gpus < 1:
        p.add(f"{at}.max_gpus", pool.max_gpus, "a whole number >= 1 (the pool's GPU ceiling)")
    for key in ("max_cpu", "max_memory_gib", "disk_size_gib"):
        v = getattr(pool, key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            p.add(f"{at}.{key}", v, "a whole number >= 1")
    if pool.static_nodes is not None and (not isinstance(pool.static_nodes, int) or pool.static_nodes < 0):
        p.add(f"{at}.static_nodes", pool.static_nodes, "a whole number >= 0, or None for a dynamic pool")
    for key in ("consolidate_after", "expire_after"):
        v = getattr(pool, key)
        if not isinstance(v, str) or not _DURATION.match(v) or (key == "consolidate_after" and v == "Never"):
            p.add(
                f"{at}.{key}",
                v,
                "a duration such as '10m', '1h30m', '336h'"
                + ("" if key == "consolidate_after" else " or 'Never'"),
            )
    if not isinstance(pool.ami_alias, str) or not _ALIAS.match(pool.ami_alias):
        p.add(
            f"{at}.ami_alias",
            pool.ami_alias,
            "al2023@latest, al2023@v<date>, bottlerocket@latest or bottlerocket@v<version>",
        )
    for k, v in dict(pool.labels).items():
        if str(k).split("/", 1)[0].endswith("karpenter.sh") or str(k).startswith("mlstack.dev/"):
            p.add(
                f"{at}.labels",
                k,
                "karpenter.sh and mlstack.dev labels are set by mlstack; choose another key",
            )
        if not isinstance(v, str) or len(v) > 63:
            p.add(f"{at}.labels[{k!r}]", v, "a label value: a string of at most 63 characters")
    s = pool.sharing
    if s is None:
        return
    if isinstance(pool.ami_alias, str) and pool.ami_alias.startswith("bottlerocket@"):
        p.add(
            f"{at}.ami_alias",
            pool.ami_alias,
            "a sharing pool runs mlstack's device plugin with the pool's config: use al2023@... (Bottlerocket's "
            "built-in plugin is configured through its own settings)",
        )
    if isinstance(s, TimeSlicing):
        if not isinstance(s.replicas, int) or isinstance(s.replicas, bool) or s.replicas < 2:
            p.add(f"{at}.sharing.replicas", s.replicas, "time-slicing needs a whole number of replicas >= 2")
        if pool.static_nodes is None:
            p.add(
                f"{at}.static_nodes",
                None,
                "a time-sliced pool must be static (Karpenter cannot launch for nvidia.com/gpu.shared): set "
                "static_nodes to the nodes to keep (mlstack plan shows the $/h per slice)",
            )
        return
    if not isinstance(s, Mig):
        p.add(f"{at}.sharing", s, "TimeSlicing(replicas=N), Mig(profile=..., strategy=...) or None")
        return
    if s.strategy not in ("single", "mixed"):
        p.add(f"{at}.sharing.strategy", s.strategy, "'single' or 'mixed'")
    if s.profile == "balanced" and s.strategy == "single":
        p.add(f"{at}.sharing.strategy", s.strategy, "'balanced' mixes profiles: it needs strategy='mixed'")
    if s.strategy == "mixed" and pool.static_nodes is None:
        p.add(
            f"{at}.static_nodes",
            None,
            "a MIG 'mixed' pool must be static (Karpenter cannot launch for nvidia.com/mig-* requests): set "
            "static_nodes",
        )
    table_s = _plan_karpenter.sharing_table()
    classes: dict[str, str] = table_s["mig_gpu_class_by_family"]
    for it in _types_of(pool) if pool.instance_types else []:
        if it.family not in classes:
            p.add(
                f"{at}.sharing",
                f"Mig(profile={s.profile!r}) on {it.name}",
                f"{it.name} ({it.gpu_model}) is not MIG-capable; MIG runs on "
                + ", ".join(sorted(classes))
                + " (A100/H100/H200); use TimeSlicing there",
            )
    for f in pool.instance_families:
        if f not in classes:
            p.add(
                f"{at}.sharing",
                f"Mig(profile={s.profile!r}) on family {f}",
                f"{f} is not MIG-capable; MIG runs on "
                + ", ".join(sorted(classes))
                + "; use TimeSlicing there",
            )
    if s.profile != "balanced":
        for cls in sorted({classes[t.family] for t in _types_of(pool) if t.family in classes}):
            profiles = table_s["mig_layouts"][cls]["all"]
            if s.profile not in profiles:
                p.add(
                    f"{at}.sharing.profile",
                    s.profile,
                    f"not a MIG profile of {cls}; one of {', '.join(profiles)} or 'balanced'",
                )


# ------------------------------------------------------------------------------------------------ objects
def sharing_labels(pool: KarpenterPool) -> dict[str, str]:
    """The node labels that say how the pool shares its GPUs (what plan, doctor and the device plugin read)."""
    s = pool.sharing
    if isinstance(s, TimeSlicing):
        return {
            _plan_karpenter.SHARING_LABEL: "time-slicing",
            _plan_karpenter.REPLICAS_LABEL: str(s.replicas),
            DEVICE_PLUGIN_CONFIG_LABEL: pool.name,
        }
    if isinstance(s, Mig):
        return {
            _plan_karpenter.SHARING_LABEL: "mig",
            _plan_karpenter.MIG_CONFIG_LABEL: "all-balanced"
            if s.profile == "balanced"
            else f"all-{s.profile}",
            _plan_karpenter.MIG_STRATEGY_LABEL: s.strategy,
            DEVICE_PLUGIN_CONFIG_LABEL: pool.name,
        }
    return {}


def device_plugin_mode(pool: KarpenterPool) -> str:
    """The ``mlstack.dev/device-plugin`` label of the pool's nodes (see :data:`DEVICE_PLUGIN_LABEL`)."""
    if pool.sharing is not None:
        return "shared"
    return "os" if pool.ami_alias.startswith("bottlerocket@") else "daemonset"


def device_plugin_config(pool: KarpenterPool) -> dict[str, Any] | None:
    """The NVIDIA device plugin's config file for the pool's nodes (None: whole GPUs, the plugin's default)."""
    s = pool.sharing
    if isinstance(s, TimeSlicing):
        return {
            "version": "v1",
            "flags": {"migStrategy": "none"},
            "sharing": {
                "timeSlicing": {
                    # advertise slices as nvidia.com/gpu.shared: whole-GPU requests never get a slice
                    "renameByDefault": True,
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": "nvidia.com/gpu", "replicas": s.replicas}],
                }
            },
        }
    if isinstance(s, Mig):
        return {"version": "v1", "flags": {"migStrategy": s.strategy}}
    return None


def _default_limits(pool: KarpenterPool) -> dict[str, str]:
    """limits: GPUs, and the vCPUs/memory the most CPU-/memory-rich way to hold ``max_gpus`` GPUs brings, so
    the pool's ceiling is its GPUs and every candidate type is bounded (KARP-004)."""
    types = _types_of(pool) or list(prices.gpu_instance_types().values())
    per_gpu_cpu = max(t.vcpus / t.gpus for t in types)
    per_gpu_mem = max(t.memory_gib / t.gpus for t in types)
    cpu = pool.max_cpu if pool.max_cpu is not None else int(-(-pool.max_gpus * per_gpu_cpu // 1))
    mem = (
        pool.max_memory_gib if pool.max_memory_gib is not None else int(-(-pool.max_gpus * per_gpu_mem // 1))
    )
    return {"cpu": str(cpu), "memory": f"{mem}Gi", "nvidia.com/gpu": str(pool.max_gpus)}


def ec2_node_class_spec(
    pool: KarpenterPool,
    *,
    cluster_name: str,
    node_role: str,
    discovery_tag: str,
    tags: Mapping[str, str] | None = None,
    subnet_ids: Sequence[str] | None = None,
    security_group_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    by_tag = [{"tags": {discovery_tag: cluster_name}}]
    subnets = [{"id": i} for i in subnet_ids] if subnet_ids else by_tag
    groups = [{"id": i} for i in security_group_ids] if security_group_ids else by_tag
    family = pool.ami_alias.split("@", 1)[0]
    # Bottlerocket: a small OS volume and a data volume for images; AL2023: one root volume
    volumes = (
        [
            _ebs("/dev/xvda", 4, root=False),
            _ebs("/dev/xvdb", pool.disk_size_gib, root=True),
        ]
        if family == "bottlerocket"
        else [_ebs("/dev/xvda", pool.disk_size_gib, root=True)]
    )
    return {
        "amiSelectorTerms": [{"alias": pool.ami_alias}],
        "role": node_role,
        "subnetSelectorTerms": subnets,
        "securityGroupSelectorTerms": groups,
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            # pods cannot reach the node's credentials through IMDS (they use IRSA)
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": volumes,
        "tags": {"mlstack.dev/cluster": cluster_name, "mlstack.dev/node-pool": pool.name, **dict(tags or {})},
    }


def _ebs(device: str, gib: int, *, root: bool) -> dict[str, Any]:
    m: dict[str, Any] = {
        "deviceName": device,
        "ebs": {
            "volumeSize": f"{gib}Gi",
            "volumeType": "gp3",
            "encrypted": True,
            "deleteOnTermination": True,
        },
    }
    if root:
        m["rootVolume"] = True
    return m


def node_pool_spec(pool: KarpenterPool, node_class: str) -> dict[str, Any]:
    reqs: list[dict[str, Any]] = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(pool.capacity_types)},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    if pool.instance_types:
        reqs.append(
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(pool.instance_types)}
        )
    else:
        reqs.append(
            {
                "key": "karpenter.k8s.aws/instance-family",
                "operator": "In",
                "values": list(pool.instance_families),
            }
        )
        # families hold GPU types only in the table, but say so: never a CPU-only size
        reqs.append({"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]})
    if pool.zones:
        reqs.append({"key": "topology.kubernetes.io/zone", "operator": "In", "values": list(pool.zones)})
    labels = {
        GPU_LABEL: "true",
        POOL_LABEL: pool.name,
        DEVICE_PLUGIN_LABEL: device_plugin_mode(pool),
        **dict(pool.labels),
        **sharing_labels(pool),
    }
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
                "requirements": reqs,
                "taints": [dict(GPU_TAINT)],
                "expireAfter": pool.expire_after,
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": pool.consolidate_after},
    }
    if pool.static_nodes is not None:
        spec["replicas"] = pool.static_nodes
        spec["limits"] = {"nodes": str(pool.static_nodes)}
    else:
        spec["limits"] = _default_limits(pool)
    return spec


def controller_statements(
    *,
    cluster_name: str,
    cluster_arn: str,
    node_role_arn: str,
    queue_arn: str,
    region: str,
    partition: str = "aws",
) -> list[dict[str, Any]]:
    """The controller's IAM statements (plain values), scoped to this cluster."""
    owned = f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}"
    res_owned = f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}"
    ec2 = f"arn:{partition}:ec2:{region}:*"
    st = _policy.statement
    tagged_request = {
        "StringEquals": {owned: "owned", "aws:RequestTag/eks:eks-cluster-name": cluster_name},
        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
    }
    tagged_resource = {
        "StringEquals": {res_owned: "owned"},
        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
    }
    return [
        # launch only into this cluster's launch templates, subnets, security groups and images
        st(
            "AllowScopedEC2InstanceAccessActions",
            ["ec2:RunInstances", "ec2:CreateFleet"],
            [
                f"arn:{partition}:ec2:{region}::image/*",
                f"arn:{partition}:ec2:{region}::snapshot/*",
                f"{ec2}:security-group/*",
                f"{ec2}:subnet/*",
                f"{ec2}:capacity-reservation/*",
            ],
        ),
        st(
            "AllowScopedEC2LaunchTemplateAccessActions",
            ["ec2:RunInstances", "ec2:CreateFleet"],
            [f"{ec2}:launch-template/*"],
            conditions=tagged_resource,
        ),
        st(
            "AllowScopedEC2InstanceActionsWithTags",
            ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            [
                f"{ec2}:fleet/*",
                f"{ec2}:instance/*",
                f"{ec2}:volume/*",
                f"{ec2}:network-interface/*",
                f"{ec2}:launch-template/*",
                f"{ec2}:spot-instances-request/*",
            ],
            conditions=tagged_request,
        ),
        st(
            "AllowScopedResourceCreationTagging",
            ["ec2:CreateTags"],
            [
                f"{ec2}:fleet/*",
                f"{ec2}:instance/*",
                f"{ec2}:volume/*",
                f"{ec2}:network-interface/*",
                f"{ec2}:launch-template/*",
                f"{ec2}:spot-instances-request/*",
            ],
            conditions={
                **tagged_request,
                "StringEqualsIfExists": {
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
                },
            },
        ),
        st(
            "AllowScopedResourceTagging",
            ["ec2:CreateTags"],
            [f"{ec2}:instance/*"],
            conditions={
                **tagged_resource,
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        ),
        st(
            "AllowScopedDeletion",
            ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            [f"{ec2}:instance/*", f"{ec2}:launch-template/*"],
            conditions=tagged_resource,
        ),
        st(
            "AllowRegionalReadActions",
            [
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            ["*"],  # EC2 Describe* have no resource-level permissions
            conditions={"StringEquals": {"aws:RequestedRegion": region}},
        ),
        st(
            "AllowSSMReadActions",
            ["ssm:GetParameter"],
            [f"arn:{partition}:ssm:{region}::parameter/aws/service/*"],
        ),
        st("AllowPricingReadActions", ["pricing:GetProducts"], ["*"]),  # no resource-level permissions
        st(
            "AllowInterruptionQueueActions",
            ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            [queue_arn],
        ),
        st(
            "AllowPassingInstanceRole",
            ["iam:PassRole"],
            [node_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com"]}},
        ),
        st(
            "AllowScopedInstanceProfileCreationActions",
            ["iam:CreateInstanceProfile"],
            [f"arn:{partition}:iam::*:instance-profile/*"],
            conditions={
                "StringEquals": {
                    owned: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        ),
        st(
            "AllowScopedInstanceProfileTagActions",
            ["iam:TagInstanceProfile"],
            [f"arn:{partition}:iam::*:instance-profile/*"],
            conditions={
                "StringEquals": {
                    res_owned: "owned",
                    "aws:ResourceTag/topology.kubernetes.io/region": region,
                    owned: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster_name,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {
                    "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                    "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                },
            },
        ),
        st(
            "AllowScopedInstanceProfileActions",
            [
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
            ],
            [f"arn:{partition}:iam::*:instance-profile/*"],
            conditions={
                "StringEquals": {res_owned: "owned", "aws:ResourceTag/topology.kubernetes.io/region": region},
                "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        ),
        st(
            "AllowInstanceProfileReadActions",
            ["iam:GetInstanceProfile", "iam:ListInstanceProfiles"],
            [f"arn:{partition}:iam::*:instance-profile/*"],
        ),
        st("AllowAPIServerEndpointDiscovery", ["eks:DescribeCluster"], [cluster_arn]),
    ]


# ------------------------------------------------------------------------------------------------ component
class Karpenter(pulumi.ComponentResource):
    """Karpenter for GPU pools on an existing EKS cluster (see the module doc). ``opts.provider`` must be the
    cluster's Kubernetes provider (``providers`` works too)."""

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        validate(args)
        super().__init__(_tokens.token("Karpenter"), name, None, opts)
        self.args = args
        tags = {"mlstack:component": name, **dict(args.tags)}
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output().region
        partition = aws.get_partition_output().partition

        # -------------------------------------------------------------- nodes: role + access entry
        self.node_role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=_policy.service_trust_policy("ec2.amazonaws.com"),
            description="Nodes Karpenter launches for mlstack GPU pools",
            tags=tags,
            opts=child,
        )
        for i, policy in enumerate(
            (
                "AmazonEKSWorkerNodePolicy",
                "AmazonEC2ContainerRegistryPullOnly",
                "AmazonSSMManagedInstanceCore",
            )
        ):
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{i}",
                role=self.node_role.name,
                policy_arn=pulumi.Output.concat("arn:", partition, f":iam::aws:policy/{policy}"),
                opts=child,
            )
        self.access_entry = aws.eks.AccessEntry(
            f"{name}-node",
            cluster_name=args.cluster_name,
            principal_arn=self.node_role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=child,
        )

        # -------------------------------------------------------------- interruption queue + rules
        self.queue = aws.sqs.Queue(
            f"{name}-interruption",
            message_retention_seconds=300,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=self.queue.url,
            policy=_policy.policy_json(
                [
                    _policy.statement(
                        "EventsToQueue",
                        ["sqs:SendMessage"],
                        [self.queue.arn],
                        principals={"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                    ),
                    _policy.statement(
                        "DenyHTTP",
                        ["sqs:*"],
                        [self.queue.arn],
                        effect="Deny",
                        principals={"AWS": "*"},
                        conditions={"Bool": {"aws:SecureTransport": "false"}},
                    ),
                ]
            ),
            opts=child,
        )
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        for key, pattern in EVENT_RULES.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                description=f"Karpenter interruption handling: {pattern['detail-type'][0]}",
                event_pattern=json.dumps(pattern, sort_keys=True),
                tags=tags,
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{key}",
                rule=rule.name,
                arn=self.queue.arn,
                target_id="KarpenterInterruptionQueue",
                opts=child,
            )
            self.rules[key] = rule

        # -------------------------------------------------------------- controller identity
        if args.identity == "irsa":
            # validate() refused irsa without both
            assert args.oidc_provider_arn is not None and args.oidc_issuer_url is not None
            trust = _policy.irsa_trust_policy(
                args.oidc_provider_arn, args.oidc_issuer_url, NAMESPACE, SERVICE_ACCOUNT
            )
        else:
            trust = pulumi.Output.from_input(_pod_identity_trust())
        self.controller_role = aws.iam.Role(
            f"{name}-controller", assume_role_policy=trust, tags=tags, opts=child
        )
        statements = pulumi.Output.all(
            args.cluster_name, args.cluster_arn, self.node_role.arn, self.queue.arn, region, partition
        ).apply(
            lambda v: controller_statements(
                cluster_name=v[0],
                cluster_arn=v[1],
                node_role_arn=v[2],
                queue_arn=v[3],
                region=v[4],
                partition=v[5],
            )
        )
        self.controller_policy = aws.iam.RolePolicy(
            f"{name}-controller",
            role=self.controller_role.name,
            policy=statements.apply(
                lambda s: json.dumps({"Version": "2012-10-17", "Statement": s}, sort_keys=True)
            ),
            opts=child,
        )
        if args.identity == "pod-identity":
            aws.eks.PodIdentityAssociation(
                f"{name}-controller",
                cluster_name=args.cluster_name,
                namespace=NAMESPACE,
                service_account=SERVICE_ACCOUNT,
                role_arn=self.controller_role.arn,
                tags=tags,
                opts=child,
            )

        # -------------------------------------------------------------- controller (charts)
        kopts = pulumi.ResourceOptions(parent=self)
        self.crds = k8s.helm.v3.Release(
            f"{name}-crd",
            name="karpenter-crd",
            chart=KARPENTER_CRD_CHART,
            version=KARPENTER_VERSION,
            namespace=NAMESPACE,
            atomic=True,
            opts=kopts,
        )
        sa_annotations = (
            {"eks.amazonaws.com/role-arn": self.controller_role.arn} if args.identity == "irsa" else {}
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-controller",
            name="karpenter",
            chart=KARPENTER_CHART,
            version=KARPENTER_VERSION,
            namespace=NAMESPACE,
            skip_crds=True,  # the karpenter-crd release owns them (and upgrades them, which helm's crds/ never does)
            atomic=True,
            values={
                "replicas": args.replicas,
                "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "annotations": sa_annotations},
                "settings": {
                    "clusterName": args.cluster_name,
                    "clusterEndpoint": args.cluster_endpoint,
                    "interruptionQueue": self.queue.name,
                },
                "nodeSelector": dict(args.node_selector),
                "controller": {
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "1Gi"},
                        "limits": {"memory": "1Gi"},
                    }
                },
                "podDisruptionBudget": {"name": "karpenter", "maxUnavailable": 1},
            },
            opts=pulumi.ResourceOptions.merge(
                kopts, pulumi.ResourceOptions(depends_on=[self.crds, self.controller_policy])
            ),
        )

        # -------------------------------------------------------------- pools
        self.node_classes: dict[str, k8s.apiextensions.CustomResource] = {}
        self.node_pools: dict[str, k8s.apiextensions.CustomResource] = {}
        after_release = pulumi.ResourceOptions.merge(
            kopts, pulumi.ResourceOptions(depends_on=[self.release, self.access_entry])
        )
        managed = {"app.kubernetes.io/managed-by": "mlstack"}
        for pool in args.pools:

            def class_spec(v: list[Any], pool: KarpenterPool = pool) -> dict[str, Any]:
                return ec2_node_class_spec(
                    pool,
                    cluster_name=v[0],
                    node_role=v[1],
                    discovery_tag=args.discovery_tag,
                    tags=args.tags,
                    subnet_ids=v[2],
                    security_group_ids=v[3],
                )

            node_class = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}",
                api_version="karpenter.k8s.aws/v1",
                kind="EC2NodeClass",
                metadata={"name": pool.name, "labels": managed},
                spec=pulumi.Output.all(
                    args.cluster_name, self.node_role.name, args.subnet_ids, args.security_group_ids
                ).apply(class_spec),
                opts=after_release,
            )
            self.node_classes[pool.name] = node_class
            self.node_pools[pool.name] = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": pool.name, "labels": managed},
                spec=node_pool_spec(pool, pool.name),
                opts=pulumi.ResourceOptions.merge(
                    after_release, pulumi.ResourceOptions(depends_on=[node_class])
                ),
            )
        configs = {p.name: device_plugin_config(p) for p in args.pools if p.sharing is not None}
        self.device_plugin_configs: k8s.core.v1.ConfigMap | None = None
        if configs:
            self.device_plugin_configs = k8s.core.v1.ConfigMap(
                f"{name}-device-plugin-configs",
                metadata={"name": DEVICE_PLUGIN_CONFIGMAP, "namespace": NAMESPACE, "labels": managed},
                data={k: json.dumps(v, indent=2, sort_keys=True) for k, v in sorted(configs.items())},
                opts=kopts,
            )
        # one device plugin DaemonSet per sharing pool, with that pool's config; whole-GPU pools use the
        # cluster's DaemonSet (or one of ours when asked)
        self.device_plugins: dict[str, k8s.apps.v1.DaemonSet] = {}
        for pool in args.pools:
            if pool.sharing is not None:
                assert self.device_plugin_configs is not None  # made above for every sharing pool
                self.device_plugins[pool.name] = k8s.apps.v1.DaemonSet(
                    f"{name}-device-plugin-{pool.name}",
                    **device_plugin_daemonset(
                        f"nvidia-device-plugin-{pool.name}", {POOL_LABEL: pool.name}, pool.name
                    ),
                    opts=pulumi.ResourceOptions.merge(
                        kopts, pulumi.ResourceOptions(depends_on=[self.device_plugin_configs])
                    ),
                )
        whole = [p.name for p in args.pools if device_plugin_mode(p) == "daemonset"]
        if args.whole_gpu_device_plugin and whole:
            self.device_plugins["*"] = k8s.apps.v1.DaemonSet(
                f"{name}-device-plugin",
                **device_plugin_daemonset("nvidia-device-plugin-karpenter", None, None, pools=whole),
                opts=kopts,
            )
        for key in self.device_plugins:
            ds_name = "nvidia-device-plugin-karpenter" if key == "*" else f"nvidia-device-plugin-{key}"
            # the plugin needs no network (unix sockets to the kubelet): deny both directions
            k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
                f"{name}-device-plugin-{'all' if key == '*' else key}",
                metadata={"name": ds_name, "namespace": NAMESPACE, "labels": managed},
                spec={
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": ds_name}},
                    "policyTypes": ["Ingress", "Egress"],
                },
                opts=kopts,
            )
        self.register_outputs(
            {
                "node_role_arn": self.node_role.arn,
                "controller_role_arn": self.controller_role.arn,
                "interruption_queue": self.queue.name,
                "node_pools": sorted(self.node_pools),
            }
        )


def device_plugin_daemonset(
    ds_name: str,
    node_labels: Mapping[str, str] | None,
    config_key: str | None,
    *,
    pools: Sequence[str] = (),
) -> dict[str, Any]:
    """``metadata``/``spec`` of an NVIDIA device plugin DaemonSet (pinned image, no API token, RuntimeDefault
    seccomp, no privilege escalation, limits) on the nodes with ``node_labels`` (or of ``pools``), reading the
    config file ``config_key`` of the configs ConfigMap when given."""
    from . import versions

    labels = {"app.kubernetes.io/name": ds_name, "app.kubernetes.io/managed-by": "mlstack"}
    match = [{"key": GPU_LABEL, "operator": "In", "values": ["true"]}]
    match += [{"key": k, "operator": "In", "values": [v]} for k, v in sorted((node_labels or {}).items())]
    if pools:
        match.append({"key": POOL_LABEL, "operator": "In", "values": sorted(pools)})
    env = [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}]
    mounts: list[dict[str, Any]] = [{"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"}]
    volumes: list[dict[str, Any]] = [
        {"name": "device-plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}
    ]
    if config_key is not None:
        env.append({"name": "CONFIG_FILE", "value": DEVICE_PLUGIN_CONFIG_PATH})
        mounts.append(
            {"name": "config", "mountPath": DEVICE_PLUGIN_CONFIG_PATH.rsplit("/", 1)[0], "readOnly": True}
        )
        volumes.append(
            {
                "name": "config",
                "configMap": {
                    "name": DEVICE_PLUGIN_CONFIGMAP,
                    "items": [{"key": config_key, "path": DEVICE_PLUGIN_CONFIG_PATH.rsplit("/", 1)[1]}],
                },
            }
        )
    return {
        "metadata": {"name": ds_name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": ds_name}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "automountServiceAccountToken": False,  # it talks to the kubelet's socket only
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": match}]
                            }
                        }
                    },
                    "tolerations": [
                        {"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    ],
                    "containers": [
                        {
                            "name": "nvidia-device-plugin",
                            "image": versions.NVIDIA_DEVICE_PLUGIN_IMAGE,
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"cpu": "100m", "memory": "128Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "privileged": False,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


def _pod_identity_trust() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        },
        sort_keys=True,
    )


def pool_from_group(g: Any) -> KarpenterPool:
    """The Karpenter pool standing in for an EksGpuCluster GPU group (``autoscaler="karpenter"``): its types, Spot
    with On-Demand fallback for a SPOT group (On-Demand only otherwise), ``max_size`` x GPUs per node as the
    GPU limit, its labels and disk, the AMI family of its AMI type."""
    capacity = str(getattr(g.capacity_type, "value", g.capacity_type))
    return KarpenterPool(
        name=g.name,
        instance_types=tuple(g.instance_types),
        capacity_types=("spot", "on-demand") if capacity == "SPOT" else ("on-demand",),
        max_gpus=max(1, g.max_size * g.gpus_per_node),
        labels={k: v for k, v in dict(g.labels).items() if not str(k).startswith("mlstack.dev/")},
        disk_size_gib=g.disk_size_gib,
        ami_alias="bottlerocket@latest" if "BOTTLEROCKET" in str(g.ami_type) else "al2023@latest",
    )


def pools_from(values: Sequence[Mapping[str, Any]]) -> tuple[KarpenterPool, ...]:
    """KarpenterPools from plain mappings (Pulumi config, YAML): ``sharing`` as
    ``{"time_slicing": {"replicas": 4}}`` or ``{"mig": {"profile": "1g.10gb", "strategy": "single"}}``."""
    out = []
    for v in values:
        d = dict(v)
        s = d.pop("sharing", None)
        sharing: TimeSlicing | Mig | None = None
        if isinstance(s, Mapping) and "time_slicing" in s:
            sharing = TimeSlicing(**s["time_slicing"])
        elif isinstance(s, Mapping) and "mig" in s:
            sharing = Mig(**s["mig"])
        for k in ("instance_types", "instance_families", "capacity_types", "zones"):
            if k in d:
                d[k] = tuple(d[k])
        out.append(KarpenterPool(**d, sharing=sharing))
    return tuple(out)


__all__ = [
    "KARPENTER_VERSION",
    "Karpenter",
    "KarpenterArgs",
    "KarpenterPool",
    "Mig",
    "TimeSlicing",
    "controller_statements",
    "device_plugin_config",
    "ec2_node_class_spec",
    "node_pool_spec",
    "pools_from",
    "validate",
]

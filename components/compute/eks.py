"""EksGpuCluster: an EKS cluster for GPU jobs, built from pulumi-aws and pulumi-kubernetes resources.

What it creates (docs/compute.md has the picture and the reasons):

- a VPC with private subnets in two or three zones behind NAT, unless the caller passes its own VPC;
- EKS with KMS envelope encryption of Secrets (key rotation on), control-plane logs to CloudWatch, a private
  API endpoint (public only to an explicit CIDR list) and access entries instead of the aws-auth ConfigMap;
- an IAM OIDC provider for IRSA, managed add-ons (vpc-cni through its own IRSA role, kube-proxy, coredns);
- a system node group and GPU managed node groups with the taint ``nvidia.com/gpu=true:NoSchedule``, IMDSv2
  required through a launch template, encrypted gp3 disks;
- the NVIDIA device plugin (pinned) and cluster-autoscaler (pinned, IRSA) with node-template tags on every GPU
  group's Auto Scaling group, so groups scale from zero;
- a jobs namespace and a service account whose IRSA role trusts exactly that service account and the STS
  audience; the artifact store and data layer grant to that role and nothing else.
"""

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlstack.manifest import validate_section

from .. import _network_policy, _policy
from .._args import InputPropertiesError, Problems, is_known
from . import gpu_types, versions

GPU_LABEL = "mlstack.dev/gpu"
"""Node label every GPU group carries (value ``"true"``); the manifest's node selector uses it."""
ROLE_LABEL = "mlstack.dev/node-role"
DEVICE_PLUGIN_LABEL = "mlstack.dev/device-plugin"
"""``daemonset`` on AL2023 groups (mlstack runs the plugin), ``os`` on Bottlerocket (the OS runs it)."""
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
"""Label JobSet puts on its pods; the jobs namespace lets pods carrying it reach each other."""
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
ALL_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
SYSTEM_AMI_TYPES = (
    "AL2023_x86_64_STANDARD",
    "AL2023_ARM_64_STANDARD",
    "BOTTLEROCKET_x86_64",
    "BOTTLEROCKET_ARM_64",
)
_RESERVED_LABEL_PREFIXES = (
    "mlstack.dev/",
    "k8s.amazonaws.com/",
    "eks.amazonaws.com/",
    "kubernetes.io/",
    "node.kubernetes.io/",
)
_GROUP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")
AUTOSCALER_PORT = 8085
"""cluster-autoscaler's HTTP port (/health-check, /metrics): its --address default."""


class GpuNodeGroupArgs(TypedDict, total=False):
    """One GPU managed node group. Every GPU node carries the taint ``nvidia.com/gpu=true:NoSchedule``."""

    name: str
    """Required. The group's name (lowercase letters, digits, '-'; at most 32), unique in the cluster."""
    instance_types: list[str]
    """Required. GPU instance types from the shipped table (docs/compute.md), all with the same GPU count
    (cluster-autoscaler builds one node template per group). Several types help SPOT capacity."""
    min_size: int
    """Default: 0 (the group scales to zero when no GPU pod is pending)."""
    desired_size: int
    """Initial node count; cluster-autoscaler owns it afterwards (changes are ignored). Default: min_size."""
    max_size: int
    """Default: 2. The cap on this group's nodes (and its worst-case hourly cost in `mlstack plan`)."""
    capacity_type: Literal["ON_DEMAND", "SPOT"]
    """Default: "ON_DEMAND". "SPOT" is cheaper and can be reclaimed at two minutes' notice."""
    ami_type: Literal["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"]
    """Default: "AL2023_x86_64_NVIDIA" (EKS-optimized AL2023 with the NVIDIA driver; mlstack runs the device
    plugin). "BOTTLEROCKET_x86_64_NVIDIA": the OS ships driver and device plugin."""
    disk_size_gib: int
    """Default: 200. Encrypted gp3 volume for images and scratch (CUDA images are large). On Bottlerocket
    this sizes the data volume (/dev/xvdb)."""
    labels: dict[str, str]
    """Extra node labels. Default: none. mlstack always adds ``mlstack.dev/gpu: "true"``, the group name and
    ``k8s.amazonaws.com/accelerator``; keys under mlstack.dev/, kubernetes.io/ and eks.amazonaws.com/ are
    reserved."""
    subnet_ids: list[str]
    """Subnets for this group only, e.g. the one zone holding a capacity reservation. Default: every private
    subnet of the cluster."""


class SystemNodeGroupArgs(TypedDict, total=False):
    """The always-on node group running coredns, cluster-autoscaler and the Argo controller."""

    instance_types: list[str]
    """Default: ["m6i.large"]."""
    min_size: int
    """Default: 2 (one per zone, so the cluster's own services survive a zone outage)."""
    desired_size: int
    """Default: min_size."""
    max_size: int
    """Default: 4."""
    capacity_type: Literal["ON_DEMAND", "SPOT"]
    """Default: "ON_DEMAND"."""
    ami_type: Literal[
        "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"
    ]
    """Default: "AL2023_x86_64_STANDARD"."""
    disk_size_gib: int
    """Default: 50."""


class EksGpuClusterArgs(TypedDict, total=False):
    """Arguments of :class:`EksGpuCluster`. Every field is optional."""

    cluster_name: str
    """EKS cluster name. Default: "<project>-<stack>-<component name>" (at most 100 characters)."""
    kubernetes_version: str
    """Kubernetes minor version. Default: the newest in components/compute/versions.py ("1.35")."""
    vpc_id: pulumi.Input[str]
    """Bring your own VPC (with private_subnet_ids). Default: a new VPC is created."""
    private_subnet_ids: Sequence[pulumi.Input[str]]
    """Your private subnets, at least two zones, with a route to NAT or VPC endpoints. Default: created."""
    vpc_cidr: str
    """CIDR of the new VPC (only without vpc_id). Default: "10.40.0.0/16"."""
    availability_zones: list[str]
    """Zones of the new VPC, two or three (only without vpc_id). Default: "<region>a" and "<region>b". Pick
    zones that offer your GPU types (`aws ec2 describe-instance-type-offerings --location-type
    availability-zone`): GPU capacity differs by zone."""
    nat_gateways: Literal["single", "per_zone"]
    """NAT for the new VPC (only without vpc_id). Default: "single" (one gateway, lower cost; a zone outage
    cuts egress). "per_zone" survives a zone outage at one gateway per zone."""
    public_access_cidrs: list[str]
    """CIDRs that may reach the API endpoint over the internet. Default: none, the endpoint is private: run
    `pulumi up` and kubectl from inside the VPC (VPN, bastion, CI runner) or list your egress CIDR here."""
    admin_role_arns: list[str]
    """IAM roles/users given cluster-admin through EKS access entries. Default: none besides the identity
    that creates the cluster."""
    kms_key_arn: pulumi.Input[str]
    """KMS key for envelope encryption of Kubernetes Secrets. Default: a new key with yearly rotation."""
    log_types: list[str]
    """Control-plane log types sent to CloudWatch; must include api, audit and authenticator.
    Default: ["api", "audit", "authenticator"]."""
    log_retention_days: int
    """Retention of the control-plane log group. Default: 90."""
    system_node_group: SystemNodeGroupArgs
    """The system node group. Default: 2 x m6i.large on demand (see SystemNodeGroupArgs)."""
    gpu_node_groups: list[GpuNodeGroupArgs]
    """GPU node groups (at least one). Default: one group "gpu" of g5.xlarge, 0..2 nodes, on demand."""
    imds_hop_limit: int
    """IMDSv2 response hop limit on every node, 1 or 2. Default: 1, so pods (which sit one network hop
    behind the node) cannot read the node role's credentials and must use IRSA. 2 lets pods reach IMDS."""
    cluster_autoscaler: bool
    """Run cluster-autoscaler (pinned, IRSA) for scale-from-zero. Default: True."""
    device_plugin: bool
    """Run the pinned NVIDIA device plugin DaemonSet on AL2023 GPU nodes. Default: True."""
    node_auto_repair: bool
    """EKS node auto repair on every group plus the eks-node-monitoring-agent add-on, so a node whose GPU
    reports a fault (XID errors) is replaced instead of failing every job scheduled on it. Default: True."""
    jobs_namespace: str
    """Namespace where jobs run. Default: "ml-jobs"."""
    jobs_service_account: str
    """Service account jobs run as, bound to the IRSA jobs role. Default: "mlstack-jobs"."""
    jobs_pod_security: Literal["restricted", "baseline"]
    """Pod Security Standard the jobs namespace enforces. Default: "restricted" (non-root, no privilege
    escalation, seccomp; mlstack's pipeline pods meet it). "baseline" admits root pods, needed only for steps
    marked ``@step(run_as_root=True)``; `mlstack plan` reports it (K8S-008) so the choice stays visible."""
    jobs_extra_egress: list[dict[str, Any]]
    """Extra NetworkPolicy egress rules for every pod of the jobs namespace (Kubernetes YAML shape, camelCase),
    e.g. ``[{"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]}]``
    for a database in the VPC. Default: none: jobs reach only cluster DNS and TCP 443 (the Kubernetes API,
    AWS APIs, warehouses, registries); they get their own policy ``allow-egress-extra``."""
    jobs_gpu_quota: int
    """Most GPUs the jobs namespace may request at once (a ResourceQuota on ``requests.nvidia.com/gpu``), a
    cost guard below the node groups' capacity. Default: no quota (the groups' max_size is the cap)."""
    artifact_store: Any
    """An S3ArtifactStore: the jobs role gets read and write on it. Default: no artifact grant."""
    data_layer: Any
    """A data layer with ``grant_read(role)``: the jobs role gets read on it. Default: no data grant."""
    default_image: str
    """Default container image for pipeline steps, written to the manifest. Default: none."""
    extended_support: bool
    """Allow EKS extended support (the cluster keeps its version past standard support, at $0.60 instead
    of $0.10 per hour). Default: False: EKS upgrades the cluster when standard support ends."""
    tags: dict[str, str]
    """Tags added to every AWS resource. Default: {"mlstack:component": <name>}."""


_GPU_GROUP_DEFAULT: GpuNodeGroupArgs = {
    "name": "gpu",
    "instance_types": ["g5.xlarge"],
    "min_size": 0,
    "max_size": 2,
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_label(problems: Problems, path: str, key: Any, value: Any) -> None:
    if not isinstance(key, str) or not isinstance(value, str):
        problems.add(path, key, "label keys and values must be strings")
        return
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))) or not _LABEL_NAME.match(name):
        problems.add(path, key, "not a valid Kubernetes label key (prefix/name, name at most 63 characters)")
    if not _LABEL_VALUE.match(value) or len(value) > 63:
        problems.add(f"{path}.value", value, "not a valid Kubernetes label value (at most 63 characters)")
    if any(key.startswith(p) for p in _RESERVED_LABEL_PREFIXES):
        problems.add(path, key, "reserved label prefix; mlstack or EKS sets these labels itself")


def _check_sizes(problems: Problems, path: str, g: Mapping[str, Any], lo: int) -> tuple[int, int, int]:
    mn, mx = g.get("min_size", lo), g.get("max_size", 2 if lo == 0 else 4)
    ds = g.get("desired_size", mn)
    ok = True
    for key, v in (("min_size", mn), ("desired_size", ds), ("max_size", mx)):
        if not _is_int(v) or v < 0:
            problems.add(f"{path}.{key}", v, "a whole number >= 0")
            ok = False
    if not ok:
        return 0, 0, 0
    if mn < lo:
        problems.add(f"{path}.min_size", mn, f"at least {lo} for this group")
    if mx < 1:
        problems.add(f"{path}.max_size", mx, "at least 1 (a group that can never have a node is useless)")
    if not mn <= ds <= mx:
        problems.add(
            path,
            {"min_size": mn, "desired_size": ds, "max_size": mx},
            "need min_size <= desired_size <= max_size",
        )
    return mn, ds, mx


POD_SECURITY_LEVELS = ("restricted", "baseline")


def _check_pod_security(problems: Problems, a: Mapping[str, Any]) -> None:
    _network_policy.check_egress_rules(problems, "jobs_extra_egress", a.get("jobs_extra_egress"))
    level = a.get("jobs_pod_security", "restricted")
    if level not in POD_SECURITY_LEVELS:
        why = "one of: restricted, baseline"
        if level == "privileged":
            why += " ('privileged' lets any pod in the jobs namespace take over its node)"
        problems.add("jobs_pod_security", level, why)


def _check_disk(problems: Problems, path: str, v: Any) -> None:
    if not _is_int(v) or not 20 <= v <= 16384:
        problems.add(path, v, "a whole number of GiB between 20 and 16384")


def validate_gpu_groups(groups: Any, problems: Problems) -> list[dict[str, Any]]:
    """Validate GPU node groups and return them as plain specs (defaults filled, GPU facts from the table)."""
    specs: list[dict[str, Any]] = []
    if not isinstance(groups, list) or not groups:
        problems.add(
            "gpu_node_groups",
            groups,
            "a non-empty list of GPU node groups (leave it out for one default g5.xlarge group)",
        )
        return specs
    seen: set[str] = set()
    for i, g in enumerate(groups):
        path = f"gpu_node_groups[{i}]"
        if not isinstance(g, Mapping):
            problems.add(path, g, "a dict (GpuNodeGroupArgs)")
            continue
        problems.unknown_keys(g, GpuNodeGroupArgs, prefix=f"{path}.")
        name = g.get("name")
        if not isinstance(name, str) or not _GROUP_NAME.match(name):
            problems.add(f"{path}.name", name, "required; lowercase letters, digits and '-', at most 32")
        elif name in seen or name == "system":
            problems.add(f"{path}.name", name, "must be unique (and 'system' is taken by the system group)")
        else:
            seen.add(name)
        types = g.get("instance_types")
        infos = []
        if not isinstance(types, list) or not types:
            problems.add(f"{path}.instance_types", types, "required; a non-empty list such as ['g5.xlarge']")
            types = []
        for j, t in enumerate(types):
            spec = gpu_types.gpu_type(t) if isinstance(t, str) else None
            if spec is None:
                problems.add(f"{path}.instance_types[{j}]", t, gpu_types.unknown_reason(str(t)))
            else:
                infos.append(spec)
        if len(set(types)) != len(types):
            problems.add(f"{path}.instance_types", types, "each type at most once")
        if len({s.gpus for s in infos}) > 1:
            problems.add(
                f"{path}.instance_types",
                types,
                "all types in one group need the same GPU count "
                f"(got {sorted({s.gpus for s in infos})}); cluster-autoscaler models a group as one node "
                "shape: split them into groups",
            )
        mn, ds, mx = _check_sizes(problems, path, g, 0)
        cap = g.get("capacity_type", "ON_DEMAND")
        if cap not in CAPACITY_TYPES:
            problems.add(f"{path}.capacity_type", cap, "one of: ON_DEMAND, SPOT")
        ami = g.get("ami_type", "AL2023_x86_64_NVIDIA")
        if ami not in gpu_types.NVIDIA_AMI_TYPES:
            problems.add(
                f"{path}.ami_type",
                ami,
                "an NVIDIA AMI type, one of: " + ", ".join(gpu_types.NVIDIA_AMI_TYPES),
            )
        else:
            arch = gpu_types.NVIDIA_AMI_TYPES[ami]
            wrong = [s.name for s in infos if gpu_types.architecture(s.name) != arch]
            if wrong:
                problems.add(
                    f"{path}.ami_type",
                    ami,
                    f"a {arch} AMI cannot boot {', '.join(wrong)}; use the "
                    "matching architecture's NVIDIA AMI type",
                )
        disk = g.get("disk_size_gib", 200)
        _check_disk(problems, f"{path}.disk_size_gib", disk)
        labels = g.get("labels", {}) or {}
        if not isinstance(labels, Mapping):
            problems.add(f"{path}.labels", labels, "a dict of label key -> value")
            labels = {}
        for k, v in labels.items():
            _check_label(problems, f"{path}.labels.{k}", k, v)
        subnets = g.get("subnet_ids")
        if subnets is not None and (not isinstance(subnets, list) or not subnets):
            problems.add(f"{path}.subnet_ids", subnets, "a non-empty list of subnet ids (or leave it out)")
        first = infos[0] if infos else None
        specs.append(
            {
                "name": name,
                "instance_types": list(types),
                "min_size": mn,
                "desired_size": ds,
                "max_size": mx,
                "capacity_type": cap,
                "ami_type": ami,
                "disk_size_gib": disk,
                "labels": dict(labels),
                "gpus_per_node": first.gpus if first else 0,
                "gpu_model": first.gpu_model if first else None,
                "gpu_memory_gib": first.gpu_memory_gib if first else None,
                "device_plugin": "os" if str(ami).startswith("BOTTLEROCKET") else "daemonset",
            }
        )
    return specs


def _validate(name: str, a: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate every argument (collecting all problems) and return (system group spec, GPU group specs)."""
    p = Problems(f"EksGpuCluster {name!r}")
    p.unknown_keys(a, EksGpuClusterArgs)

    cn = a.get("cluster_name")
    if cn is not None and (not isinstance(cn, str) or not _CLUSTER_NAME.match(cn)):
        p.add("cluster_name", cn, "letters, digits, '-' and '_', starting alphanumeric, at most 100")
    ver = a.get("kubernetes_version", versions.DEFAULT_KUBERNETES_VERSION)
    if ver not in versions.KUBERNETES_VERSIONS:
        p.add(
            "kubernetes_version",
            ver,
            "one of: "
            + ", ".join(versions.KUBERNETES_VERSIONS)
            + " (the versions whose cluster-autoscaler is pinned in components/compute/versions.py)",
        )

    byo = "vpc_id" in a or "private_subnet_ids" in a
    if byo:
        if a.get("vpc_id") is None or a.get("private_subnet_ids") is None:
            p.add(
                "vpc_id" if a.get("vpc_id") is None else "private_subnet_ids",
                None,
                "bring-your-own VPC needs both vpc_id and private_subnet_ids",
            )
        subnets = a.get("private_subnet_ids")
        if (
            subnets is not None
            and is_known(subnets)
            and (not isinstance(subnets, Sequence) or isinstance(subnets, str) or len(subnets) < 2)
        ):
            p.add("private_subnet_ids", subnets, "at least two subnets in different zones (EKS requires two)")
        for key in ("vpc_cidr", "availability_zones", "nat_gateways"):
            if key in a:
                p.add(key, a[key], "only applies to the VPC mlstack creates; drop it or drop vpc_id")
    else:
        cidr = a.get("vpc_cidr", "10.40.0.0/16")
        try:
            net = ipaddress.ip_network(cidr)
            if net.version != 4 or not 16 <= net.prefixlen <= 20:
                p.add("vpc_cidr", cidr, "an IPv4 CIDR between /16 and /20 (each zone gets a quarter)")
            elif not net.is_private:
                p.add("vpc_cidr", cidr, "a private (RFC 1918) range such as 10.40.0.0/16")
        except (ValueError, TypeError):
            p.add("vpc_cidr", cidr, "an IPv4 CIDR such as 10.40.0.0/16")
        azs = a.get("availability_zones")
        if azs is not None and (not isinstance(azs, list) or not 2 <= len(set(azs)) == len(azs) <= 3):
            p.add("availability_zones", azs, "two or three distinct zones, e.g. ['us-east-1a', 'us-east-1b']")
        nat = a.get("nat_gateways", "single")
        if nat not in ("single", "per_zone"):
            p.add("nat_gateways", nat, "one of: single, per_zone")

    cidrs = a.get("public_access_cidrs", [])
    if not isinstance(cidrs, list):
        p.add("public_access_cidrs", cidrs, "a list of CIDRs (empty: private endpoint only)")
        cidrs = []
    for i, c in enumerate(cidrs):
        try:
            net = ipaddress.ip_network(c, strict=True)
            if net.prefixlen == 0:
                p.add(
                    f"public_access_cidrs[{i}]",
                    c,
                    "opens the Kubernetes API to the whole internet; list "
                    "your VPN or office egress CIDRs instead",
                )
            elif net.version != 4:
                p.add(f"public_access_cidrs[{i}]", c, "EKS public access CIDRs are IPv4")
        except (ValueError, TypeError):
            p.add(f"public_access_cidrs[{i}]", c, "a CIDR such as 203.0.113.7/32 (host bits zero)")
    for i, arn in enumerate(a.get("admin_role_arns", []) or []):
        if is_known(arn) and (not isinstance(arn, str) or not _ARN.match(arn)):
            p.add(f"admin_role_arns[{i}]", arn, "an IAM role or user ARN, arn:aws:iam::<account>:role/<name>")

    logs = a.get("log_types", list(REQUIRED_LOG_TYPES))
    if not isinstance(logs, list):
        p.add("log_types", logs, "a list of control-plane log types")
        logs = list(REQUIRED_LOG_TYPES)
    bad = [x for x in logs if x not in ALL_LOG_TYPES]
    if bad:
        p.add("log_types", bad, "unknown log types; allowed: " + ", ".join(ALL_LOG_TYPES))
    missing = [x for x in REQUIRED_LOG_TYPES if x not in logs]
    if missing:
        p.add("log_types", logs, f"must include {', '.join(missing)} (audit trail of API access)")
    ret = a.get("log_retention_days", 90)
    if ret not in LOG_RETENTION_DAYS:
        p.add("log_retention_days", ret, "a CloudWatch retention value, e.g. 30, 90, 365")
    hop = a.get("imds_hop_limit", 1)
    if hop not in (1, 2) or isinstance(hop, bool):
        p.add("imds_hop_limit", hop, "1 (pods cannot reach IMDS; use IRSA) or 2 (pods can)")
    for key in ("cluster_autoscaler", "device_plugin", "extended_support", "node_auto_repair"):
        if key in a and not isinstance(a[key], bool):
            p.add(key, a[key], "True or False")
    ns = a.get("jobs_namespace", "ml-jobs")
    if not isinstance(ns, str) or not _DNS_LABEL.match(ns):
        p.add("jobs_namespace", ns, "a DNS label: lowercase letters, digits and '-', at most 63")
    elif ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        p.add("jobs_namespace", ns, "a namespace of its own, not a system namespace")
    quota = a.get("jobs_gpu_quota")
    if quota is not None and (not _is_int(quota) or quota < 0):
        p.add("jobs_gpu_quota", quota, "a whole number of GPUs >= 0 (or leave it out for no quota)")
    sa = a.get("jobs_service_account", "mlstack-jobs")
    if not isinstance(sa, str) or not _DNS_LABEL.match(sa):
        p.add("jobs_service_account", sa, "a DNS label: lowercase letters, digits and '-', at most 63")
    _check_pod_security(p, a)
    store = a.get("artifact_store")
    if store is not None and not (hasattr(store, "grant_read") and hasattr(store, "grant_write")):
        p.add(
            "artifact_store",
            type(store).__name__,
            "an artifact store with grant_read/grant_write (e.g. S3ArtifactStore)",
        )
    data = a.get("data_layer")
    if data is not None and not hasattr(data, "grant_read") and not hasattr(data, "manifest_section"):
        p.add(
            "data_layer", type(data).__name__, "a data layer component (SnowflakeDataLayer, S3Lakehouse, ...)"
        )
    tags = a.get("tags", {})
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        p.add("tags", tags, "a dict of str -> str")

    sysg = a.get("system_node_group", {}) or {}
    system: dict[str, Any] = {}
    if not isinstance(sysg, Mapping):
        p.add("system_node_group", sysg, "a dict (SystemNodeGroupArgs)")
        sysg = {}
    p.unknown_keys(sysg, SystemNodeGroupArgs, prefix="system_node_group.")
    st = sysg.get("instance_types", ["m6i.large"])
    if (
        not isinstance(st, list)
        or not st
        or not all(isinstance(t, str) and _INSTANCE_TYPE.match(t) for t in st)
    ):
        p.add(
            "system_node_group.instance_types", st, "a non-empty list of instance types such as ['m6i.large']"
        )
    elif any(gpu_types.gpu_type(t) for t in st):
        p.add(
            "system_node_group.instance_types",
            st,
            "GPU types belong in gpu_node_groups (system nodes "
            "carry no GPU taint, so any pod would land on them)",
        )
    mn, ds, mx = _check_sizes(p, "system_node_group", {"min_size": 2, "max_size": 4, **sysg}, 1)
    scap = sysg.get("capacity_type", "ON_DEMAND")
    if scap not in CAPACITY_TYPES:
        p.add("system_node_group.capacity_type", scap, "one of: ON_DEMAND, SPOT")
    sami = sysg.get("ami_type", "AL2023_x86_64_STANDARD")
    if sami not in SYSTEM_AMI_TYPES:
        p.add("system_node_group.ami_type", sami, "one of: " + ", ".join(SYSTEM_AMI_TYPES))
    sdisk = sysg.get("disk_size_gib", 50)
    _check_disk(p, "system_node_group.disk_size_gib", sdisk)
    system = {
        "name": "system",
        "instance_types": st,
        "min_size": mn,
        "desired_size": ds,
        "max_size": mx,
        "capacity_type": scap,
        "ami_type": sami,
        "disk_size_gib": sdisk,
    }

    specs = validate_gpu_groups(a.get("gpu_node_groups", [_GPU_GROUP_DEFAULT]), p)
    p.raise_if_any()
    return system, specs


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _kubeconfig(name: str, endpoint: str, ca: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (the AWS credential chain), never a token."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


def _template_tags(spec: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, str]:
    """cluster-autoscaler node-template tags: what a node of this group looks like while it has none."""
    prefix = "k8s.io/cluster-autoscaler/node-template"
    tags = {f"{prefix}/label/{k}": v for k, v in labels.items()}
    tags[f"{prefix}/taint/{GPU_TAINT['key']}"] = f"{GPU_TAINT['value']}:{GPU_TAINT['effect']}"
    tags[f"{prefix}/resources/{gpu_types.GPU_RESOURCE}"] = str(spec["gpus_per_node"])
    return tags


class _JobsCluster:
    """What EksGpuCluster and an existing cluster share: IRSA roles, the jobs identity, the compute section."""

    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    region: pulumi.Output[str]
    jobs_service_account_name: str
    gpu_node_selector: dict[str, str]
    gpu_tolerations: list[dict[str, str]]
    artifact_store: Any
    data_layer: Any
    _component_name: str

    def irsa_role(
        self,
        resource_name: str,
        namespace: pulumi.Input[str],
        service_account: pulumi.Input[str],
        tags: Mapping[str, str] | None = None,
    ) -> aws.iam.Role:
        """A role only ``namespace/service_account`` of this cluster can assume (audience sts.amazonaws.com).

        Other components (e.g. ArgoWorkflows for its server) use this for their own service accounts.
        """
        assert isinstance(self, pulumi.Resource)
        return aws.iam.Role(
            resource_name,
            assume_role_policy=_policy.irsa_trust_policy(
                self.oidc_provider_arn, self.oidc_issuer_url, namespace, service_account
            ),
            tags=dict(tags or {"mlstack:component": self._component_name}),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _jobs_identity(
        self,
        name: str,
        ns_name: str,
        tags: Mapping[str, str],
        kopts: pulumi.ResourceOptions,
        pod_security: str = "restricted",
        extra_egress: list[dict[str, Any]] | None = None,
    ) -> None:
        """The jobs namespace, its service account and the IRSA role pinned to it; owners grant to the role."""
        self.jobs_namespace_name: str = ns_name
        self.jobs_pod_security: str = pod_security
        namespace = k8s.core.v1.Namespace(
            f"{name}-jobs",
            metadata={
                "name": ns_name,
                "labels": {
                    "app.kubernetes.io/managed-by": "mlstack",
                    # pipeline pods run non-root and read-only (mlstack.pipeline.security): enforce restricted
                    # unless the owner opted the namespace down for run_as_root steps; always warn/audit on it
                    "pod-security.kubernetes.io/enforce": pod_security,
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            },
            opts=kopts,
        )
        self.jobs_namespace_resource = namespace
        self.jobs_namespace: pulumi.Output[str] = namespace.metadata.apply(lambda m: m["name"])
        # default-deny ingress, egress to DNS and HTTPS only; the pods of one multi-node step (a JobSet) reach
        # each other (torch.distributed rendezvous, NCCL), nothing else reaches them
        jobset = {"matchExpressions": [{"key": JOBSET_LABEL, "operator": "Exists"}]}
        self.jobs_network_policies = _network_policy.namespace_policies(
            f"{name}-jobs",
            self.jobs_namespace,
            kopts,
            extra_egress=extra_egress,
            peers=[("allow-jobset-peers", jobset)],
        )
        self.jobs_role = self.irsa_role(f"{name}-jobs", ns_name, self.jobs_service_account_name, tags)
        self.jobs_service_account = k8s.core.v1.ServiceAccount(
            f"{name}-jobs",
            metadata={
                "name": self.jobs_service_account_name,
                "namespace": self.jobs_namespace,
                "labels": {"app.kubernetes.io/managed-by": "mlstack"},
                "annotations": {"eks.amazonaws.com/role-arn": self.jobs_role.arn},
            },
            opts=kopts,
        )
        if self.artifact_store is not None:
            # grant_write includes read: one inline policy per (role, store), never two overlapping ones
            self.artifact_store.grant_write(self.jobs_role)
        if self.data_layer is not None and hasattr(self.data_layer, "grant_read"):
            self.data_layer.grant_read(self.jobs_role)

    def _device_plugin(self, name: str, kopts: pulumi.ResourceOptions) -> None:
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/managed-by": "mlstack"}
        self.device_plugin = k8s.apps.v1.DaemonSet(
            f"{name}-nvidia-device-plugin",
            metadata={"name": "nvidia-device-plugin", "namespace": "kube-system", "labels": labels},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        # the plugin talks to the kubelet over a unix socket, never to the API server
                        "automountServiceAccountToken": False,
                        # root: it creates its socket in the kubelet's root-owned device-plugins hostPath and
                        # opens /dev/nvidia* (docs/policy.md lists this deliberate exception)
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "affinity": {
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchExpressions": [
                                                {"key": GPU_LABEL, "operator": "In", "values": ["true"]},
                                                {
                                                    "key": DEVICE_PLUGIN_LABEL,
                                                    "operator": "In",
                                                    "values": ["daemonset"],
                                                },
                                            ]
                                        }
                                    ]
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
                                "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
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
                                "volumeMounts": [
                                    {"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"}
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "device-plugins",
                                "hostPath": {"path": "/var/lib/kubelet/device-plugins"},
                            }
                        ],
                    },
                },
            },
            opts=kopts,
        )

        # the plugin needs no network (unix sockets to the kubelet): deny both directions for its pods
        k8s.networking.v1.NetworkPolicy(
            f"{name}-nvidia-device-plugin",
            metadata={"name": "nvidia-device-plugin", "namespace": "kube-system", "labels": labels},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
                "policyTypes": ["Ingress", "Egress"],
            },
            opts=kopts,
        )

    def _compute_section(self, cluster_name: pulumi.Input[str], image: str | None) -> pulumi.Output[dict]:
        return pulumi.Output.all(cluster_name, self.region, self.jobs_namespace).apply(
            lambda v: validate_section(
                "compute",
                {
                    "kind": "kubernetes",
                    "cluster_name": v[0],
                    "region": v[1],
                    "namespace": v[2],
                    "service_account": self.jobs_service_account_name,
                    "gpu": {
                        "resource": gpu_types.GPU_RESOURCE,
                        "node_selector": dict(self.gpu_node_selector),
                        "tolerations": [dict(t) for t in self.gpu_tolerations],
                    },
                    **({"image": image} if image else {}),
                },
            )
        )


class EksGpuCluster(pulumi.ComponentResource, _JobsCluster):
    """An EKS cluster for GPU jobs: private, encrypted, logged, IRSA-ready, GPU groups that scale from zero.

    Outputs: ``cluster_name``, ``cluster_endpoint``, ``cluster_arn``, ``kubeconfig`` (secret),
    ``oidc_provider_arn``, ``oidc_issuer_url``, ``jobs_namespace``, ``jobs_service_account_name``,
    ``jobs_role`` (aws.iam.Role), ``region``, ``vpc_id``, ``private_subnet_ids``, ``node_groups``
    (name -> aws.eks.NodeGroup), ``gpu_node_group_specs`` (plain validated specs for cost and quota checks),
    ``provider`` (a pulumi_kubernetes Provider for this cluster) and ``manifest_section`` (the compute section).
    """

    cluster_name: pulumi.Output[str]
    cluster_endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    manifest_section: pulumi.Output[dict]

    def __init__(
        self,
        name: str,
        args: EksGpuClusterArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mlstack:compute:EksGpuCluster", name, None, opts)
        self._component_name = name
        a: dict[str, Any] = dict(args or {})
        system_spec, gpu_specs = _validate(name, a)
        self.gpu_node_group_specs: list[dict[str, Any]] = gpu_specs
        self.system_node_group_spec: dict[str, Any] = system_spec
        self.kubernetes_version: str = a.get("kubernetes_version", versions.DEFAULT_KUBERNETES_VERSION)
        self.jobs_service_account_name: str = a.get("jobs_service_account", "mlstack-jobs")
        self.artifact_store = a.get("artifact_store")
        self.data_layer = a.get("data_layer")
        self.gpu_node_selector: dict[str, str] = {GPU_LABEL: "true"}
        self.gpu_tolerations: list[dict[str, str]] = [dict(GPU_TOLERATION)]

        child = pulumi.ResourceOptions(parent=self)
        tags = {"mlstack:component": name, **(a.get("tags") or {})}
        cluster_name = a.get("cluster_name") or re.sub(
            r"[^A-Za-z0-9_-]", "-", f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}"
        )[:100].strip("-_")
        # region and partition come from the provider configuration (aws:region, else AWS_REGION), not from
        # invokes, so a plan is deterministic and needs no credentials
        region = aws.config.region
        if not region:
            raise InputPropertiesError(
                f"EksGpuCluster {name!r}",
                [("aws:region", None, "set `pulumi config set aws:region <region>` (or AWS_REGION)")],
            )
        self.region: pulumi.Output[str] = pulumi.Output.from_input(region)
        partition = pulumi.Output.from_input(_partition(region))

        def managed(policy: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy)

        # ------------------------------------------------------------ network
        if a.get("vpc_id") is not None:
            self.vpc_id: pulumi.Output[str] = pulumi.Output.from_input(a["vpc_id"])
            # a list of ids, or one Output of a list (e.g. another stack's output)
            raw = a["private_subnet_ids"]
            private_subnets: Any = raw if isinstance(raw, pulumi.Output) else list(raw)
        else:
            self.vpc_id, private_subnets = self._network(name, a, region, cluster_name, tags)
        self.private_subnet_ids: pulumi.Output[list[str]] = pulumi.Output.from_input(private_subnets)

        # ------------------------------------------------------------ encryption and logs
        if a.get("kms_key_arn") is not None:
            self.kms_key_arn: pulumi.Output[str] = pulumi.Output.from_input(a["kms_key_arn"])
        else:
            key = aws.kms.Key(
                f"{name}-secrets",
                description=f"EKS {cluster_name}: envelope encryption of Kubernetes Secrets",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags=tags,
                opts=child,
            )
            aws.kms.Alias(
                f"{name}-secrets", name=f"alias/eks/{cluster_name}", target_key_id=key.key_id, opts=child
            )
            self.kms_key_arn = key.arn
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{cluster_name}/cluster",  # the name EKS writes to; created first to set retention
            retention_in_days=a.get("log_retention_days", 90),
            tags=tags,
            opts=child,
        )

        # ------------------------------------------------------------ control plane
        cluster_role = aws.iam.Role(
            f"{name}-cluster",
            assume_role_policy=_policy.service_trust_policy("eks.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        cluster_attach = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn=managed("AmazonEKSClusterPolicy"),
            opts=child,
        )
        # EKS uses the cluster role to call KMS for Secrets encryption: exactly this key, nothing else
        cluster_kms = _policy.attach(
            f"{name}-cluster-kms",
            cluster_role,
            [
                _policy.statement(
                    "SecretsEnvelope",
                    ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                    [self.kms_key_arn],
                )
            ],
            self,
        )
        cidrs = list(a.get("public_access_cidrs", []) or [])
        self.cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            version=self.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": private_subnets,
                "endpoint_private_access": True,
                "endpoint_public_access": bool(cidrs),
                **({"public_access_cidrs": cidrs} if cidrs else {}),
            },
            encryption_config={"provider": {"key_arn": self.kms_key_arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(a.get("log_types", REQUIRED_LOG_TYPES)),
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            # add-ons are managed below as EKS add-ons (versioned, upgradeable), not the unmanaged defaults
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": "EXTENDED" if a.get("extended_support") else "STANDARD"},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, cluster_attach, cluster_kms]),
        )
        self.cluster_name = self.cluster.name
        self.cluster_endpoint = self.cluster.endpoint
        self.cluster_arn: pulumi.Output[str] = self.cluster.arn
        self.oidc_issuer_url: pulumi.Output[str] = self.cluster.identities.apply(
            lambda ids: ids[0].oidcs[0].issuer
        )
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )
        self.oidc_provider = oidc
        self.oidc_provider_arn: pulumi.Output[str] = oidc.arn

        for i, arn in enumerate(a.get("admin_role_arns", []) or []):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{i}",
                cluster_name=self.cluster.name,
                principal_arn=arn,
                type="STANDARD",
                tags=tags,
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}",
                cluster_name=self.cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=pulumi.Output.concat(
                    "arn:", partition, ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
                ),
                access_scope={"type": "cluster"},
                opts=child,
            )

        # ------------------------------------------------------------ add-ons that nodes need to join
        cni_role = self.irsa_role(f"{name}-vpc-cni", "kube-system", "aws-node", tags)
        aws.iam.RolePolicyAttachment(
            f"{name}-vpc-cni", role=cni_role.name, policy_arn=managed("AmazonEKS_CNI_Policy"), opts=child
        )
        vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            service_account_role_arn=cni_role.arn,
            # the CNI's network policy agent enforces NetworkPolicies (off by default: stored, not enforced)
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            tags=tags,
            opts=child,
        )
        kube_proxy = aws.eks.Addon(
            f"{name}-kube-proxy",
            cluster_name=self.cluster.name,
            addon_name="kube-proxy",
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            tags=tags,
            opts=child,
        )

        # ------------------------------------------------------------ nodes
        node_role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=_policy.service_trust_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        node_attach = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{short}", role=node_role.name, policy_arn=managed(pol), opts=child
            )
            for short, pol in (
                ("worker", "AmazonEKSWorkerNodePolicy"),
                ("ecr", "AmazonEC2ContainerRegistryPullOnly"),
            )
        ]
        self.node_role = node_role
        # no access entry for the node role: EKS creates it with the first managed node group using it
        hop = a.get("imds_hop_limit", 1)
        self._auto_repair: bool = a.get("node_auto_repair", True)
        node_deps: list[pulumi.Resource] = [*node_attach, vpc_cni, kube_proxy]
        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        self.launch_templates: dict[str, aws.ec2.LaunchTemplate] = {}
        system_labels = {ROLE_LABEL: "system"}
        self.node_groups["system"] = self._node_group(
            name,
            "system",
            system_spec,
            system_labels,
            [],
            private_subnets,
            node_role,
            hop,
            cluster_name,
            tags,
            node_deps,
        )
        for spec in gpu_specs:
            labels = {
                **spec["labels"],
                GPU_LABEL: "true",
                ROLE_LABEL: "gpu",
                "mlstack.dev/node-group": spec["name"],
                DEVICE_PLUGIN_LABEL: spec["device_plugin"],
                "k8s.amazonaws.com/accelerator": gpu_types.accelerator_label(
                    gpu_types.gpu_type(spec["instance_types"][0])  # type: ignore[arg-type]
                ),
            }
            ng = self._node_group(
                name,
                spec["name"],
                spec,
                labels,
                [GPU_TAINT],
                spec.get("subnet_ids") or private_subnets,
                node_role,
                hop,
                cluster_name,
                tags,
                node_deps,
            )
            self.node_groups[spec["name"]] = ng
            if a.get("cluster_autoscaler", True):
                asg = ng.resources.apply(lambda r: r[0].autoscaling_groups[0].name)
                for i, (k, v) in enumerate(sorted(_template_tags(spec, labels).items())):
                    aws.autoscaling.Tag(
                        f"{name}-{spec['name']}-template-{i}",
                        autoscaling_group_name=asg,
                        tag={"key": k, "value": v, "propagate_at_launch": False},
                        opts=child,
                    )
        system_ng = self.node_groups["system"]
        coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=self.cluster.name,
            addon_name="coredns",
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[system_ng]),
        )
        if self._auto_repair:
            # reports GPU, kernel, network and storage faults as node conditions for node auto repair
            aws.eks.Addon(
                f"{name}-node-monitoring",
                cluster_name=self.cluster.name,
                addon_name="eks-node-monitoring-agent",
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[system_ng]),
            )

        # ------------------------------------------------------------ Kubernetes
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.certificate_authority.apply(lambda c: c.data),
                self.region,
            ).apply(lambda v: _kubeconfig(*v))
        )
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        kopts = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[system_ng, coredns])
        self._k8s_opts = kopts

        self._jobs_identity(
            name,
            a.get("jobs_namespace", "ml-jobs"),
            tags,
            kopts,
            a.get("jobs_pod_security", "restricted"),
            a.get("jobs_extra_egress"),
        )
        if a.get("jobs_gpu_quota") is not None:
            self.jobs_gpu_quota = k8s.core.v1.ResourceQuota(
                f"{name}-jobs-gpu",
                metadata={
                    "name": "mlstack-gpu",
                    "namespace": self.jobs_namespace,
                    "labels": {"app.kubernetes.io/managed-by": "mlstack"},
                },
                spec={"hard": {f"requests.{gpu_types.GPU_RESOURCE}": str(a["jobs_gpu_quota"])}},
                opts=kopts,
            )
        # GPUs the cluster can hold at most (every GPU group at max_size)
        self.max_gpus: int = sum(g["max_size"] * g["gpus_per_node"] for g in gpu_specs)
        for g in gpu_specs:
            if g["capacity_type"] == "SPOT" and len(g["instance_types"]) == 1:
                pulumi.log.warn(
                    f"GPU node group {g['name']!r} is SPOT with one instance type: list several types of the "
                    "same GPU count so a reclaimed or unavailable type does not leave the group empty",
                    resource=self,
                )

        if a.get("device_plugin", True) and any(s["device_plugin"] == "daemonset" for s in gpu_specs):
            self._device_plugin(name, kopts)
        if a.get("cluster_autoscaler", True):
            self._cluster_autoscaler(name, cluster_name, tags, partition)

        self.manifest_section: pulumi.Output[dict] = self._compute_section(
            self.cluster.name, a.get("default_image")
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_endpoint": self.cluster_endpoint,
                "cluster_arn": self.cluster_arn,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer_url": self.oidc_issuer_url,
                "jobs_namespace": self.jobs_namespace,
                "jobs_service_account_name": self.jobs_service_account_name,
                "jobs_role_arn": self.jobs_role.arn,
                "region": self.region,
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "kms_key_arn": self.kms_key_arn,
                "gpu_node_group_specs": self.gpu_node_group_specs,
                "manifest_section": self.manifest_section,
            }
        )

    @staticmethod
    def from_existing(
        name: str,
        args: "ExistingEksClusterArgs | None" = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> "ExistingEksCluster":
        """Bring your own cluster: add mlstack's jobs namespace, service account and IRSA role to an EKS
        cluster created elsewhere (see :class:`ExistingEksCluster`)."""
        return ExistingEksCluster(name, args, opts)

    # ---------------------------------------------------------------- building blocks
    def _network(
        self, name: str, a: Mapping[str, Any], region: str, cluster_name: str, tags: Mapping[str, str]
    ) -> tuple[pulumi.Output[str], list[pulumi.Output[str]]]:
        child = pulumi.ResourceOptions(parent=self)
        net = ipaddress.ip_network(a.get("vpc_cidr", "10.40.0.0/16"))
        quarters = list(net.subnets(new_prefix=net.prefixlen + 2))
        publics = list(quarters[3].subnets(new_prefix=net.prefixlen + 4))
        zones: list[str] = list(a.get("availability_zones") or [f"{region}a", f"{region}b"])
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(net),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{cluster_name}"},
            opts=child,
        )
        # the default security group allows all traffic between its members: strip every rule
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={**tags, "Name": f"{cluster_name}-public"},
            opts=child,
        )
        per_zone = a.get("nat_gateways", "single") == "per_zone"
        nats: list[aws.ec2.NatGateway] = []
        private_ids: list[pulumi.Output[str]] = []
        for i, zone in enumerate(zones):
            pub = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=str(publics[i]),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{cluster_name}-public-{i}", "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child
            )
            if per_zone or i == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        allocation_id=eip.id,
                        subnet_id=pub.id,
                        tags={**tags, "Name": f"{cluster_name}-nat-{i}"},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
            priv = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=str(quarters[i]),
                availability_zone=zone,
                tags={**tags, "Name": f"{cluster_name}-private-{i}", "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[-1].id}],
                tags={**tags, "Name": f"{cluster_name}-private-{i}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=priv.id, route_table_id=rt.id, opts=child
            )
            private_ids.append(priv.id)
        self.nat_gateway_count = len(nats)
        return vpc.id, private_ids

    def _node_group(
        self,
        name: str,
        group: str,
        spec: Mapping[str, Any],
        labels: Mapping[str, str],
        taints: list[dict[str, str]],
        subnets: pulumi.Input[Sequence[pulumi.Input[str]]],
        node_role: aws.iam.Role,
        hop: int,
        cluster_name: str,
        tags: Mapping[str, str],
        deps: list[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        child = pulumi.ResourceOptions(parent=self)
        # Bottlerocket keeps images and pods on its second volume; the first holds the read-only OS
        device = "/dev/xvdb" if str(spec["ami_type"]).startswith("BOTTLEROCKET") else "/dev/xvda"
        lt = aws.ec2.LaunchTemplate(
            f"{name}-{group}",
            description=f"EKS {cluster_name} node group {group}: IMDSv2 only, encrypted gp3",
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": hop,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": device,
                    "ebs": {
                        "volume_size": spec["disk_size_gib"],
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            tag_specifications=[
                {"resource_type": "instance", "tags": {**tags, "Name": f"{cluster_name}-{group}"}},
                {"resource_type": "volume", "tags": dict(tags)},
            ],
            update_default_version=True,
            tags=tags,
            opts=child,
        )
        self.launch_templates[group] = lt
        return aws.eks.NodeGroup(
            f"{name}-{group}",
            cluster_name=self.cluster.name,
            # a prefix, not a fixed name: a replaced group (new instance types) is created before the old one
            # is deleted, so jobs keep running; nodes are selected by the mlstack.dev/node-group label
            node_group_name_prefix=f"{group}-",
            node_role_arn=node_role.arn,
            subnet_ids=subnets,
            instance_types=list(spec["instance_types"]),
            capacity_type=spec["capacity_type"],
            ami_type=spec["ami_type"],
            scaling_config={
                "min_size": spec["min_size"],
                "desired_size": spec["desired_size"],
                "max_size": spec["max_size"],
            },
            labels=dict(labels),
            taints=[{"key": t["key"], "value": t["value"], "effect": "NO_SCHEDULE"} for t in taints],
            launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
            update_config={"max_unavailable": 1},
            # EKS replaces nodes that turn NotReady or, with the monitoring agent, report GPU (XID) faults
            node_repair_config={"enabled": self._auto_repair},
            tags={**tags, "mlstack:node-group": group},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=deps,
                # cluster-autoscaler owns the node count once the group exists
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _cluster_autoscaler(
        self, name: str, cluster_name: str, tags: Mapping[str, str], partition: pulumi.Output[str]
    ) -> None:
        """cluster-autoscaler with an IRSA role that may only resize this cluster's groups."""
        sa_name = "cluster-autoscaler"
        role = self.irsa_role(f"{name}-autoscaler", "kube-system", sa_name, tags)
        self.autoscaler_role = role
        owned = {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}
        nodegroup_arn = pulumi.Output.all(partition, self.region, self.cluster.arn).apply(
            lambda v: f"arn:{v[0]}:eks:{v[1]}:{v[2].split(':')[4]}:nodegroup/{cluster_name}/*"
        )
        _policy.attach(
            f"{name}-autoscaler",
            role,
            [
                _policy.statement(
                    "Describe",
                    [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                    ],
                    ["*"],  # Describe* calls do not support resource-level permissions
                ),
                _policy.statement("DescribeNodegroups", ["eks:DescribeNodegroup"], [nodegroup_arn]),
                _policy.statement(
                    "ResizeOwnedGroups",
                    ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    ["*"],
                    conditions=owned,
                ),
            ],
            self,
        )
        opts = self._k8s_opts
        labels = {"app.kubernetes.io/name": "cluster-autoscaler", "app.kubernetes.io/managed-by": "mlstack"}
        meta = {"name": sa_name, "namespace": "kube-system", "labels": labels}
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-autoscaler",
            metadata={**meta, "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
            automount_service_account_token=True,
            opts=opts,
        )
        read = ["get", "list", "watch"]
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-autoscaler",
            metadata={"name": sa_name, "labels": labels},
            rules=[
                {"apiGroups": [""], "resources": ["events", "endpoints"], "verbs": ["create", "patch"]},
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]},
                {
                    "apiGroups": [""],
                    "resources": ["endpoints"],
                    "resourceNames": [sa_name],
                    "verbs": ["get", "update"],
                },
                {"apiGroups": [""], "resources": ["nodes"], "verbs": [*read, "update"]},
                {
                    "apiGroups": [""],
                    "resources": [
                        "namespaces",
                        "pods",
                        "services",
                        "replicationcontrollers",
                        "persistentvolumeclaims",
                        "persistentvolumes",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": ["apps"],
                    "resources": ["daemonsets", "replicasets", "statefulsets"],
                    "verbs": read,
                },
                {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": read},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list", "watch"]},
                {
                    "apiGroups": ["storage.k8s.io"],
                    "resources": [
                        "storageclasses",
                        "csinodes",
                        "csidrivers",
                        "csistoragecapacities",
                        "volumeattachments",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": ["resource.k8s.io"],
                    "resources": ["resourceclaims", "resourceslices", "deviceclasses"],
                    "verbs": read,
                },
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": [sa_name],
                    "verbs": ["get", "update"],
                },
            ],
            opts=opts,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-autoscaler",
            metadata={"name": sa_name, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": sa_name},
            subjects=[{"kind": "ServiceAccount", "name": sa_name, "namespace": "kube-system"}],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cluster_role, sa])),
        )
        role_k8s = k8s.rbac.v1.Role(
            f"{name}-autoscaler",
            metadata=meta,
            rules=[
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "list", "watch"]},
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"],
                    "verbs": ["delete", "get", "update", "watch"],
                },
            ],
            opts=opts,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-autoscaler",
            metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa_name},
            subjects=[{"kind": "ServiceAccount", "name": sa_name, "namespace": "kube-system"}],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role_k8s, sa])),
        )
        # no ingress (kubelet probes are node traffic, not pod traffic); egress to DNS and HTTPS (the API server,
        # the AWS Auto Scaling / EC2 / EKS APIs)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-autoscaler",
            metadata=meta,
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cluster-autoscaler"}},
                "policyTypes": ["Ingress", "Egress"],
                "egress": _network_policy.baseline_egress(),
            },
            opts=opts,
        )
        command = [
            "./cluster-autoscaler",
            "--cloud-provider=aws",
            f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
            f"k8s.io/cluster-autoscaler/{cluster_name}",
            "--balance-similar-node-groups",
            # least-waste picks the group that fits the pending GPU pods with the fewest idle resources
            "--expander=least-waste",
            "--skip-nodes-with-system-pods=false",
            "--skip-nodes-with-local-storage=false",
            "--scale-down-unneeded-time=10m",
            "--max-node-provision-time=15m",
            "--logtostderr=true",
            "--stderrthreshold=info",
            "--v=2",
        ]
        self.autoscaler = k8s.apps.v1.Deployment(
            f"{name}-autoscaler",
            metadata=meta,
            spec={
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "cluster-autoscaler"}},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                    },
                    "spec": {
                        "serviceAccountName": sa_name,
                        "priorityClassName": "system-cluster-critical",
                        "nodeSelector": {ROLE_LABEL: "system"},
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65534,
                            "runAsGroup": 65534,
                            "fsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "cluster-autoscaler",
                                "image": versions.CLUSTER_AUTOSCALER_IMAGES[self.kubernetes_version],
                                "command": command,
                                "env": [{"name": "AWS_REGION", "value": self.region}],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "600Mi"},
                                    "limits": {"cpu": "1", "memory": "600Mi"},
                                },
                                "ports": [
                                    {"name": "http", "containerPort": AUTOSCALER_PORT, "protocol": "TCP"}
                                ],
                                # /health-check answers 200 while the main loop runs (500 once it stalls
                                # longer than --max-inactivity), so a wedged autoscaler is restarted
                                "livenessProbe": {
                                    "httpGet": {"path": "/health-check", "port": AUTOSCALER_PORT},
                                    "initialDelaySeconds": 30,
                                    "periodSeconds": 30,
                                    "timeoutSeconds": 5,
                                    "failureThreshold": 3,
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/health-check", "port": AUTOSCALER_PORT},
                                    "periodSeconds": 10,
                                    "timeoutSeconds": 5,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                    "privileged": False,
                                    "runAsNonRoot": True,
                                },
                            }
                        ],
                    },
                },
            },
            opts=opts,
        )


class ExistingEksClusterArgs(TypedDict, total=False):
    """Arguments of :meth:`EksGpuCluster.from_existing`: an EKS cluster mlstack did not create."""

    cluster_name: str
    """Required. Name of the existing EKS cluster (in the AWS provider's region)."""
    oidc_provider_arn: pulumi.Input[str]
    """Required. ARN of the cluster's IAM OIDC provider (`eksctl utils associate-iam-oidc-provider` creates
    one)."""
    oidc_issuer_url: pulumi.Input[str]
    """Required. The cluster's OIDC issuer, `aws eks describe-cluster --query cluster.identity.oidc.issuer`."""
    kubeconfig: pulumi.Input[str]
    """Kubeconfig for the cluster. Default: built from cluster_endpoint and certificate_authority_data,
    authenticating with `aws eks get-token`."""
    cluster_endpoint: pulumi.Input[str]
    """API server URL. Required unless kubeconfig is given."""
    certificate_authority_data: pulumi.Input[str]
    """Base64 cluster CA. Required unless kubeconfig is given."""
    gpu_node_selector: dict[str, str]
    """Node labels GPU steps select. Default: none (only GPU nodes advertise nvidia.com/gpu anyway)."""
    gpu_tolerations: list[dict[str, str]]
    """Tolerations GPU steps carry, matching your GPU nodes' taints. Default: tolerate any
    ``nvidia.com/gpu`` taint with effect NoSchedule."""
    device_plugin: bool
    """Install the pinned NVIDIA device plugin on nodes labelled ``mlstack.dev/device-plugin=daemonset``.
    Default: False (an existing GPU cluster usually runs one, or the GPU operator)."""
    jobs_namespace: str
    """Namespace where jobs run (created). Default: "ml-jobs"."""
    jobs_service_account: str
    """Service account jobs run as (created, with its IRSA role). Default: "mlstack-jobs"."""
    jobs_pod_security: Literal["restricted", "baseline"]
    """Pod Security Standard the jobs namespace enforces. Default: "restricted"; "baseline" admits the root
    pods of ``@step(run_as_root=True)`` steps (reported by `mlstack plan`, K8S-008)."""
    jobs_extra_egress: list[dict[str, Any]]
    """Extra NetworkPolicy egress rules for the jobs namespace's pods (see EksGpuClusterArgs). Default: none
    (cluster DNS and TCP 443 only). Your cluster's CNI must enforce NetworkPolicies."""
    artifact_store: Any
    """An S3ArtifactStore: the jobs role gets read and write on it. Default: no artifact grant."""
    data_layer: Any
    """A data layer with ``grant_read(role)``: the jobs role gets read on it. Default: no data grant."""
    default_image: str
    """Default container image for pipeline steps, written to the manifest. Default: none."""
    tags: dict[str, str]
    """Tags added to the AWS resources created (IAM roles). Default: {"mlstack:component": <name>}."""


def _validate_existing(name: str, a: Mapping[str, Any]) -> None:
    p = Problems(f"EksGpuCluster.from_existing {name!r}")
    p.unknown_keys(a, ExistingEksClusterArgs)
    cn = a.get("cluster_name")
    if not isinstance(cn, str) or not _CLUSTER_NAME.match(cn):
        p.add("cluster_name", cn, "required; the existing cluster's name")
    for key in ("oidc_provider_arn", "oidc_issuer_url"):
        if a.get(key) is None:
            p.add(key, None, "required for IRSA (the jobs role trusts this cluster's OIDC provider)")
    v = a.get("oidc_issuer_url")
    if isinstance(v, str) and not v.startswith("https://"):
        p.add("oidc_issuer_url", v, "the issuer URL, https://oidc.eks.<region>.amazonaws.com/id/<id>")
    if a.get("kubeconfig") is None:
        for key in ("cluster_endpoint", "certificate_authority_data"):
            if a.get(key) is None:
                p.add(key, None, "required unless kubeconfig is given")
    for key, default in (("jobs_namespace", "ml-jobs"), ("jobs_service_account", "mlstack-jobs")):
        val = a.get(key, default)
        if not isinstance(val, str) or not _DNS_LABEL.match(val):
            p.add(key, val, "a DNS label: lowercase letters, digits and '-', at most 63")
    if a.get("jobs_namespace") in ("default", "kube-system", "kube-public", "kube-node-lease"):
        p.add("jobs_namespace", a["jobs_namespace"], "a namespace of its own, not a system namespace")
    _check_pod_security(p, a)
    sel = a.get("gpu_node_selector", {})
    if not isinstance(sel, Mapping):
        p.add("gpu_node_selector", sel, "a dict of label key -> value")
    tols = a.get("gpu_tolerations")
    if tols is not None:
        if not isinstance(tols, list):
            p.add("gpu_tolerations", tols, "a list of tolerations")
        else:
            from mlstack.manifest import Toleration

            for i, t in enumerate(tols):
                try:
                    Toleration.model_validate(t)
                except Exception as exc:  # pydantic ValidationError: report, do not crash
                    p.add(f"gpu_tolerations[{i}]", t, str(exc).splitlines()[-1].strip())
    store = a.get("artifact_store")
    if store is not None and not (hasattr(store, "grant_read") and hasattr(store, "grant_write")):
        p.add("artifact_store", type(store).__name__, "an artifact store with grant_read/grant_write")
    if "device_plugin" in a and not isinstance(a["device_plugin"], bool):
        p.add("device_plugin", a["device_plugin"], "True or False")
    p.raise_if_any()


class ExistingEksCluster(pulumi.ComponentResource, _JobsCluster):
    """An EKS cluster created elsewhere, with mlstack's jobs namespace, service account and IRSA role added.

    Same outputs as :class:`EksGpuCluster` where they make sense (``node_groups`` and ``gpu_node_group_specs``
    are empty: mlstack does not manage the nodes, so `mlstack plan` cannot cost them). Create it with
    :meth:`EksGpuCluster.from_existing`.
    """

    manifest_section: pulumi.Output[dict]

    def __init__(
        self,
        name: str,
        args: ExistingEksClusterArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mlstack:compute:ExistingEksCluster", name, None, opts)
        a: dict[str, Any] = dict(args or {})
        _validate_existing(name, a)
        self._component_name = name
        region = aws.config.region
        if not region:
            raise InputPropertiesError(
                f"EksGpuCluster.from_existing {name!r}",
                [("aws:region", None, "set `pulumi config set aws:region <region>` (or AWS_REGION)")],
            )
        self.region = pulumi.Output.from_input(region)
        self.kubernetes_version: str | None = None
        self.cluster_name: pulumi.Output[str] = pulumi.Output.from_input(a["cluster_name"])
        self.cluster_endpoint: pulumi.Output[str | None] = pulumi.Output.from_input(a.get("cluster_endpoint"))
        self.oidc_provider_arn = pulumi.Output.from_input(a["oidc_provider_arn"])
        self.oidc_issuer_url = pulumi.Output.from_input(a["oidc_issuer_url"])
        self.jobs_service_account_name = a.get("jobs_service_account", "mlstack-jobs")
        self.artifact_store = a.get("artifact_store")
        self.data_layer = a.get("data_layer")
        self.gpu_node_selector = dict(a.get("gpu_node_selector", {}))
        self.gpu_tolerations = [
            dict(t)
            for t in a.get(
                "gpu_tolerations", [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}]
            )
        ]
        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        self.gpu_node_group_specs: list[dict[str, Any]] = []
        tags = {"mlstack:component": name, **(a.get("tags") or {})}
        if a.get("kubeconfig") is not None:
            self.kubeconfig = pulumi.Output.secret(a["kubeconfig"])
        else:
            self.kubeconfig = pulumi.Output.secret(
                pulumi.Output.all(
                    a["cluster_name"], a["cluster_endpoint"], a["certificate_authority_data"], region
                ).apply(lambda v: _kubeconfig(*v))
            )
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        kopts = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self._jobs_identity(
            name,
            a.get("jobs_namespace", "ml-jobs"),
            tags,
            kopts,
            a.get("jobs_pod_security", "restricted"),
            a.get("jobs_extra_egress"),
        )
        if a.get("device_plugin", False):
            self._device_plugin(name, kopts)
        self.manifest_section = self._compute_section(self.cluster_name, a.get("default_image"))
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer_url": self.oidc_issuer_url,
                "jobs_namespace": self.jobs_namespace,
                "jobs_service_account_name": self.jobs_service_account_name,
                "jobs_role_arn": self.jobs_role.arn,
                "region": self.region,
                "manifest_section": self.manifest_section,
            }
        )

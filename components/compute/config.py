"""Validation of the compute components' args into frozen, typed config: pure functions, no Pulumi calls.

:func:`resolve_cluster` and :func:`resolve_existing` read the raw args exactly once, collect every problem
(each naming the key, the value and the fix) and either raise one :class:`InputPropertiesError` or return a
frozen config with every default filled. The components build only from that config. Values that are still
Pulumi Outputs are passed through unvalidated (unknown until deployment).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from mlstack import names

from .. import _network_policy
from .._args import Problems, choice, is_known, is_whole
from .._contracts import DataLayer, Layer, ReadGrantable, WriteGrantable
from . import gpu_types, versions
from .args import (
    CapacityType,
    EksGpuClusterArgs,
    ExistingEksClusterArgs,
    GpuAmiType,
    GpuNodeGroupArgs,
    NatGateways,
    PodSecurity,
    SystemAmiType,
    SystemNodeGroupArgs,
)
from .spec import ClusterConfig, ExistingClusterConfig, JobsConfig, NewVpc, NodeGroupSpec, OwnVpc

REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
ALL_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
LOG_RETENTION_DAYS: tuple[int, ...] = (
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
DEFAULT_VPC_CIDR = "10.40.0.0/16"
DEFAULT_LOG_RETENTION_DAYS = 90
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_RESERVED_LABEL_PREFIXES = (
    "mlstack.dev/",
    "k8s.amazonaws.com/",
    "eks.amazonaws.com/",
    "kubernetes.io/",
    "node.kubernetes.io/",
)
_GROUP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")

DEFAULT_GPU_GROUP: GpuNodeGroupArgs = {
    "name": "gpu",
    "instance_types": ["g5.xlarge"],
    "min_size": 0,
    "max_size": 2,
}


# ---------------------------------------------------------------- pure checks
def check_label(problems: Problems, path: str, key: Any, value: Any) -> None:
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


def check_sizes(
    problems: Problems, path: str, g: Mapping[str, Any], lo: int, default_max: int
) -> tuple[int, int, int]:
    """(min, desired, max) of a group with its defaults; problems for bad or inconsistent sizes."""
    mn, mx = g.get("min_size", lo), g.get("max_size", default_max)
    ds = g.get("desired_size", mn)
    ok = True
    for key, v in (("min_size", mn), ("desired_size", ds), ("max_size", mx)):
        if not is_whole(v) or v < 0:
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


def check_disk(problems: Problems, path: str, v: Any) -> None:
    if not is_whole(v) or not 20 <= v <= 16384:
        problems.add(path, v, "a whole number of GiB between 20 and 16384")


def _pod_security(problems: Problems, a: Mapping[str, Any]) -> PodSecurity:
    _network_policy.check_egress_rules(problems, "jobs_extra_egress", a.get("jobs_extra_egress"))
    level = a.get("jobs_pod_security", PodSecurity.RESTRICTED)
    why = "one of: restricted, baseline"
    if level == "privileged":
        why += " ('privileged' lets any pod in the jobs namespace take over its node)"
    return choice(problems, "jobs_pod_security", level, PodSecurity, PodSecurity.RESTRICTED, why)


def _jobs(problems: Problems, a: Mapping[str, Any]) -> JobsConfig:
    """The jobs namespace, service account, pod security and egress, shared by both compute components."""
    ns = a.get("jobs_namespace", names.JOBS_NAMESPACE)
    if not isinstance(ns, str) or not DNS_LABEL.match(ns):
        problems.add("jobs_namespace", ns, "a DNS label: lowercase letters, digits and '-', at most 63")
    elif ns in SYSTEM_NAMESPACES:
        problems.add("jobs_namespace", ns, "a namespace of its own, not a system namespace")
    sa = a.get("jobs_service_account", names.JOBS_SERVICE_ACCOUNT)
    if not isinstance(sa, str) or not DNS_LABEL.match(sa):
        problems.add("jobs_service_account", sa, "a DNS label: lowercase letters, digits and '-', at most 63")
    level = _pod_security(problems, a)
    quota = a.get("jobs_gpu_quota")
    if quota is not None and (not is_whole(quota) or quota < 0):
        problems.add("jobs_gpu_quota", quota, "a whole number of GPUs >= 0 (or leave it out for no quota)")
    egress = a.get("jobs_extra_egress") or []
    return JobsConfig(
        namespace=ns,
        service_account=sa,
        pod_security=level,
        extra_egress=tuple(egress) if isinstance(egress, list) else (),
        gpu_quota=quota,
        default_image=a.get("default_image"),
    )


def _grants(problems: Problems, a: Mapping[str, Any]) -> tuple[WriteGrantable | None, DataLayer | None]:
    store = a.get("artifact_store")
    if store is not None and not isinstance(store, WriteGrantable):
        problems.add(
            "artifact_store",
            type(store).__name__,
            "an artifact store with grant_read/grant_write (e.g. S3ArtifactStore)",
        )
        store = None
    data = a.get("data_layer")
    if data is not None and not isinstance(data, Layer | ReadGrantable):
        problems.add(
            "data_layer", type(data).__name__, "a data layer component (SnowflakeDataLayer, S3Lakehouse, ...)"
        )
        data = None
    return store, data  # type: ignore[return-value]  # a bare grant_read-only layer is accepted too


def _tags(problems: Problems, name: str, a: Mapping[str, Any]) -> Mapping[str, str]:
    tags = a.get("tags", {}) or {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        problems.add("tags", tags, "a dict of str -> str")
        tags = {}
    return MappingProxyType({"mlstack:component": name, **tags})


def validate_gpu_groups(groups: Any, problems: Problems) -> list[NodeGroupSpec]:
    """Validate GPU node groups (collecting problems) into specs with defaults and GPU facts filled."""
    specs: list[NodeGroupSpec] = []
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
        mn, ds, mx = check_sizes(problems, path, g, 0, 2)
        cap = choice(
            problems,
            f"{path}.capacity_type",
            g.get("capacity_type", "ON_DEMAND"),
            CapacityType,
            CapacityType.ON_DEMAND,
        )
        ami = g.get("ami_type", GpuAmiType.AL2023_X86_64_NVIDIA)
        if ami not in gpu_types.NVIDIA_AMI_TYPES:
            problems.add(
                f"{path}.ami_type",
                ami,
                "an NVIDIA AMI type, one of: " + ", ".join(gpu_types.NVIDIA_AMI_TYPES),
            )
            ami = GpuAmiType.AL2023_X86_64_NVIDIA
        else:
            ami = GpuAmiType(ami)
            arch = gpu_types.NVIDIA_AMI_TYPES[ami]
            wrong = [s.name for s in infos if gpu_types.architecture(s.name) != arch]
            if wrong:
                problems.add(
                    f"{path}.ami_type",
                    str(ami),
                    f"a {arch} AMI cannot boot {', '.join(wrong)}; use the "
                    "matching architecture's NVIDIA AMI type",
                )
        disk = g.get("disk_size_gib", 200)
        check_disk(problems, f"{path}.disk_size_gib", disk)
        labels = g.get("labels", {}) or {}
        if not isinstance(labels, Mapping):
            problems.add(f"{path}.labels", labels, "a dict of label key -> value")
            labels = {}
        for k, v in labels.items():
            check_label(problems, f"{path}.labels.{k}", k, v)
        subnets = g.get("subnet_ids")
        if subnets is not None and (not isinstance(subnets, list) or not subnets):
            problems.add(f"{path}.subnet_ids", subnets, "a non-empty list of subnet ids (or leave it out)")
            subnets = None
        first = infos[0] if infos else None
        specs.append(
            NodeGroupSpec(
                name=name if isinstance(name, str) else "",
                instance_types=tuple(types),
                min_size=mn,
                desired_size=ds,
                max_size=mx,
                capacity_type=cap,
                ami_type=ami,
                disk_size_gib=disk,
                labels=MappingProxyType(dict(labels)),
                subnet_ids=tuple(subnets) if subnets else None,
                gpu=True,
                gpus_per_node=first.gpus if first else 0,
                gpu_model=first.gpu_model if first else None,
                gpu_memory_gib=first.gpu_memory_gib if first else None,
            )
        )
    return specs


def validate_system_group(sysg: Any, problems: Problems) -> NodeGroupSpec:
    """The always-on system group, validated, defaults filled (2..4 x m6i.large on demand)."""
    if not isinstance(sysg, Mapping):
        problems.add("system_node_group", sysg, "a dict (SystemNodeGroupArgs)")
        sysg = {}
    problems.unknown_keys(sysg, SystemNodeGroupArgs, prefix="system_node_group.")
    st = sysg.get("instance_types", ["m6i.large"])
    if (
        not isinstance(st, list)
        or not st
        or not all(isinstance(t, str) and _INSTANCE_TYPE.match(t) for t in st)
    ):
        problems.add(
            "system_node_group.instance_types", st, "a non-empty list of instance types such as ['m6i.large']"
        )
        st = []
    elif any(gpu_types.gpu_type(t) for t in st):
        problems.add(
            "system_node_group.instance_types",
            st,
            "GPU types belong in gpu_node_groups (system nodes "
            "carry no GPU taint, so any pod would land on them)",
        )
    mn, ds, mx = check_sizes(problems, "system_node_group", {"min_size": 2, **sysg}, 1, 4)
    cap = choice(
        problems,
        "system_node_group.capacity_type",
        sysg.get("capacity_type", "ON_DEMAND"),
        CapacityType,
        CapacityType.ON_DEMAND,
    )
    ami = choice(
        problems,
        "system_node_group.ami_type",
        sysg.get("ami_type", "AL2023_x86_64_STANDARD"),
        SystemAmiType,
        SystemAmiType.AL2023_X86_64_STANDARD,
    )
    disk = sysg.get("disk_size_gib", 50)
    check_disk(problems, "system_node_group.disk_size_gib", disk)
    return NodeGroupSpec(
        name="system",
        instance_types=tuple(st),
        min_size=mn,
        desired_size=ds,
        max_size=mx,
        capacity_type=cap,
        ami_type=ami,
        disk_size_gib=disk,
    )


def _vpc(problems: Problems, a: Mapping[str, Any], region: str | None) -> NewVpc | OwnVpc:
    if "vpc_id" in a or "private_subnet_ids" in a:
        if a.get("vpc_id") is None or a.get("private_subnet_ids") is None:
            problems.add(
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
            problems.add(
                "private_subnet_ids", subnets, "at least two subnets in different zones (EKS requires two)"
            )
        for key in ("vpc_cidr", "availability_zones", "nat_gateways"):
            if key in a:
                problems.add(key, a[key], "only applies to the VPC mlstack creates; drop it or drop vpc_id")
        return OwnVpc(a.get("vpc_id"), subnets if is_known(subnets) is False else list(subnets or []))
    cidr = a.get("vpc_cidr", DEFAULT_VPC_CIDR)
    try:
        net = ipaddress.ip_network(cidr)
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            problems.add("vpc_cidr", cidr, "an IPv4 CIDR between /16 and /20 (each zone gets a quarter)")
        elif not net.is_private:
            problems.add("vpc_cidr", cidr, "a private (RFC 1918) range such as 10.40.0.0/16")
    except (ValueError, TypeError):
        problems.add("vpc_cidr", cidr, "an IPv4 CIDR such as 10.40.0.0/16")
    azs = a.get("availability_zones")
    if azs is not None and (not isinstance(azs, list) or not 2 <= len(set(azs)) == len(azs) <= 3):
        problems.add(
            "availability_zones", azs, "two or three distinct zones, e.g. ['us-east-1a', 'us-east-1b']"
        )
        azs = None
    zones = tuple(azs) if azs else ((f"{region}a", f"{region}b") if region else ())
    nat = choice(problems, "nat_gateways", a.get("nat_gateways", "single"), NatGateways, NatGateways.SINGLE)
    return NewVpc(str(cidr), zones, nat)


def default_cluster_name(project: str, stack: str, name: str) -> str:
    """ "<project>-<stack>-<component name>", made a valid EKS name (at most 100 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{project}-{stack}-{name}")[:100].strip("-_")


def resolve_cluster(
    name: str, args: Mapping[str, Any], *, project: str, stack: str, region: str | None
) -> ClusterConfig:
    """EksGpuCluster's args as a frozen :class:`ClusterConfig`; every problem reported in one error."""
    a = dict(args)
    p = Problems(f"EksGpuCluster {name!r}")
    p.unknown_keys(a, EksGpuClusterArgs)
    cn = a.get("cluster_name")
    if cn is not None and (not isinstance(cn, str) or not CLUSTER_NAME.match(cn)):
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
    vpc = _vpc(p, a, region)

    cidrs = a.get("public_access_cidrs", []) or []
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
    admins = a.get("admin_role_arns", []) or []
    for i, arn in enumerate(admins):
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
    ret = a.get("log_retention_days", DEFAULT_LOG_RETENTION_DAYS)
    if ret not in LOG_RETENTION_DAYS:
        p.add("log_retention_days", ret, "a CloudWatch retention value, e.g. 30, 90, 365")
    hop = a.get("imds_hop_limit", 1)
    if hop not in (1, 2) or isinstance(hop, bool):
        p.add("imds_hop_limit", hop, "1 (pods cannot reach IMDS; use IRSA) or 2 (pods can)")
    flags = {
        "cluster_autoscaler": True,
        "device_plugin": True,
        "extended_support": False,
        "node_auto_repair": True,
    }
    for key, default in flags.items():
        flags[key] = a.get(key, default)
        if not isinstance(flags[key], bool):
            p.add(key, a[key], "True or False")
    jobs = _jobs(p, a)
    store, data = _grants(p, a)
    tags = _tags(p, name, a)
    system = validate_system_group(a.get("system_node_group", {}) or {}, p)
    gpu = validate_gpu_groups(a.get("gpu_node_groups", [DEFAULT_GPU_GROUP]), p)
    autoscaler, pools = _autoscaler(p, a, gpu)
    jobset = a.get("jobset", False)
    if not isinstance(jobset, bool):
        p.add("jobset", jobset, "True or False")
    p.raise_if_any()
    return ClusterConfig(
        cluster_name=cn or default_cluster_name(project, stack, name),
        kubernetes_version=ver,
        vpc=vpc,
        public_access_cidrs=tuple(cidrs),
        admin_role_arns=tuple(admins),
        kms_key_arn=a.get("kms_key_arn"),
        log_types=tuple(logs),
        log_retention_days=ret,
        system=system,
        gpu_groups=tuple(gpu),
        imds_hop_limit=hop,
        cluster_autoscaler=flags["cluster_autoscaler"],
        device_plugin=flags["device_plugin"],
        node_auto_repair=flags["node_auto_repair"],
        extended_support=flags["extended_support"],
        jobs=jobs,
        artifact_store=store,
        data_layer=data,
        tags=tags,
        autoscaler=autoscaler,
        karpenter_pools=pools,
        jobset=jobset,
    )


def _autoscaler(
    p: Problems, a: Mapping[str, Any], gpu: Sequence[NodeGroupSpec]
) -> tuple[str, tuple[Any, ...]]:
    """The autoscaler choice and, for Karpenter, its pools: one per GPU group, then ``karpenter_pools``."""
    from . import karpenter

    kind = a.get("autoscaler", "cluster-autoscaler")
    kind = kind.value if isinstance(kind, StrEnum) else kind
    extra = a.get("karpenter_pools", []) or []
    if kind not in ("cluster-autoscaler", "karpenter"):
        p.add("autoscaler", kind, "'cluster-autoscaler' (default: managed GPU groups) or 'karpenter'")
        return "cluster-autoscaler", ()
    if kind != "karpenter":
        if extra:
            p.add("karpenter_pools", extra, "only with autoscaler='karpenter'")
        return kind, ()
    pools = [karpenter.pool_from_group(g) for g in gpu]
    if not isinstance(extra, list | tuple):
        p.add("karpenter_pools", extra, "a list of KarpenterPool objects")
        extra = []
    for i, pool in enumerate(extra):
        if not isinstance(pool, karpenter.KarpenterPool):
            p.add(f"karpenter_pools[{i}]", pool, "a KarpenterPool (mlstack.components.compute.karpenter)")
            continue
        karpenter.validate_pool(p, f"karpenter_pools[{i}]", pool)
        pools.append(pool)
    seen: set[str] = set()
    for pool in pools:
        if pool.name in seen:
            p.add(
                "karpenter_pools", pool.name, "a pool of that name exists (GPU group names become pool names)"
            )
        seen.add(pool.name)
    for i, pool in enumerate(pools[: len(gpu)]):
        sub = Problems("")
        karpenter.validate_pool(sub, f"gpu_node_groups[{i}]", pool)
        for item in sub.items:
            p.add(*item)
    return kind, tuple(pools)


def resolve_existing(name: str, args: Mapping[str, Any]) -> ExistingClusterConfig:
    """ExistingEksCluster's args as a frozen :class:`ExistingClusterConfig`; every problem in one error."""
    a = dict(args)
    p = Problems(f"EksGpuCluster.from_existing {name!r}")
    p.unknown_keys(a, ExistingEksClusterArgs)
    cn = a.get("cluster_name")
    if not isinstance(cn, str) or not CLUSTER_NAME.match(cn):
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
    jobs = _jobs(p, a)
    sel = a.get("gpu_node_selector", {}) or {}
    if not isinstance(sel, Mapping):
        p.add("gpu_node_selector", sel, "a dict of label key -> value")
        sel = {}
    tols = a.get("gpu_tolerations")
    if tols is None:
        tols = [{"key": names.GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}]
    elif not isinstance(tols, list):
        p.add("gpu_tolerations", tols, "a list of tolerations")
        tols = []
    else:
        from mlstack.manifest import Toleration

        for i, t in enumerate(tols):
            try:
                Toleration.model_validate(t)
            except Exception as exc:  # pydantic ValidationError: report, do not crash
                p.add(f"gpu_tolerations[{i}]", t, str(exc).splitlines()[-1].strip())
    store, data = _grants(p, a)
    if "device_plugin" in a and not isinstance(a["device_plugin"], bool):
        p.add("device_plugin", a["device_plugin"], "True or False")
    tags = _tags(p, name, a)
    p.raise_if_any()
    return ExistingClusterConfig(
        cluster_name=cn,  # type: ignore[arg-type]  # checked above
        oidc_provider_arn=a["oidc_provider_arn"],
        oidc_issuer_url=a["oidc_issuer_url"],
        kubeconfig=a.get("kubeconfig"),
        cluster_endpoint=a.get("cluster_endpoint"),
        certificate_authority_data=a.get("certificate_authority_data"),
        gpu_node_selector=MappingProxyType(dict(sel)),
        gpu_tolerations=tuple(MappingProxyType(dict(t)) for t in tols),
        device_plugin=a.get("device_plugin", False),
        jobs=jobs,
        artifact_store=store,
        data_layer=data,
        tags=tags,
    )

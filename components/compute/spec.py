"""The compute components' validated config: frozen dataclasses with every default filled.

:mod:`.config` builds them from the raw args (the only place the args are read); the components, the network,
node group and autoscaler builders read only these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mlstack import names

from .._contracts import DataLayer, WriteGrantable
from .args import CapacityType, NatGateways, PodSecurity


@dataclass(frozen=True)
class NodeGroupSpec:
    """One managed node group, validated, defaults filled (GPU facts from the shipped table)."""

    name: str
    instance_types: tuple[str, ...]
    min_size: int
    desired_size: int
    max_size: int
    capacity_type: CapacityType
    ami_type: str
    """A GpuAmiType for GPU groups, a SystemAmiType for the system group."""
    disk_size_gib: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    subnet_ids: tuple[Any, ...] | None = None
    """This group's own subnets; None: every private subnet of the cluster."""
    gpu: bool = False
    gpus_per_node: int = 0
    gpu_model: str | None = None
    gpu_memory_gib: float | None = None

    @property
    def device_plugin(self) -> str:
        """Who runs the NVIDIA device plugin on this group's nodes: "os" (Bottlerocket) or "daemonset"."""
        return "os" if self.ami_type.startswith("BOTTLEROCKET") else "daemonset"

    @property
    def disk_device(self) -> str:
        """Bottlerocket keeps images and pods on its second volume; the first holds the read-only OS."""
        return "/dev/xvdb" if self.ami_type.startswith("BOTTLEROCKET") else "/dev/xvda"

    def as_dict(self) -> dict[str, Any]:
        """The plain spec `mlstack plan` and the component's ``gpu_node_group_specs`` output carry."""
        d: dict[str, Any] = {
            "name": self.name,
            "instance_types": list(self.instance_types),
            "min_size": self.min_size,
            "desired_size": self.desired_size,
            "max_size": self.max_size,
            "capacity_type": str(self.capacity_type),
            "ami_type": str(self.ami_type),
            "disk_size_gib": self.disk_size_gib,
        }
        if self.gpu:
            d.update(
                labels=dict(self.labels),
                gpus_per_node=self.gpus_per_node,
                gpu_model=self.gpu_model,
                gpu_memory_gib=self.gpu_memory_gib,
                device_plugin=self.device_plugin,
            )
        return d


@dataclass(frozen=True)
class NewVpc:
    """The VPC EksGpuCluster creates."""

    cidr: str
    zones: tuple[str, ...]
    nat_gateways: NatGateways


@dataclass(frozen=True)
class OwnVpc:
    """A VPC the caller brings (ids may be Outputs)."""

    vpc_id: Any
    private_subnet_ids: Any
    """A list of ids, or one Output of a list (e.g. another stack's output)."""


@dataclass(frozen=True)
class JobsConfig:
    """Where and as whom jobs run, and what they may reach."""

    namespace: str = names.JOBS_NAMESPACE
    service_account: str = names.JOBS_SERVICE_ACCOUNT
    pod_security: PodSecurity = PodSecurity.RESTRICTED
    extra_egress: tuple[Mapping[str, Any], ...] = ()
    gpu_quota: int | None = None
    default_image: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    """EksGpuCluster's args, validated once, every default filled."""

    cluster_name: str
    kubernetes_version: str
    vpc: NewVpc | OwnVpc
    public_access_cidrs: tuple[str, ...]
    admin_role_arns: tuple[Any, ...]
    kms_key_arn: Any | None
    log_types: tuple[str, ...]
    log_retention_days: int
    system: NodeGroupSpec
    gpu_groups: tuple[NodeGroupSpec, ...]
    imds_hop_limit: int
    cluster_autoscaler: bool
    device_plugin: bool
    node_auto_repair: bool
    extended_support: bool
    jobs: JobsConfig
    artifact_store: WriteGrantable | None
    data_layer: DataLayer | None
    tags: Mapping[str, str]
    """Tags on every AWS resource, ``mlstack:component`` included."""
    autoscaler: str = "cluster-autoscaler"
    """``cluster-autoscaler`` (managed GPU groups) or ``karpenter`` (NodePools made from the GPU groups)."""
    karpenter_pools: tuple[Any, ...] = ()
    """Every Karpenter pool (from the GPU groups, then the extra ``karpenter_pools``) when Karpenter scales."""
    jobset: bool = False
    """Install the JobSet controller and the jobs service account's JobSet Role."""

    @property
    def max_gpus(self) -> int:
        """GPUs the cluster can hold at most (every GPU group at max_size)."""
        return sum(g.max_size * g.gpus_per_node for g in self.gpu_groups)


@dataclass(frozen=True)
class ExistingClusterConfig:
    """ExistingEksCluster's args, validated once, every default filled."""

    cluster_name: str
    oidc_provider_arn: Any
    oidc_issuer_url: Any
    kubeconfig: Any | None
    cluster_endpoint: Any | None
    certificate_authority_data: Any | None
    gpu_node_selector: Mapping[str, str]
    gpu_tolerations: tuple[Mapping[str, str], ...]
    device_plugin: bool
    jobs: JobsConfig
    artifact_store: WriteGrantable | None
    data_layer: DataLayer | None
    tags: Mapping[str, str]

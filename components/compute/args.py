"""The arguments of the compute components: str Enums for every choice, TypedDicts for the args.

Each TypedDict field has a docstring naming its default; Pulumi's analyzer turns them into the package
schema (``mlstack:index:EksGpuClusterArgs`` ...) and docs/components is generated from that schema. In
Python the Enums are optional: ``"SPOT"`` and ``CapacityType.SPOT`` are the same value.
"""

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Required, TypedDict

import pulumi

if TYPE_CHECKING:  # Python callers get the Protocols; Pulumi's analyzer sees Any (a resource reference)
    from .._contracts import DataLayer as DataLayerRef
    from .._contracts import WriteGrantable as ArtifactStoreRef
else:
    ArtifactStoreRef = DataLayerRef = Any


class CapacityType(StrEnum):
    """EC2 purchasing option of a node group."""

    ON_DEMAND = "ON_DEMAND"
    """Regular on-demand capacity."""
    SPOT = "SPOT"
    """Cheaper spare capacity that EC2 can reclaim at two minutes' notice."""


class GpuAmiType(StrEnum):
    """EKS AMI type of a GPU node group: one with the NVIDIA driver and container toolkit."""

    AL2023_X86_64_NVIDIA = "AL2023_x86_64_NVIDIA"
    """EKS-optimized Amazon Linux 2023 with the NVIDIA driver; mlstack runs the device plugin."""
    BOTTLEROCKET_X86_64_NVIDIA = "BOTTLEROCKET_x86_64_NVIDIA"
    """Bottlerocket with the NVIDIA driver; the OS runs the device plugin."""
    AL2023_ARM_64_NVIDIA = "AL2023_ARM_64_NVIDIA"
    """Amazon Linux 2023 for Graviton GPU types (none in the shipped table yet)."""
    BOTTLEROCKET_ARM_64_NVIDIA = "BOTTLEROCKET_ARM_64_NVIDIA"
    """Bottlerocket for Graviton GPU types (none in the shipped table yet)."""


class SystemAmiType(StrEnum):
    """EKS AMI type of the system node group."""

    AL2023_X86_64_STANDARD = "AL2023_x86_64_STANDARD"
    """Amazon Linux 2023, x86_64."""
    AL2023_ARM_64_STANDARD = "AL2023_ARM_64_STANDARD"
    """Amazon Linux 2023, Graviton."""
    BOTTLEROCKET_X86_64 = "BOTTLEROCKET_x86_64"
    """Bottlerocket, x86_64."""
    BOTTLEROCKET_ARM_64 = "BOTTLEROCKET_ARM_64"
    """Bottlerocket, Graviton."""


class NatGateways(StrEnum):
    """NAT gateways of the VPC EksGpuCluster creates."""

    SINGLE = "single"
    """One gateway for all zones: lower cost; a zone outage cuts egress."""
    PER_ZONE = "per_zone"
    """One gateway per zone: survives a zone outage."""


class Autoscaler(StrEnum):
    """What adds GPU nodes when GPU pods are pending."""

    CLUSTER_AUTOSCALER = "cluster-autoscaler"
    """cluster-autoscaler scales the GPU managed node groups from zero (the default)."""
    KARPENTER = "karpenter"
    """Karpenter launches the GPU nodes: each GPU group becomes an EC2NodeClass and a NodePool."""


class PodSecurity(StrEnum):
    """Pod Security Standard the jobs namespace enforces (never "privileged")."""

    RESTRICTED = "restricted"
    """Non-root, no privilege escalation, seccomp: mlstack's pipeline pods meet it."""
    BASELINE = "baseline"
    """Admits root pods, needed only for steps marked ``@step(run_as_root=True)`` (reported, K8S-008)."""


class GpuNodeGroupArgs(TypedDict, total=False):
    """One GPU managed node group. Every GPU node carries the taint ``nvidia.com/gpu=true:NoSchedule``."""

    name: Required[str]
    """Required. The group's name (lowercase letters, digits, '-'; at most 32), unique in the cluster."""
    instance_types: Required[list[str]]
    """Required. GPU instance types from the shipped table (docs/compute.md), all with the same GPU count
    (cluster-autoscaler builds one node template per group). Several types help SPOT capacity."""
    min_size: int
    """Default: 0 (the group scales to zero when no GPU pod is pending)."""
    desired_size: int
    """Initial node count; cluster-autoscaler owns it afterwards (changes are ignored). Default: min_size."""
    max_size: int
    """Default: 2. The cap on this group's nodes (and its worst-case hourly cost in `mlstack plan`)."""
    capacity_type: CapacityType
    """Default: "ON_DEMAND". "SPOT" is cheaper and can be reclaimed at two minutes' notice."""
    ami_type: GpuAmiType
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
    capacity_type: CapacityType
    """Default: "ON_DEMAND"."""
    ami_type: SystemAmiType
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
    private_subnet_ids: pulumi.Input[list[pulumi.Input[str]]]
    """Your private subnets, at least two zones, with a route to NAT or VPC endpoints. Default: created."""
    vpc_cidr: str
    """CIDR of the new VPC (only without vpc_id). Default: "10.40.0.0/16"."""
    availability_zones: list[str]
    """Zones of the new VPC, two or three (only without vpc_id). Default: "<region>a" and "<region>b". Pick
    zones that offer your GPU types (`aws ec2 describe-instance-type-offerings --location-type
    availability-zone`): GPU capacity differs by zone."""
    nat_gateways: NatGateways
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
    autoscaler: Autoscaler
    """What scales GPU capacity. Default: "cluster-autoscaler" (the GPU managed node groups, from zero).
    "karpenter": Karpenter (pinned 1.14.1, IRSA, encrypted interruption queue, EventBridge rules) launches the
    GPU nodes; each gpu_node_groups entry becomes an EC2NodeClass and a NodePool of the same name (its types,
    Spot with On-Demand fallback for SPOT groups, max_size x GPUs per node as the pool's GPU limit, its labels,
    disk and AMI family; min_size/desired_size do not apply) and no GPU managed node group or
    cluster-autoscaler is created. See docs/compute.md, Scale from zero."""
    karpenter_pools: list[Any]
    """More Karpenter pools, as ``KarpenterPool`` objects (mlstack.components.compute.karpenter): instance
    families, shared GPUs (time-slicing, MIG); only with autoscaler="karpenter". Default: none."""
    jobset: bool
    """Install the JobSet controller (pinned 0.12.0) and let the jobs service account create JobSets, which
    multi-node steps (``@step(nodes=N)``) need on Argo. Default: False."""
    device_plugin: bool
    """Run the pinned NVIDIA device plugin DaemonSet on AL2023 GPU nodes. Default: True."""
    node_auto_repair: bool
    """EKS node auto repair on every group plus the eks-node-monitoring-agent add-on, so a node whose GPU
    reports a fault (XID errors) is replaced instead of failing every job scheduled on it. Default: True."""
    jobs_namespace: str
    """Namespace where jobs run. Default: "ml-jobs"."""
    jobs_service_account: str
    """Service account jobs run as, bound to the IRSA jobs role. Default: "mlstack-jobs"."""
    jobs_pod_security: PodSecurity
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
    artifact_store: ArtifactStoreRef
    """An S3ArtifactStore: the jobs role gets read and write on it. Default: no artifact grant."""
    data_layer: DataLayerRef
    """A data layer with ``grant_read(role)``: the jobs role gets read on it. Default: no data grant."""
    default_image: str
    """Default container image for pipeline steps, written to the manifest. Default: none."""
    extended_support: bool
    """Allow EKS extended support (the cluster keeps its version past standard support, at $0.60 instead
    of $0.10 per hour). Default: False: EKS upgrades the cluster when standard support ends."""
    tags: dict[str, str]
    """Tags added to every AWS resource. Default: {"mlstack:component": <name>}."""


class ExistingEksClusterArgs(TypedDict, total=False):
    """Arguments of :meth:`EksGpuCluster.from_existing`: an EKS cluster mlstack did not create."""

    cluster_name: Required[str]
    """Required. Name of the existing EKS cluster (in the AWS provider's region)."""
    oidc_provider_arn: Required[pulumi.Input[str]]
    """Required. ARN of the cluster's IAM OIDC provider (`eksctl utils associate-iam-oidc-provider` creates
    one)."""
    oidc_issuer_url: Required[pulumi.Input[str]]
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
    jobs_pod_security: PodSecurity
    """Pod Security Standard the jobs namespace enforces. Default: "restricted"; "baseline" admits the root
    pods of ``@step(run_as_root=True)`` steps (reported by `mlstack plan`, K8S-008)."""
    jobs_extra_egress: list[dict[str, Any]]
    """Extra NetworkPolicy egress rules for the jobs namespace's pods (see EksGpuClusterArgs). Default: none
    (cluster DNS and TCP 443 only). Your cluster's CNI must enforce NetworkPolicies."""
    artifact_store: ArtifactStoreRef
    """An S3ArtifactStore: the jobs role gets read and write on it. Default: no artifact grant."""
    data_layer: DataLayerRef
    """A data layer with ``grant_read(role)``: the jobs role gets read on it. Default: no data grant."""
    default_image: str
    """Default container image for pipeline steps, written to the manifest. Default: none."""
    tags: dict[str, str]
    """Tags added to the AWS resources created (IAM roles). Default: {"mlstack:component": <name>}."""

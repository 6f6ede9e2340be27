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

The compute package is split along these seams: ``args`` (the TypedDicts and Enums), ``config`` (pure
validation into frozen config), ``network``, ``node_groups``, ``autoscaler``, ``device_plugin``,
``existing`` (bring your own cluster) and ``_shared`` (what both clusters share); this module wires the
control plane and the pieces together. The names below are re-exported for existing imports.
"""

import json
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlstack import names

from .. import _policy, _tokens
from .._args import InputPropertiesError
from . import gpu_types
from ._shared import JobsClusterBase, kubeconfig, require_region
from ._shared import partition as _partition_of
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
from .autoscaler import AUTOSCALER_PORT, cluster_autoscaler
from .config import (
    ALL_LOG_TYPES,
    LOG_RETENTION_DAYS,
    REQUIRED_LOG_TYPES,
    ClusterConfig,
    OwnVpc,
    resolve_cluster,
)
from .device_plugin import device_plugin
from .existing import ExistingEksCluster
from .network import build_network
from .node_groups import SYSTEM_LABELS, NodeGroupContext, gpu_labels, node_group, scale_from_zero_tags

GPU_LABEL = names.GPU_LABEL
ROLE_LABEL = names.ROLE_LABEL
DEVICE_PLUGIN_LABEL = names.DEVICE_PLUGIN_LABEL
JOBSET_LABEL = names.JOBSET_LABEL
GPU_TAINT = names.GPU_TAINT
GPU_TOLERATION = names.GPU_TOLERATION

TYPE = _tokens.token("EksGpuCluster")
OLD_TYPE = "mlstack:compute:EksGpuCluster"  # kept as an alias: deployed stacks replace nothing
OUTPUTS = (
    "cluster_name",
    "cluster_endpoint",
    "cluster_arn",
    "kubeconfig",
    "oidc_provider_arn",
    "oidc_issuer_url",
    "jobs_namespace",
    "jobs_service_account_name",
    "jobs_role_arn",
    "region",
    "vpc_id",
    "private_subnet_ids",
    "kms_key_arn",
    "gpu_node_group_specs",
    "manifest_section",
)

__all__ = [
    "ALL_LOG_TYPES",
    "AUTOSCALER_PORT",
    "DEVICE_PLUGIN_LABEL",
    "GPU_LABEL",
    "GPU_TAINT",
    "GPU_TOLERATION",
    "JOBSET_LABEL",
    "LOG_RETENTION_DAYS",
    "REQUIRED_LOG_TYPES",
    "ROLE_LABEL",
    "CapacityType",
    "EksGpuCluster",
    "EksGpuClusterArgs",
    "ExistingEksCluster",
    "ExistingEksClusterArgs",
    "GpuAmiType",
    "GpuNodeGroupArgs",
    "InputPropertiesError",
    "NatGateways",
    "PodSecurity",
    "SystemAmiType",
    "SystemNodeGroupArgs",
]


class EksGpuCluster(pulumi.ComponentResource, JobsClusterBase):
    """An EKS cluster for GPU jobs: private, encrypted, logged, IRSA-ready, GPU groups that scale from zero.

    Outputs: ``cluster_name``, ``cluster_endpoint``, ``cluster_arn``, ``kubeconfig`` (secret),
    ``oidc_provider_arn``, ``oidc_issuer_url``, ``jobs_namespace``, ``jobs_service_account_name``,
    ``jobs_role_arn``, ``region``, ``vpc_id``, ``private_subnet_ids``, ``kms_key_arn``,
    ``gpu_node_group_specs`` (plain validated specs for cost and quota checks) and ``manifest_section``
    (the compute section). In Python also: ``jobs_role`` (aws.iam.Role), ``node_groups`` (name ->
    aws.eks.NodeGroup), ``provider`` (a pulumi_kubernetes Provider for this cluster), ``config`` (the
    validated :class:`~mlstack.components.compute.config.ClusterConfig`).
    """

    pulumi_type = TYPE
    cluster_name: pulumi.Output[str]
    """Name of the EKS cluster."""
    cluster_endpoint: pulumi.Output[str]
    """URL of the Kubernetes API server."""
    cluster_arn: pulumi.Output[str]
    """ARN of the EKS cluster."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig authenticating with `aws eks get-token` (secret)."""
    vpc_id: pulumi.Output[str]
    """The VPC the cluster runs in."""
    private_subnet_ids: pulumi.Output[list[str]]
    """The private subnets nodes run in."""
    kms_key_arn: pulumi.Output[str]
    """The KMS key encrypting Kubernetes Secrets."""
    gpu_node_group_specs: list[dict[str, Any]]
    """The GPU node groups as validated (instance types, sizes, GPUs per node): what `mlstack plan` costs."""
    # oidc_provider_arn, oidc_issuer_url, region, jobs_namespace, jobs_service_account_name, jobs_role_arn and
    # manifest_section: declared (with their docstrings) once on JobsClusterBase; provider.inherit_descriptions
    # puts those docstrings in the schema, which the analyzer reads from this class only

    def __init__(
        self,
        name: str,
        args: EksGpuClusterArgs = {},  # noqa: B006 -- read once into frozen config, never mutated
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        self._component_name = name
        region = aws.config.region
        cfg = resolve_cluster(
            name, args or {}, project=pulumi.get_project(), stack=pulumi.get_stack(), region=region
        )
        region = require_region(f"EksGpuCluster {name!r}")
        self.config: ClusterConfig = cfg
        self.gpu_node_group_specs = [g.as_dict() for g in cfg.gpu_groups]
        self.system_node_group_spec: dict[str, Any] = cfg.system.as_dict()
        self.kubernetes_version: str = cfg.kubernetes_version
        self.jobs_service_account_name = cfg.jobs.service_account
        self._artifact_store = cfg.artifact_store
        self._data_layer = cfg.data_layer
        self._gpu_node_selector = {names.GPU_LABEL: "true"}
        self._gpu_tolerations = [dict(names.GPU_TOLERATION)]

        child = pulumi.ResourceOptions(parent=self)
        tags = dict(cfg.tags)
        cluster_name = cfg.cluster_name
        self.region = pulumi.Output.from_input(region)
        partition = pulumi.Output.from_input(_partition_of(region))

        def managed(policy: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy)

        # ------------------------------------------------------------ network
        private_subnets: Any
        if isinstance(cfg.vpc, OwnVpc):
            self.vpc_id = pulumi.Output.from_input(cfg.vpc.vpc_id)
            private_subnets = cfg.vpc.private_subnet_ids
        else:
            net = build_network(self, name, cfg.vpc, cluster_name, tags)
            self.vpc_id, private_subnets = net.vpc_id, net.private_subnet_ids
            self.nat_gateway_count = net.nat_gateway_count
        self.private_subnet_ids = pulumi.Output.from_input(private_subnets)

        # ------------------------------------------------------------ encryption and logs
        if cfg.kms_key_arn is not None:
            self.kms_key_arn = pulumi.Output.from_input(cfg.kms_key_arn)
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
            retention_in_days=cfg.log_retention_days,
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
        cidrs = list(cfg.public_access_cidrs)
        vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": private_subnets,
            "endpoint_private_access": True,
            "endpoint_public_access": bool(cidrs),
        }
        if cidrs:
            vpc_config["public_access_cidrs"] = cidrs
        self.cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            version=self.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=vpc_config,
            encryption_config={"provider": {"key_arn": self.kms_key_arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(cfg.log_types),
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            # add-ons are managed below as EKS add-ons (versioned, upgradeable), not the unmanaged defaults
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": "EXTENDED" if cfg.extended_support else "STANDARD"},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, cluster_attach, cluster_kms]),
        )
        self.cluster_name = self.cluster.name
        self.cluster_endpoint = self.cluster.endpoint
        self.cluster_arn: pulumi.Output[str] = self.cluster.arn
        # EKS reports one OIDC issuer per cluster (pulumi-aws types each level Optional)
        self.oidc_issuer_url = self.cluster.identities.apply(lambda ids: cast(str, (ids[0].oidcs or [])[0].issuer))
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )
        self.oidc_provider = oidc
        self.oidc_provider_arn = oidc.arn

        for i, arn in enumerate(cfg.admin_role_arns):
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
        ctx = NodeGroupContext(
            cluster=self.cluster,
            cluster_name=cluster_name,
            node_role=node_role,
            subnets=private_subnets,
            imds_hop_limit=cfg.imds_hop_limit,
            auto_repair=cfg.node_auto_repair,
            tags=tags,
            deps=[*node_attach, vpc_cni, kube_proxy],
        )
        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        self.launch_templates: dict[str, aws.ec2.LaunchTemplate] = {}
        karpenter = cfg.autoscaler == "karpenter"
        for spec, labels, taints in [
            (cfg.system, SYSTEM_LABELS, ()),
            # with Karpenter the GPU groups become NodePools (below), not managed node groups
            *((g, gpu_labels(g), (names.GPU_TAINT,)) for g in (() if karpenter else cfg.gpu_groups)),
        ]:
            lt, ng = node_group(self, name, ctx, spec, labels, taints)
            self.launch_templates[spec.name], self.node_groups[spec.name] = lt, ng
            if spec.gpu and cfg.cluster_autoscaler:
                scale_from_zero_tags(self, name, spec, ng, labels)
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
        if cfg.node_auto_repair:
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
            ).apply(lambda v: kubeconfig(*v))
        )
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        kopts = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[system_ng, coredns])

        self._jobs_identity(name, cfg.jobs, tags, kopts)
        if cfg.jobs.gpu_quota is not None:
            self.jobs_gpu_quota = k8s.core.v1.ResourceQuota(
                f"{name}-jobs-gpu",
                metadata={
                    "name": "mlstack-gpu",
                    "namespace": self.jobs_namespace,
                    "labels": {"app.kubernetes.io/managed-by": "mlstack"},
                },
                spec={"hard": {f"requests.{gpu_types.GPU_RESOURCE}": str(cfg.jobs.gpu_quota)}},
                opts=kopts,
            )
        # GPUs the cluster can hold at most (every GPU group at max_size)
        self.max_gpus: int = cfg.max_gpus
        for g in cfg.gpu_groups:
            if g.capacity_type == CapacityType.SPOT and len(g.instance_types) == 1:
                pulumi.log.warn(
                    f"GPU node group {g.name!r} is SPOT with one instance type: list several types of the "
                    "same GPU count so a reclaimed or unavailable type does not leave the group empty",
                    resource=self,
                )

        if cfg.device_plugin and any(s.device_plugin == "daemonset" for s in cfg.gpu_groups):
            self.device_plugin = device_plugin(name, kopts)
        if karpenter:
            self.karpenter = self._karpenter(name, cfg, private_subnets, tags, [system_ng, coredns])
        if cfg.jobset:
            from .jobset import JobSetArgs, JobSetController

            self.jobset = JobSetController(
                f"{name}-jobset",
                JobSetArgs(jobs_namespace=self.jobs_namespace, jobs_service_account=cfg.jobs.service_account),
                pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[system_ng, coredns]),
            )
        if cfg.cluster_autoscaler and not karpenter:
            autoscaler = cluster_autoscaler(
                self, name, self.cluster.arn, cluster_name, cfg.kubernetes_version, tags, partition, kopts
            )
            self.autoscaler_role, self.autoscaler = autoscaler.role, autoscaler.deployment

        self.manifest_section = self._compute_section(self.cluster.name, cfg.jobs)
        self.register_outputs({k: getattr(self, k) for k in OUTPUTS})

    def _karpenter(
        self, name: str, cfg: ClusterConfig, subnets: Any, tags: dict[str, str], deps: list[pulumi.Resource]
    ) -> Any:
        """Karpenter for the GPU pools: nodes in the cluster's private subnets with its security group."""
        from .karpenter import Karpenter, KarpenterArgs

        return Karpenter(
            f"{name}-karpenter",
            KarpenterArgs(
                cluster_name=self.cluster.name,
                cluster_arn=self.cluster.arn,
                cluster_endpoint=self.cluster.endpoint,
                pools=cfg.karpenter_pools,
                oidc_provider_arn=self.oidc_provider_arn,
                oidc_issuer_url=self.oidc_issuer_url,
                subnet_ids=subnets,
                # set by EKS on every cluster (pulumi-aws types it Optional)
                security_group_ids=self.cluster.vpc_config.apply(lambda v: [cast(str, v.cluster_security_group_id)]),
                tags=tags,
            ),
            pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=deps),
        )

    @staticmethod
    def from_existing(
        name: str,
        args: ExistingEksClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> ExistingEksCluster:
        """Bring your own cluster: add mlstack's jobs namespace, service account and IRSA role to an EKS
        cluster created elsewhere (see :class:`ExistingEksCluster`)."""
        return ExistingEksCluster(name, args, opts)

"""What EksGpuCluster and ExistingEksCluster share: the shared names, IRSA roles, the jobs identity, the
manifest's compute section and the kubeconfig. The names themselves live in :mod:`mlstack.names`, which the
runtime library (pipelines, doctor) imports too.
"""


import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlstack import names
from mlstack.manifest import validate_section

from .. import _network_policy, _policy
from .._args import InputPropertiesError
from .._contracts import DataLayer, ReadGrantable, WriteGrantable
from . import gpu_types
from .spec import JobsConfig


def require_region(component: str) -> str:
    """The AWS region from the provider configuration (aws:region, else AWS_REGION), not from an invoke, so
    a plan is deterministic and needs no credentials."""
    region = aws.config.region
    if not region:
        raise InputPropertiesError(
            component, [("aws:region", None, "set `pulumi config set aws:region <region>` (or AWS_REGION)")]
        )
    return region


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def kubeconfig(name: str, endpoint: str, ca: str, region: str) -> str:
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


class JobsClusterBase:
    """IRSA roles, the jobs namespace/service account/role and the compute section, for both clusters."""

    oidc_provider_arn: pulumi.Output[str]
    """ARN of the cluster's IAM OIDC provider (IRSA roles trust it)."""
    oidc_issuer_url: pulumi.Output[str]
    """The cluster's OIDC issuer URL."""
    region: pulumi.Output[str]
    """AWS region of the cluster."""
    jobs_namespace: pulumi.Output[str]
    """Namespace where jobs run."""
    jobs_service_account_name: str
    """Service account jobs run as (bound to the IRSA jobs role)."""
    jobs_role_arn: pulumi.Output[str]
    """ARN of the IRSA role jobs run as; the artifact store and data layer grant to it."""
    manifest_section: pulumi.Output[dict[str, Any]]
    """The manifest's ``compute`` section."""
    _component_name: str
    _gpu_node_selector: dict[str, str]
    _gpu_tolerations: list[dict[str, str]]
    _artifact_store: WriteGrantable | None
    _data_layer: DataLayer | None

    # Python-only members (not package outputs: live objects, or plain values other members already carry)
    @property
    def gpu_node_selector(self) -> dict[str, str]:
        """Node labels GPU steps select."""
        return self._gpu_node_selector

    @property
    def gpu_tolerations(self) -> list[dict[str, str]]:
        """Tolerations GPU steps carry."""
        return self._gpu_tolerations

    @property
    def artifact_store(self) -> WriteGrantable | None:
        """The artifact store the jobs role was granted read/write on, if any."""
        return self._artifact_store

    @property
    def data_layer(self) -> DataLayer | None:
        """The data layer the jobs role was granted read on, if any."""
        return self._data_layer

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
        self, name: str, jobs: JobsConfig, tags: Mapping[str, str], kopts: pulumi.ResourceOptions
    ) -> None:
        """The jobs namespace, its service account and the IRSA role pinned to it; owners grant to the role."""
        self.jobs_namespace_name: str = jobs.namespace
        self.jobs_pod_security: str = str(jobs.pod_security)
        namespace = k8s.core.v1.Namespace(
            f"{name}-jobs",
            metadata={
                "name": jobs.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "mlstack",
                    # pipeline pods run non-root and read-only (mlstack.pipeline.security): enforce restricted
                    # unless the owner opted the namespace down for run_as_root steps; always warn/audit on it
                    "pod-security.kubernetes.io/enforce": str(jobs.pod_security),
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            },
            opts=kopts,
        )
        self.jobs_namespace_resource = namespace
        self.jobs_namespace = namespace.metadata.apply(lambda m: m["name"])
        # default-deny ingress, egress to DNS and HTTPS only; the pods of one multi-node step (a JobSet) reach
        # each other (torch.distributed rendezvous, NCCL), nothing else reaches them
        jobset = {"matchExpressions": [{"key": names.JOBSET_LABEL, "operator": "Exists"}]}
        self.jobs_network_policies = _network_policy.namespace_policies(
            f"{name}-jobs",
            self.jobs_namespace,
            kopts,
            extra_egress=list(jobs.extra_egress) or None,
            peers=[("allow-jobset-peers", jobset)],
        )
        self.jobs_role = self.irsa_role(f"{name}-jobs", jobs.namespace, jobs.service_account, tags)
        self.jobs_role_arn = self.jobs_role.arn
        self.jobs_service_account = k8s.core.v1.ServiceAccount(
            f"{name}-jobs",
            metadata={
                "name": jobs.service_account,
                "namespace": self.jobs_namespace,
                "labels": {"app.kubernetes.io/managed-by": "mlstack"},
                "annotations": {"eks.amazonaws.com/role-arn": self.jobs_role.arn},
            },
            opts=kopts,
        )
        if self._artifact_store is not None:
            # grant_write includes read: one inline policy per (role, store), never two overlapping ones
            self._artifact_store.grant_write(self.jobs_role)
        if isinstance(self._data_layer, ReadGrantable):
            self._data_layer.grant_read(self.jobs_role)

    def _compute_section(
        self, cluster_name: pulumi.Input[str], jobs: JobsConfig
    ) -> pulumi.Output[dict[str, Any]]:
        selector, tolerations = dict(self._gpu_node_selector), [dict(t) for t in self._gpu_tolerations]
        return pulumi.Output.all(cluster_name, self.region, self.jobs_namespace).apply(
            lambda v: validate_section(
                "compute",
                {
                    "kind": "kubernetes",
                    "cluster_name": v[0],
                    "region": v[1],
                    "namespace": v[2],
                    "service_account": jobs.service_account,
                    "gpu": {
                        "resource": gpu_types.GPU_RESOURCE,
                        "node_selector": selector,
                        "tolerations": tolerations,
                    },
                    **({"image": jobs.default_image} if jobs.default_image else {}),
                },
            )
        )


def outputs(component: JobsClusterBase, keys: Sequence[str]) -> dict[str, Any]:
    """The registered outputs: the named attributes, as the package schema declares them."""
    return {k: getattr(component, k) for k in keys}

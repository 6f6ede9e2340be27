"""ExistingEksCluster: bring your own EKS cluster; mlstack adds the jobs namespace, service account and role."""


from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .. import _tokens
from ._shared import JobsClusterBase, kubeconfig, require_region
from .args import ExistingEksClusterArgs
from .config import resolve_existing
from .device_plugin import device_plugin

TYPE = _tokens.token("ExistingEksCluster")
OLD_TYPE = "mlstack:compute:ExistingEksCluster"  # kept as an alias: deployed stacks replace nothing
OUTPUTS = (
    "cluster_name",
    "kubeconfig",
    "oidc_provider_arn",
    "oidc_issuer_url",
    "jobs_namespace",
    "jobs_service_account_name",
    "jobs_role_arn",
    "region",
    "manifest_section",
)


class ExistingEksCluster(pulumi.ComponentResource, JobsClusterBase):
    """An EKS cluster created elsewhere, with mlstack's jobs namespace, service account and IRSA role added.

    Same outputs as :class:`EksGpuCluster` where they make sense (``node_groups`` and ``gpu_node_group_specs``
    are empty: mlstack does not manage the nodes, so `mlstack plan` cannot cost them). Create it with
    :meth:`EksGpuCluster.from_existing` or directly.
    """

    pulumi_type = TYPE
    cluster_name: pulumi.Output[str]
    """Name of the EKS cluster."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig for the cluster (secret)."""
    # oidc_provider_arn, oidc_issuer_url, region, jobs_namespace, jobs_service_account_name, jobs_role_arn and
    # manifest_section: declared (with their docstrings) once on JobsClusterBase; provider.inherit_descriptions
    # puts those docstrings in the schema, which the analyzer reads from this class only

    def __init__(
        self,
        name: str,
        args: ExistingEksClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        cfg = resolve_existing(name, args or {})
        self.config = cfg
        self._component_name = name
        region = require_region(f"EksGpuCluster.from_existing {name!r}")
        self.region = pulumi.Output.from_input(region)
        self.kubernetes_version: str | None = None
        self.cluster_name = pulumi.Output.from_input(cfg.cluster_name)
        self.cluster_endpoint: pulumi.Output[Any] = pulumi.Output.from_input(cfg.cluster_endpoint)
        self.oidc_provider_arn = pulumi.Output.from_input(cfg.oidc_provider_arn)
        self.oidc_issuer_url = pulumi.Output.from_input(cfg.oidc_issuer_url)
        self.jobs_service_account_name = cfg.jobs.service_account
        self._artifact_store = cfg.artifact_store
        self._data_layer = cfg.data_layer
        self._gpu_node_selector = dict(cfg.gpu_node_selector)
        self._gpu_tolerations = [dict(t) for t in cfg.gpu_tolerations]
        self.node_groups: dict[str, Any] = {}
        self.gpu_node_group_specs: list[dict[str, Any]] = []
        tags = dict(cfg.tags)
        if cfg.kubeconfig is not None:
            self.kubeconfig = pulumi.Output.secret(cfg.kubeconfig)
        else:
            self.kubeconfig = pulumi.Output.secret(
                pulumi.Output.all(
                    cfg.cluster_name, cfg.cluster_endpoint, cfg.certificate_authority_data, region
                ).apply(lambda v: kubeconfig(*v))
            )
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        kopts = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self._jobs_identity(name, cfg.jobs, tags, kopts)
        if cfg.device_plugin:
            self.device_plugin = device_plugin(name, kopts)
        self.manifest_section = self._compute_section(self.cluster_name, cfg.jobs)
        self.register_outputs({k: getattr(self, k) for k in OUTPUTS})

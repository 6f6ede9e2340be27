"""The JobSet controller, for multi-node steps (``@step(nodes=N)`` renders a JobSet on Argo).

``JobSetController(name, JobSetArgs(...), opts)`` (``opts.provider``: the cluster's Kubernetes provider)
installs the ``jobset`` chart pinned to :data:`JOBSET_VERSION` (its CRD, ``jobset.x-k8s.io/v1alpha2``, is
the one pinned in tests/crds) in its own namespace, on the system nodes, with its webhook certificates
managed by the controller itself (no cert-manager needed) and no Prometheus ServiceMonitor (that needs the
Prometheus operator's CRDs); and, in the jobs namespace, the Role that lets the workflow's service account
create and follow JobSets (``mlstack.pipeline.jobset.rbac_rules()``: create, get, list, watch; nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from mlstack import names
from mlstack.pipeline import jobset as _runtime

from .. import _tokens
from .._args import Problems, is_known
from . import versions

JOBSET_VERSION = versions.JOBSET_VERSION
"""The JobSet release (chart and controller image); tests/crds/jobset.x-k8s.io_jobsets.yaml is its CRD."""
JOBSET_CHART = "oci://registry.k8s.io/jobset/charts/jobset"
NAMESPACE = "jobset-system"
ROLE_NAME = "mlstack-jobsets"


@dataclass(frozen=True)
class JobSetArgs:
    jobs_namespace: pulumi.Input[str] = names.JOBS_NAMESPACE
    """Namespace the pipelines run in (their JobSets are created there). Default ``ml-jobs``."""
    jobs_service_account: pulumi.Input[str] = names.JOBS_SERVICE_ACCOUNT
    """The workflows' service account, granted create/get/list/watch on JobSets. Default ``mlstack-jobs``."""
    node_selector: Mapping[str, str] = field(default_factory=lambda: {names.ROLE_LABEL: "system"})
    """Where the controller runs. Default: the system node group."""
    replicas: int = 1
    """Controller replicas (leader election on). Default 1."""


def validate(args: JobSetArgs) -> None:
    p = Problems("JobSetController")
    if not isinstance(args.replicas, int) or isinstance(args.replicas, bool) or args.replicas < 1:
        p.add("replicas", args.replicas, "a whole number >= 1")
    for key in ("jobs_namespace", "jobs_service_account"):
        v = getattr(args, key)
        if is_known(v) and (not isinstance(v, str) or not v):
            p.add(key, v, "a Kubernetes name")
    p.raise_if_any()


class JobSetController(pulumi.ComponentResource):
    """The pinned JobSet controller and the jobs service account's RBAC for JobSets."""

    def __init__(
        self, name: str, args: JobSetArgs | None = None, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = args or JobSetArgs()
        validate(args)
        super().__init__(_tokens.token("JobSetController"), name, None, opts)
        kopts = pulumi.ResourceOptions(parent=self)
        self.release = k8s.helm.v3.Release(
            f"{name}-jobset",
            name="jobset",
            chart=JOBSET_CHART,
            version=JOBSET_VERSION,
            namespace=NAMESPACE,
            create_namespace=True,
            atomic=True,
            values={
                "controller": {"replicas": args.replicas, "nodeSelector": dict(args.node_selector)},
                "certManager": {"enable": False},
                "prometheus": {"enable": False},
            },
            opts=kopts,
        )
        role = _runtime.role("placeholder", ROLE_NAME)
        self.role = k8s.rbac.v1.Role(
            f"{name}-jobsets",
            metadata={
                "name": ROLE_NAME,
                "namespace": args.jobs_namespace,
                "labels": role["metadata"]["labels"],
            },
            rules=role["rules"],
            opts=kopts,
        )
        self.role_binding = k8s.rbac.v1.RoleBinding(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
            f"{name}-jobsets",
            metadata={
                "name": ROLE_NAME,
                "namespace": args.jobs_namespace,
                "labels": role["metadata"]["labels"],
            },
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
            subjects=[
                {
                    "kind": "ServiceAccount",
                    "name": args.jobs_service_account,
                    "namespace": args.jobs_namespace,
                }
            ],
            opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[self.role])),
        )
        self.register_outputs({"version": JOBSET_VERSION, "namespace": NAMESPACE})

"""ArgoWorkflows: Argo Workflows on an EksGpuCluster, wired to the artifact store and the stack manifest.

- the argo-workflows Helm chart at a pinned version (a helm v3 Release), its CRDs kept on uninstall;
- the Argo server in ``client`` or ``sso`` auth mode (never ``server``, which would let anyone reaching the
  UI act as the server's service account), HTTPS, ClusterIP only;
- the default artifact repository on the artifact store's bucket and prefix, through IRSA (``useSDKCreds``,
  no static keys); the server reads artifacts for the UI with its own read-only IRSA role;
- workflows run as the cluster's jobs service account, bound to a Role with only what Argo's executor needs,
  and as a non-root user by default (workflow defaults, executor and main-container security contexts);
- every workflow defaults to tolerating the GPU taint, and every main container receives the stack manifest
  as ``MLSTACK_MANIFEST`` from the ConfigMap ``mlstack-manifest`` that :meth:`ArgoWorkflows.publish_manifest`
  writes into the jobs namespace.
"""

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Required, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from mlstack import names
from mlstack.manifest import from_dict, validate_section
from mlstack.pipeline import security as job_security

from .. import _network_policy, _tokens
from .._contracts import ArtifactStoreRef, ClusterRef, S3Store
from ..compute.eks import ROLE_LABEL, EksGpuCluster
from . import versions
from .config import ArgoConfig, SsoConfig, resolve_argo

MANIFEST_CONFIGMAP = names.MANIFEST_CONFIGMAP
"""Name of the ConfigMap holding the stack manifest in the jobs namespace."""
MANIFEST_KEY = names.MANIFEST_KEY
"""Key of the manifest JSON in that ConfigMap."""
RELEASE_NAME = "argo-workflows"
TYPE = _tokens.token("ArgoWorkflows")
OLD_TYPE = "mlstack:orchestrator:ArgoWorkflows"  # kept as an alias: deployed stacks replace nothing
SERVER_SERVICE_ACCOUNT = "argo-server"
CONTROLLER_SERVICE_ACCOUNT = "argo-workflow-controller"
SERVER_PORT = 2746
AUTH_MODES = ("client", "sso")


class AuthMode(StrEnum):
    """How the Argo server authenticates callers (never "server": that lets anyone act as its account)."""

    CLIENT = "client"
    """Bearer tokens (a Kubernetes token, e.g. from `aws eks get-token`), checked by the API server."""
    SSO = "sso"
    """Single sign-on through an OIDC provider (needs ``sso``)."""


__all__ = [
    "ArgoConfig",
    "ArgoSsoArgs",
    "ArgoWorkflows",
    "ArgoWorkflowsArgs",
    "AuthMode",
    "SsoConfig",
    "resolve_argo",
]


class ArgoSsoArgs(TypedDict, total=False):
    """Single sign-on for the Argo server through an OIDC provider (Okta, Google, Cognito, Dex, ...)."""

    issuer: Required[str]
    """Required. The OIDC issuer URL, e.g. "https://accounts.google.com"."""
    redirect_url: Required[str]
    """Required. "<argo server URL>/oauth2/callback", as registered with the identity provider."""
    client_secret_name: str
    """Kubernetes Secret in the Argo namespace holding the OIDC client as keys ``client-id`` and
    ``client-secret`` (create it yourself, e.g. from AWS Secrets Manager; mlstack never handles it).
    Default: "argo-server-sso"."""
    scopes: list[str]
    """Extra OIDC scopes. Default: ["groups"] (group claims drive SSO RBAC)."""
    rbac: bool
    """Map SSO users to service accounts through annotations (Argo SSO RBAC). Default: True; False lets every
    signed-in user act as the server's service account."""


class ArgoWorkflowsArgs(TypedDict, total=False):
    """Arguments of :class:`ArgoWorkflows`."""

    cluster: Required[ClusterRef]
    """Required. The cluster to install into (its provider, jobs namespace and jobs service account): an
    EksGpuCluster, or ``EksGpuCluster.from_existing(...)`` for a cluster created elsewhere."""
    artifact_store: ArtifactStoreRef
    """The artifact store (S3ArtifactStore) holding Argo's artifacts under "<store prefix>/argo/".
    Default: the cluster's artifact_store; without either, Argo has no default artifact repository."""
    auth_mode: AuthMode
    """How the Argo server authenticates callers. Default: "client" (bearer tokens: a Kubernetes token, e.g.
    from `aws eks get-token`, checked by the API server). "sso" needs `sso`."""
    sso: ArgoSsoArgs
    """SSO settings; required with auth_mode "sso", refused otherwise. Default: none."""
    namespace: str
    """Namespace of the controller and server. Default: "argo"."""
    chart_version: str
    """argo-workflows chart version. Default: the pin in components/orchestrator/versions.py."""
    workflow_ttl_hours: int
    """Hours a finished workflow (and its record) is kept before deletion. Default: 168 (one week)."""
    gpu_tolerations: bool
    """Give every workflow the cluster's GPU tolerations by default, so GPU steps can land on GPU nodes
    (they still need the GPU request and node selector). Default: True."""
    archive_logs: bool
    """Save every step's main-container log to the artifact repository. Default: True when there is one."""
    server_ingress_from: list[dict[str, Any]]
    """NetworkPolicy peers (Kubernetes YAML shape) that may reach the Argo server's port 2746 besides the jobs
    namespace, e.g. ``[{"ipBlock": {"cidr": "10.40.0.0/16"}}]`` behind an internal load balancer or ingress.
    Default: none: the server is reached through `kubectl port-forward` (which needs no policy) and from
    the jobs namespace."""
    extra_egress: list[dict[str, Any]]
    """Extra NetworkPolicy egress rules for Argo's pods (controller, server, CRD job), e.g. to an SSO issuer
    inside the VPC on a port other than 443. Default: none (cluster DNS and TCP 443 only)."""
    extra_values: dict[str, Any]
    """Extra chart values, deep-merged over mlstack's. Default: none. Refused when they switch the server
    to auth mode "server" or back to static S3 credentials."""


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    # no deepcopy: values hold pulumi Outputs, which must be passed through as they are
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class ArgoWorkflows(pulumi.ComponentResource):
    """Argo Workflows for the stack's jobs; exports the manifest ``orchestrator`` section.

    Outputs: ``namespace`` (where Argo runs), ``workflow_namespace`` (where workflows run: the jobs
    namespace), ``workflow_service_account_name``, ``server_url`` (in-cluster), ``release`` (the Helm Release),
    ``chart_version``, ``manifest_section``. Call :meth:`publish_manifest` with the whole stack manifest.
    """

    namespace: pulumi.Output[str]
    """Namespace of the controller and server."""
    workflow_namespace: pulumi.Output[str]
    """Namespace where workflows run (the cluster's jobs namespace)."""
    workflow_service_account_name: str
    """Service account workflow pods run as."""
    server_url: str
    """In-cluster URL of the Argo server."""
    chart_version: str
    """The argo-workflows chart version installed."""
    manifest_section: pulumi.Output[dict[str, Any]]
    """The manifest's ``orchestrator`` section."""

    def __init__(
        self,
        name: str,
        args: ArgoWorkflowsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        cfg = resolve_argo(name, args)
        self.config = cfg
        cluster = cfg.cluster
        self._name_prefix = name
        self.cluster = cluster
        store = cfg.artifact_store
        self.artifact_store = store
        self.chart_version = cfg.chart_version
        self.auth_mode: str = cfg.auth_mode.value
        kopts = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        labels = {"app.kubernetes.io/managed-by": "mlstack", "app.kubernetes.io/part-of": "argo-workflows"}

        ns_name = cfg.namespace
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": ns_name,
                "labels": {
                    **labels,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=kopts,
        )
        self.namespace = namespace.metadata.apply(lambda m: m["name"])
        # default-deny ingress, DNS + HTTPS egress; the server's port only from the jobs namespace (and any peers
        # the owner lists); kubectl port-forward reaches the pod through the kubelet, outside any policy
        jobs_ns = cluster.jobs_namespace_name
        server_from: list[dict[str, Any]] = [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": jobs_ns}}},
            *(dict(peer) for peer in cfg.server_ingress_from),
        ]
        self.network_policies = _network_policy.namespace_policies(
            f"{name}-netpol",
            self.namespace,
            pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[namespace])),
            extra_egress=list(cfg.extra_egress) if cfg.extra_egress is not None else None,
            ingress=[
                (
                    "allow-argo-server",
                    {"matchLabels": {"app.kubernetes.io/component": "server"}},
                    [{"from": server_from, "ports": [{"protocol": "TCP", "port": SERVER_PORT}]}],
                )
            ],
        )
        self.workflow_namespace = cluster.jobs_namespace
        self.workflow_service_account_name = cluster.jobs_service_account_name
        self.server_url = f"https://{RELEASE_NAME}-server.{ns_name}.svc:{SERVER_PORT}"

        # ------------------------------------------------------------ workflow RBAC (jobs namespace)
        # What Argo's emissary executor needs from the API (v3.4+): report step results; plus artifact GC.
        # Any: pulumi_kubernetes' TypedDict overloads do not take plain dicts holding Outputs
        executor_meta: Any = {
            "name": "argo-workflow-executor",
            "namespace": self.workflow_namespace,
            "labels": labels,
        }
        executor_rules: Any = [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtaskresults"],
                "verbs": ["create", "patch"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowartifactgctasks"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowartifactgctasks/status"],
                "verbs": ["patch"],
            },
        ]
        executor_role = k8s.rbac.v1.Role(
            f"{name}-executor", metadata=executor_meta, rules=executor_rules, opts=kopts
        )
        role_ref: Any = {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "argo-workflow-executor",
        }
        subjects: Any = [
            {
                "kind": "ServiceAccount",
                "name": self.workflow_service_account_name,
                "namespace": self.workflow_namespace,
            }
        ]
        binding_meta: Any = dict(executor_meta)
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-executor",
            metadata=binding_meta,
            role_ref=role_ref,
            subjects=subjects,
            opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[executor_role])),
        )

        # ------------------------------------------------------------ artifacts through IRSA
        server_sa_annotations: dict[str, Any] = {}
        artifact_repo: Any = {}
        if store is not None:
            if not cfg.store_granted_by_cluster:
                # the cluster did not grant this store to the jobs role: do it here (grant_write includes
                # read, so one policy; MLStack sees ``self.artifact_store`` and does not grant it again)
                store.grant_write(cluster.jobs_role)
            server_role = cluster.irsa_role(f"{name}-server", ns_name, SERVER_SERVICE_ACCOUNT)
            store.grant_read(server_role)  # the UI shows artifacts and logs; it never writes
            self.server_role = server_role
            server_sa_annotations = {"eks.amazonaws.com/role-arn": server_role.arn}
            artifact_repo = pulumi.Output.all(
                store.bucket_name,
                pulumi.Output.from_input(store.prefix),
                pulumi.Output.from_input(store.region if isinstance(store, S3Store) else cluster.region),
                pulumi.Output.from_input(store.kms_key_arn if isinstance(store, S3Store) else None),
            ).apply(lambda v: _s3_repository(*v, archive_logs=cfg.archive_logs))

        # ------------------------------------------------------------ the chart
        tolerations = [dict(t) for t in cluster.gpu_tolerations] if cfg.gpu_tolerations else []
        # Argo's own pods stay off GPU nodes: on mlstack's system group, or any Linux node of a foreign cluster
        system_nodes = (
            {ROLE_LABEL: "system"} if isinstance(cluster, EksGpuCluster) else {"kubernetes.io/os": "linux"}
        )
        # the Argo namespace enforces the "restricted" Pod Security Standard, which needs a seccomp profile
        restricted_pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        server: dict[str, Any] = {
            "image": {
                "registry": "quay.io",
                "repository": "argoproj/argocli",
                "tag": versions.ARGO_SERVER_TAG,
            },
            "podSecurityContext": restricted_pod,
            "authModes": [self.auth_mode],
            "secure": True,
            "serviceType": "ClusterIP",
            "nodeSelector": system_nodes,
            "serviceAccount": {
                "create": True,
                "name": SERVER_SERVICE_ACCOUNT,
                "annotations": server_sa_annotations,
            },
        }
        if cfg.sso is not None:
            sso = cfg.sso
            server["sso"] = {
                "enabled": True,
                "issuer": sso.issuer,
                "clientId": {"name": sso.client_secret_name, "key": "client-id"},
                "clientSecret": {"name": sso.client_secret_name, "key": "client-secret"},
                "redirectUrl": sso.redirect_url,
                "scopes": list(sso.scopes),
                "rbac": {"enabled": sso.rbac},
            }
        values: dict[str, Any] = {
            "fullnameOverride": RELEASE_NAME,
            # full CRDs are applied by a hook Job (kubectl, fetched from the chart's GitHub release via NAT)
            "crds": {
                "install": True,
                "keep": True,
                "upgradeJob": {
                    "nodeSelector": system_nodes,
                    "image": {
                        "repository": versions.KUBECTL_IMAGE_REPOSITORY,
                        "tag": versions.KUBECTL_TAG,
                    },
                    # the Job runs in the Argo namespace, which enforces "restricted"
                    "podSecurityContext": {**restricted_pod, "runAsUser": 65534, "runAsGroup": 65534},
                    "securityContext": job_security.executor_security_context(),
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                },
            },
            "singleNamespace": False,
            "images": {"pullPolicy": "IfNotPresent"},
            "workflow": {"serviceAccount": {"create": False}, "rbac": {"create": False}},
            "controller": {
                "image": {
                    "registry": "quay.io",
                    "repository": "argoproj/workflow-controller",
                    "tag": versions.ARGO_CONTROLLER_TAG,
                },
                "workflowNamespaces": [self.workflow_namespace],
                "serviceAccount": {"create": True, "name": CONTROLLER_SERVICE_ACCOUNT},
                "nodeSelector": system_nodes,
                "podSecurityContext": restricted_pod,
                "workflowDefaults": {
                    "spec": {
                        "serviceAccountName": self.workflow_service_account_name,
                        # every workflow's pods non-root (the jobs namespace enforces Pod Security
                        # "restricted"); mlstack-rendered templates carry the same, hand-written ones inherit it
                        "securityContext": job_security.pod_security_context(),
                        "ttlStrategy": {"secondsAfterCompletion": cfg.workflow_ttl_hours * 3600},
                        # keep failed pods for `mlstack doctor` and kubectl logs; successful ones go
                        "podGC": {"strategy": "OnPodSuccess"},
                        **({"tolerations": tolerations} if tolerations else {}),
                    }
                },
            },
            # Argo's init/wait containers in every workflow pod: restricted and read-only
            "executor": {
                "image": {
                    "registry": "quay.io",
                    "repository": "argoproj/argoexec",
                    "tag": versions.ARGO_EXECUTOR_TAG,
                },
                "securityContext": job_security.executor_security_context(),
            },
            "mainContainer": {
                # restricted-compliant defaults for main containers that set none (templates rendered by
                # mlstack set their own, read-only root filesystem and /tmp emptyDir included)
                "securityContext": {
                    k: v
                    for k, v in job_security.container_security_context().items()
                    if k != "readOnlyRootFilesystem"
                },
                "env": [
                    {
                        "name": "MLSTACK_MANIFEST",
                        "valueFrom": {"configMapKeyRef": {"name": MANIFEST_CONFIGMAP, "key": MANIFEST_KEY}},
                    }
                ],
            },
            "server": server,
            "useStaticCredentials": False,
        }
        if store is not None:
            values["artifactRepository"] = artifact_repo
        values = _deep_merge(values, cfg.extra_values)
        self.values = values
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=versions.ARGO_CHART,
            version=self.chart_version,
            repository_opts={"repo": versions.ARGO_CHART_REPO},
            namespace=self.namespace,
            values=values,
            create_namespace=False,
            atomic=True,
            cleanup_on_fail=True,
            max_history=10,
            timeout=900,
            opts=pulumi.ResourceOptions.merge(
                kopts, pulumi.ResourceOptions(depends_on=[namespace, binding, cluster.jobs_service_account])
            ),
        )

        self.manifest_section = pulumi.Output.all(self.workflow_namespace).apply(
            lambda v: _section(v[0], self.workflow_service_account_name, self.server_url)
        )
        self._published: k8s.core.v1.ConfigMap | None = None
        self.register_outputs(
            {
                "namespace": self.namespace,
                "workflow_namespace": self.workflow_namespace,
                "workflow_service_account_name": self.workflow_service_account_name,
                "server_url": self.server_url,
                "chart_version": self.chart_version,
                "manifest_section": self.manifest_section,
            }
        )

    def publish_manifest(self, manifest: pulumi.Input[Mapping[str, Any]]) -> k8s.core.v1.ConfigMap:
        """Write the whole stack manifest into the jobs namespace (ConfigMap ``mlstack-manifest``, key
        ``mlstack.json``); every workflow's main container receives it as ``MLSTACK_MANIFEST``.

        The manifest is validated first (a manifest holding a secret or a bad section is refused).
        """
        if self._published is not None:
            raise ValueError(f"ArgoWorkflows {self._name_prefix!r}: publish_manifest was already called")
        text = pulumi.Output.from_input(manifest).apply(
            lambda m: json.dumps(from_dict(m, source="ArgoWorkflows.publish_manifest").to_dict(), indent=2)
        )
        self._published = k8s.core.v1.ConfigMap(
            f"{self._name_prefix}-manifest",
            metadata={
                "name": MANIFEST_CONFIGMAP,
                "namespace": self.workflow_namespace,
                "labels": {"app.kubernetes.io/managed-by": "mlstack"},
            },
            data={MANIFEST_KEY: text},
            opts=pulumi.ResourceOptions(parent=self, provider=self.cluster.provider),
        )
        return self._published


def _s3_repository(
    bucket: str, prefix: str, region: str, kms_key_arn: str | None, *, archive_logs: bool
) -> dict[str, Any]:
    """The chart's ``artifactRepository`` value: S3 through the pod's IRSA role, under ``<prefix>/argo/``."""
    base = f"{prefix.strip('/')}/argo" if prefix and prefix.strip("/") else "argo"
    s3: dict[str, Any] = {
        "bucket": bucket,
        "endpoint": f"s3.{region}.amazonaws.com",
        "region": region,
        "insecure": False,
        "useSDKCreds": True,
        "keyFormat": base + "/{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}",
    }
    if kms_key_arn:
        # SSE-KMS with the store's key (a bucket policy may refuse any other encryption)
        s3["encryptionOptions"] = {"enableEncryption": True, "kmsKeyId": kms_key_arn}
    return {"archiveLogs": archive_logs, "s3": s3}


def _section(namespace: str, service_account: str, server_url: str) -> dict[str, Any]:
    return validate_section(
        "orchestrator",
        {
            "kind": "argo",
            "namespace": namespace,
            "service_account": service_account,
            "server_url": server_url,
            "configmap": MANIFEST_CONFIGMAP,
        },
    )

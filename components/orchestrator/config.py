"""ArgoWorkflows' args validated once into frozen config: a pure function, no Pulumi calls.

:func:`resolve_argo` reads the arguments exactly once, collects every problem (each naming the key, the value
and the fix) and either raises one :class:`InputPropertiesError` or returns an :class:`ArgoConfig` with every
default filled. The component builds only from it. The cluster and the artifact store are checked against the
Protocols in :mod:`components._contracts` (``JobsCluster``, ``ArtifactStore``), so a platform team's own
components fit; from another Pulumi language they arrive as resource references that the provider resolves to
the live components first (components/provider.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .. import _network_policy
from .._args import Problems, choice, is_whole
from .._contracts import ArtifactStore, JobsCluster, missing_members
from . import versions

if TYPE_CHECKING:
    from .argo import ArgoWorkflowsArgs, AuthMode

DEFAULT_NAMESPACE = "argo"
DEFAULT_SSO_SECRET = "argo-server-sso"
DEFAULT_WORKFLOW_TTL_HOURS = 168
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_URL = re.compile(r"^https://[^\s/]+(/[^\s]*)?$")
_CHART_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class SsoConfig:
    """The Argo server's single sign-on, defaults filled."""

    issuer: str
    redirect_url: str
    client_secret_name: str = DEFAULT_SSO_SECRET
    scopes: tuple[str, ...] = ("groups",)
    rbac: bool = True


@dataclass(frozen=True)
class ArgoConfig:
    """ArgoWorkflows' args, validated, every default filled."""

    cluster: JobsCluster
    artifact_store: ArtifactStore | None
    """The ``artifact_store`` arg, else the cluster's; None: Argo has no default artifact repository."""
    auth_mode: AuthMode
    sso: SsoConfig | None
    """Set exactly when ``auth_mode`` is ``sso``."""
    namespace: str
    chart_version: str
    workflow_ttl_hours: int
    gpu_tolerations: bool
    archive_logs: bool
    server_ingress_from: tuple[Mapping[str, Any], ...] = ()
    extra_egress: tuple[Mapping[str, Any], ...] | None = None
    extra_values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Deep-merged over mlstack's chart values (a read-only view of the caller's dict)."""

    @property
    def store_granted_by_cluster(self) -> bool:
        """The cluster already granted its jobs role this store (its own ``artifact_store`` arg)."""
        return self.artifact_store is not None and self.artifact_store is self.cluster.artifact_store


def _cluster(p: Problems, cluster: Any) -> JobsCluster | None:
    if isinstance(cluster, JobsCluster):
        return cluster
    if cluster is None:
        p.add("cluster", None, "required; an EksGpuCluster (or EksGpuCluster.from_existing(...))")
    else:
        p.add(
            "cluster",
            type(cluster).__name__,
            "an EksGpuCluster (or EksGpuCluster.from_existing(...)); this object lacks "
            + ", ".join(missing_members(cluster, JobsCluster)),
        )
    return None


def _store(p: Problems, store: Any, cluster: JobsCluster | None) -> ArtifactStore | None:
    if store is not None:
        if isinstance(store, ArtifactStore):
            return store
        p.add(
            "artifact_store",
            type(store).__name__,
            "an artifact store such as S3ArtifactStore; this object lacks "
            + ", ".join(missing_members(store, ArtifactStore)),
        )
        return None
    inherited = cluster.artifact_store if cluster is not None else None
    if inherited is None or isinstance(inherited, ArtifactStore):
        return inherited
    p.add(
        "artifact_store",
        None,
        f"the cluster's artifact_store ({type(inherited).__name__}) has no bucket_name/prefix for Argo's "
        "artifact repository; pass artifact_store= (e.g. an S3ArtifactStore)",
    )
    return None


def _sso(p: Problems, sso: Any, mode: Any) -> SsoConfig | None:
    from .argo import ArgoSsoArgs

    if mode != "sso":
        if sso is not None:
            p.add("sso", "...", "only used with auth_mode 'sso'; set auth_mode='sso' or drop sso")
        return None
    if not isinstance(sso, Mapping):
        p.add("sso", sso, "required with auth_mode 'sso' (issuer, redirect_url)")
        return None
    p.unknown_keys(sso, ArgoSsoArgs, prefix="sso.")
    for key in ("issuer", "redirect_url"):
        if not isinstance(sso.get(key), str) or not _URL.match(sso[key]):
            p.add(f"sso.{key}", sso.get(key), "required; an https:// URL")
    redirect = sso.get("redirect_url")
    if isinstance(redirect, str) and not redirect.endswith("/oauth2/callback"):
        p.add("sso.redirect_url", redirect, "must end with /oauth2/callback")
    secret = sso.get("client_secret_name", DEFAULT_SSO_SECRET)
    if not isinstance(secret, str) or not _DNS_LABEL.match(secret):
        p.add("sso.client_secret_name", secret, "a Secret name (DNS label)")
    scopes = sso.get("scopes", ["groups"])
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        p.add("sso.scopes", scopes, "a list of OIDC scope names, e.g. ['groups']")
        scopes = ["groups"]
    rbac = sso.get("rbac", True)
    if not isinstance(rbac, bool):
        p.add("sso.rbac", rbac, "True or False")
    return SsoConfig(sso.get("issuer", ""), redirect or "", secret, tuple(scopes), bool(rbac))


def _extra_values(p: Problems, extra: Any) -> Mapping[str, Any]:
    if not isinstance(extra, Mapping):
        p.add("extra_values", extra, "a dict of chart values")
        return MappingProxyType({})
    server = extra.get("server", {}) if isinstance(extra.get("server"), Mapping) else {}
    modes = server.get("authModes", []) or []
    if (
        "server" in modes
        or server.get("authMode") == "server"
        or any("auth-mode=server" in str(x) for x in server.get("extraArgs", []) or [])
    ):
        p.add("extra_values.server", "authModes: server", "auth mode 'server' is never allowed")
    if extra.get("useStaticCredentials"):
        p.add("extra_values.useStaticCredentials", True, "artifacts go through IRSA; no static keys")
    return MappingProxyType(dict(extra))


def resolve_argo(name: str, args: ArgoWorkflowsArgs | Mapping[str, Any] | None) -> ArgoConfig:
    """ArgoWorkflows' args as a frozen :class:`ArgoConfig`; every problem reported in one error."""
    from .argo import ArgoWorkflowsArgs, AuthMode

    a: Mapping[str, Any] = dict(args or {})
    p = Problems(f"ArgoWorkflows {name!r}")
    p.unknown_keys(a, ArgoWorkflowsArgs)
    cluster = _cluster(p, a.get("cluster"))
    store = _store(p, a.get("artifact_store"), cluster)
    mode_in = a.get("auth_mode", "client")
    why = "one of: " + ", ".join(m.value for m in AuthMode)
    if mode_in == "server":
        why += " ('server' mode lets anyone who reaches the UI act as the server's service account)"
    mode = choice(p, "auth_mode", mode_in, AuthMode, AuthMode.CLIENT, why)
    sso = _sso(p, a.get("sso"), mode_in)
    ns = a.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(ns, str) or not _DNS_LABEL.match(ns):
        p.add("namespace", ns, "a DNS label: lowercase letters, digits and '-'")
    elif cluster is not None and ns == cluster.jobs_namespace_name:
        p.add("namespace", ns, "keep Argo's controller apart from the jobs namespace")
    ver = a.get("chart_version", versions.ARGO_CHART_VERSION)
    if not isinstance(ver, str) or not _CHART_VERSION.match(ver):
        p.add("chart_version", ver, "an exact chart version such as 1.0.18 (ranges are not pinned)")
    ttl = a.get("workflow_ttl_hours", DEFAULT_WORKFLOW_TTL_HOURS)
    if not is_whole(ttl) or ttl < 1:
        p.add("workflow_ttl_hours", ttl, "a whole number of hours >= 1")
    flags = {"gpu_tolerations": True, "archive_logs": True}
    for key, default in flags.items():
        flags[key] = a.get(key, default)
        if not isinstance(flags[key], bool):
            p.add(key, a[key], "True or False")
    egress = a.get("extra_egress")
    _network_policy.check_egress_rules(p, "extra_egress", egress)
    peers = a.get("server_ingress_from")
    if peers is not None:
        _network_policy.check_egress_rules(
            p, "server_ingress_from", [{"to": peers}] if isinstance(peers, list) else peers
        )
    extra = _extra_values(p, a.get("extra_values", {}) or {})
    p.raise_if_any()
    assert cluster is not None  # a missing or wrong cluster is a problem above
    return ArgoConfig(
        cluster=cluster,
        artifact_store=store,
        auth_mode=mode,
        sso=sso,
        namespace=ns,
        chart_version=ver,
        workflow_ttl_hours=ttl,
        gpu_tolerations=flags["gpu_tolerations"],
        archive_logs=flags["archive_logs"],
        server_ingress_from=tuple(peers or ()),
        extra_egress=tuple(egress) if isinstance(egress, list) else None,
        extra_values=extra,
    )

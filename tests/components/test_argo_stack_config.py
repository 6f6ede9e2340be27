"""ArgoWorkflows' and MLStack's args, validated once into frozen config: the pure functions, called directly
with plain Python objects standing in for the components (no Pulumi run).

The other components are matched by Protocol (components/_contracts.py), so the stand-ins below only need the
members; what the components build from the config is covered by test_argo.py, test_mlstack.py, the provider's
cross-language test (test_provider.py) and the golden recordings (tests/stacks/test_golden_resources.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlstack.components import _contracts
from mlstack.components._args import InputPropertiesError
from mlstack.components.orchestrator import config as argo
from mlstack.components.orchestrator import versions
from mlstack.components.orchestrator.argo import AuthMode
from mlstack.components.stack_config import MLStackConfig, resolve_mlstack


class Section:
    manifest_section: Any = "section"


class Store(Section):
    bucket_name = "bucket"
    prefix = "ml"

    def grant_read(self, role: Any, name: str | None = None) -> Any: ...

    def grant_write(self, role: Any, name: str | None = None) -> Any: ...


class GrantOnly:
    """A grant target that is no artifact store (no bucket_name/prefix)."""

    def grant_read(self, role: Any, name: str | None = None) -> Any: ...

    def grant_write(self, role: Any, name: str | None = None) -> Any: ...


class Cluster(Section):
    provider = jobs_namespace = jobs_role = region = jobs_service_account = None
    jobs_namespace_name = "ml-jobs"
    jobs_service_account_name = "ml-job"
    gpu_tolerations: list[dict[str, str]] = []
    data_layer = None

    def __init__(self, store: Any = None) -> None:
        self.artifact_store = store

    def irsa_role(
        self, resource_name: str, namespace: Any, service_account: Any, tags: Any = None
    ) -> Any: ...


def problems_of(fn: Any, *args: Any, **kwargs: Any) -> dict[str, tuple[Any, str]]:
    with pytest.raises(InputPropertiesError) as err:
        fn(*args, **kwargs)
    return {path: (value, why) for path, value, why in err.value.problems}


# ------------------------------------------------------------------ ArgoWorkflows
def test_argo_defaults_are_filled_once() -> None:
    cluster = Cluster()
    cfg = argo.resolve_argo("argo", {"cluster": cluster})
    assert cfg.cluster is cluster and cfg.artifact_store is None and not cfg.store_granted_by_cluster
    assert (cfg.auth_mode, cfg.sso, cfg.namespace) == (AuthMode.CLIENT, None, "argo")
    assert (cfg.chart_version, cfg.workflow_ttl_hours) == (versions.ARGO_CHART_VERSION, 168)
    assert (cfg.gpu_tolerations, cfg.archive_logs) == (True, True)
    assert (cfg.server_ingress_from, cfg.extra_egress, dict(cfg.extra_values)) == ((), None, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.namespace = "x"  # type: ignore[misc]


def test_argo_takes_the_clusters_store_unless_given_one() -> None:
    own, theirs = Store(), Store()
    cfg = argo.resolve_argo("argo", {"cluster": Cluster(theirs)})
    assert cfg.artifact_store is theirs and cfg.store_granted_by_cluster
    cfg = argo.resolve_argo("argo", {"cluster": Cluster(theirs), "artifact_store": own})
    assert cfg.artifact_store is own and not cfg.store_granted_by_cluster
    # a cluster granted something that is no artifact store: Argo cannot build its repository from it
    got = problems_of(argo.resolve_argo, "argo", {"cluster": Cluster(GrantOnly())})
    assert got["artifact_store"][0] is None
    assert "the cluster's artifact_store (GrantOnly) has no bucket_name/prefix" in got["artifact_store"][1]


def test_argo_auth_mode_is_an_enum_that_accepts_plain_strings() -> None:
    sso = {"issuer": "https://idp.example.com", "redirect_url": "https://argo.example.com/oauth2/callback"}
    for mode in ("sso", AuthMode.SSO):
        cfg = argo.resolve_argo("argo", {"cluster": Cluster(), "auth_mode": mode, "sso": sso})
        assert cfg.auth_mode is AuthMode.SSO
        assert cfg.sso == argo.SsoConfig(
            sso["issuer"], sso["redirect_url"], "argo-server-sso", ("groups",), True
        )
    assert (
        argo.resolve_argo("argo", {"cluster": Cluster(), "auth_mode": "client"}).auth_mode is AuthMode.CLIENT
    )


def test_argo_reports_every_problem_at_once_naming_what_is_missing() -> None:
    got = problems_of(
        argo.resolve_argo,
        "argo",
        {
            "cluster": object(),
            "artifact_store": GrantOnly(),
            "auth_mode": "server",
            "sso": {"issuer": "x"},
            "namespace": "Argo",
            "chart_version": "^1.0",
            "workflow_ttl_hours": 0,
            "archive_logs": "yes",
            "extra_values": {"server": {"authModes": ["server"]}, "useStaticCredentials": True},
            "replicas": 2,
        },
    )
    assert set(got) == {
        "cluster",
        "artifact_store",
        "auth_mode",
        "sso",
        "namespace",
        "chart_version",
        "workflow_ttl_hours",
        "archive_logs",
        "extra_values.server",
        "extra_values.useStaticCredentials",
        "replicas",
    }
    value, why = got["cluster"]
    assert value == "object" and why.startswith("an EksGpuCluster (or EksGpuCluster.from_existing(...))")
    assert "lacks artifact_store, data_layer, gpu_tolerations, irsa_role, jobs_namespace," in why
    assert got["artifact_store"][1].endswith("lacks bucket_name, manifest_section, prefix")
    assert "'server' mode lets anyone who reaches the UI act as" in got["auth_mode"][1]
    assert got["sso"][1] == "only used with auth_mode 'sso'; set auth_mode='sso' or drop sso"
    assert got["workflow_ttl_hours"] == (0, "a whole number of hours >= 1")


def test_argo_refuses_a_missing_cluster_and_its_jobs_namespace() -> None:
    got = problems_of(argo.resolve_argo, "argo", {"namespace": "ml-jobs"})
    assert got == {"cluster": (None, "required; an EksGpuCluster (or EksGpuCluster.from_existing(...))")}
    got = problems_of(argo.resolve_argo, "argo", {"cluster": Cluster(), "namespace": "ml-jobs"})
    assert got == {"namespace": ("ml-jobs", "keep Argo's controller apart from the jobs namespace")}


def test_argo_sso_problems() -> None:
    got = problems_of(
        argo.resolve_argo,
        "argo",
        {
            "cluster": Cluster(),
            "auth_mode": "sso",
            "sso": {"issuer": "http://idp", "redirect_url": "https://a.example.com/cb", "rbac": "no"},
        },
    )
    assert got["sso.issuer"] == ("http://idp", "required; an https:// URL")
    assert got["sso.redirect_url"] == ("https://a.example.com/cb", "must end with /oauth2/callback")
    assert got["sso.rbac"] == ("no", "True or False")
    assert problems_of(argo.resolve_argo, "argo", {"cluster": Cluster(), "auth_mode": "sso"})["sso"] == (
        None,
        "required with auth_mode 'sso' (issuer, redirect_url)",
    )


# ------------------------------------------------------------------ MLStack
def layers(**over: Any) -> dict[str, Any]:
    return {"data": Section(), "compute": Cluster(), "orchestrator": Section(), "artifacts": Store(), **over}


def test_mlstack_defaults_are_filled_once() -> None:
    a = layers()
    cfg = resolve_mlstack("stack", a, project="proj", stack="dev")
    assert cfg == MLStackConfig(a["data"], a["compute"], a["orchestrator"], a["artifacts"], "proj", "dev")
    assert (cfg.grant, cfg.publish_configmap, cfg.export_manifest, cfg.data_credentials) == (True,) * 4
    cfg = resolve_mlstack("stack", {**a, "project": "p2", "stack": "s2"}, project="proj", stack="dev")
    assert (cfg.project, cfg.stack) == ("p2", "s2")


def test_mlstack_checks_the_layers_by_protocol() -> None:
    # without grants, any component with a manifest section fits each slot
    cfg = resolve_mlstack(
        "stack", layers(compute=Section(), artifacts=Section(), grant=False), project="p", stack="s"
    )
    assert not cfg.grant and isinstance(cfg.compute, _contracts.Layer)
    got = problems_of(
        resolve_mlstack, "stack", layers(compute=Section(), artifacts=Section()), project="p", stack="s"
    )
    assert got["compute"] == ("Section", "a compute component with a jobs_role to grant to (or grant=False)")
    assert got["artifacts"] == (
        "Section",
        "an artifact store with grant_write (S3ArtifactStore), or grant=False; this object lacks grant_read, "
        "grant_write",
    )


def test_mlstack_reports_every_problem_at_once() -> None:
    got = problems_of(
        resolve_mlstack,
        "stack",
        {"data": object(), "orchestrator": 3, "project": " ", "grant": "yes", "extra": 1},
        project="p",
        stack="s",
    )
    assert set(got) == {"data", "compute", "orchestrator", "artifacts", "project", "grant", "extra"}
    assert got["data"] == (
        "object",
        "a component with a manifest_section (an mlstack component); this object lacks manifest_section",
    )
    assert got["compute"] == (None, "required: the compute layer component")
    assert got["project"] == (" ", "a non-empty string")
    assert got["grant"] == ("yes", "True or False")


def test_missing_members_lists_what_a_protocol_needs() -> None:
    assert _contracts.missing_members(Store(), _contracts.S3Store) == ["kms_key_arn", "region"]
    assert _contracts.missing_members(Cluster(), _contracts.JobsCluster) == []
    assert isinstance(Cluster(), _contracts.JobsCluster) and not isinstance(Store(), _contracts.JobsCluster)

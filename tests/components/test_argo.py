"""ArgoWorkflows under the mock runtime: chart pin, auth modes, IRSA artifacts, RBAC, manifest delivery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.plan.mock_runtime import Recording, contains_secret

LOCAL_DATA = {"kind": "local", "path": "/data/warehouse.duckdb"}


def build(
    pulumi_run,
    argo_args: dict[str, Any] | None = None,
    *,
    store_on: str = "cluster",
    publish: bool = True,
    keep: dict[str, Any] | None = None,
) -> Recording:
    def program() -> None:
        import pulumi

        from mlstack.components import ArgoWorkflows, EksGpuCluster, S3ArtifactStore

        store = S3ArtifactStore("art", {}) if store_on != "none" else None
        cluster = EksGpuCluster("gpu", {"artifact_store": store} if store_on == "cluster" else {})
        args: dict[str, Any] = {"cluster": cluster, **(argo_args or {})}
        if store_on == "argo":
            args["artifact_store"] = store
        argo = ArgoWorkflows("argo", args)
        if publish:
            argo.publish_manifest(
                {
                    "version": 1,
                    "project": "demo",
                    "stack": "prod",
                    "artifacts": store.manifest_section if store else {"kind": "local", "root": "/a"},
                    "data": LOCAL_DATA,
                    "compute": cluster.manifest_section,
                    "orchestrator": argo.manifest_section,
                }
            )
        pulumi.export("orchestrator", argo.manifest_section)
        if keep is not None:
            keep.update(argo=argo, cluster=cluster, store=store)

    return pulumi_run(program)


@pytest.fixture(scope="module")
def rec() -> Recording:
    from mlstack.plan import mock_runtime

    return build(lambda program: mock_runtime.run(program, project="test", stack="test"))


def release(rec: Recording) -> dict[str, Any]:
    return rec.one("kubernetes:helm.sh/v3:Release").inputs


def test_chart_pinned_helm_v3_release(rec: Recording) -> None:
    from mlstack.components.orchestrator import versions

    r = release(rec)
    assert r["chart"] == "argo-workflows"
    assert r["version"] == versions.ARGO_CHART_VERSION
    assert r["repositoryOpts"]["repo"] == "https://argoproj.github.io/argo-helm"
    assert r["namespace"] == "argo"
    assert r["atomic"] is True
    assert r["values"]["crds"]["install"] is True and r["values"]["crds"]["keep"] is True
    provider = rec.one("pulumi:providers:kubernetes")
    rel = rec.one("kubernetes:helm.sh/v3:Release")
    assert rel.options["provider"].startswith(provider.urn)
    comp = rec.one("mlstack:index:ArgoWorkflows")
    assert rel.parent == comp.urn


def test_server_client_auth_https_cluster_ip(rec: Recording) -> None:
    server = release(rec)["values"]["server"]
    assert server["authModes"] == ["client"]
    assert server["secure"] is True
    assert server["serviceType"] == "ClusterIP"
    assert "sso" not in server


def test_argo_pods_meet_the_restricted_pod_security_standard(rec: Recording) -> None:
    ns = rec.one("kubernetes:core/v1:Namespace", "argo-namespace").inputs["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    values = release(rec)["values"]
    for part in ("controller", "server"):
        psc = values[part]["podSecurityContext"]
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"} and psc["runAsNonRoot"] is True
        assert values[part]["nodeSelector"] == {"mlstack.dev/node-role": "system"}


def test_sso_mode(pulumi_run) -> None:
    rec = build(
        pulumi_run,
        {
            "auth_mode": "sso",
            "sso": {
                "issuer": "https://login.example.com",
                "redirect_url": "https://argo.example.com/oauth2/callback",
            },
        },
    )
    server = release(rec)["values"]["server"]
    assert server["authModes"] == ["sso"]
    sso = server["sso"]
    assert sso["enabled"] is True and sso["issuer"] == "https://login.example.com"
    assert sso["clientSecret"] == {"name": "argo-server-sso", "key": "client-secret"}
    assert sso["rbac"] == {"enabled": True}
    assert not contains_secret(release(rec)["values"])  # only a reference to a Secret


def test_artifacts_through_irsa_no_static_keys(rec: Recording) -> None:
    values = release(rec)["values"]
    assert values["useStaticCredentials"] is False
    s3 = values["artifactRepository"]["s3"]
    assert s3["useSDKCreds"] is True
    assert not {"accessKeySecret", "secretKeySecret"} & set(s3)
    bucket = rec.one("aws:s3/bucket:Bucket", "art").state["bucket"]
    assert s3["bucket"] == bucket
    assert s3["keyFormat"].startswith("artifacts/argo/")
    assert s3["encryptionOptions"]["kmsKeyId"].startswith("arn:aws:kms:")
    assert values["artifactRepository"]["archiveLogs"] is True


def test_server_reads_artifacts_with_its_own_pinned_role(rec: Recording) -> None:
    role = rec.one("aws:iam/role:Role", "argo-server")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:argo:argo-server" in cond.values()
    assert "sts.amazonaws.com" in cond.values()
    sa = release(rec)["values"]["server"]["serviceAccount"]
    assert sa["name"] == "argo-server"
    assert sa["annotations"]["eks.amazonaws.com/role-arn"] == role.state["arn"]
    policies = [p for p in rec.by_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == "argo-server"]
    actions = {a for p in policies for s in json.loads(p.inputs["policy"])["Statement"] for a in s["Action"]}
    assert "s3:GetObject" in actions
    assert "s3:PutObject" not in actions and "s3:DeleteObject" not in actions
    assert len(policies) == 1


def test_store_on_the_cluster_is_granted_once(rec: Recording) -> None:
    jobs = [p for p in rec.by_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == "gpu-jobs"]
    assert len(jobs) == 1, [p.name for p in jobs]  # the cluster granted; Argo does not repeat it


def test_store_given_only_to_argo_is_granted_to_the_jobs_role(pulumi_run) -> None:
    rec = build(pulumi_run, store_on="argo")
    jobs = [p for p in rec.by_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == "gpu-jobs"]
    assert len(jobs) == 1, [p.name for p in jobs]  # grant_write includes read: one policy, not two
    actions = {a for p in jobs for s in json.loads(p.inputs["policy"])["Statement"] for a in s["Action"]}
    assert {"s3:GetObject", "s3:PutObject"} <= actions


def test_no_store_no_artifact_repository(pulumi_run) -> None:
    rec = build(pulumi_run, store_on="none")
    values = release(rec)["values"]
    assert "artifactRepository" not in values
    assert not [r for r in rec.by_type("aws:iam/role:Role") if r.name == "argo-server"]


def test_workflows_run_as_jobs_sa_with_least_privilege(rec: Recording) -> None:
    values = release(rec)["values"]
    assert values["controller"]["workflowNamespaces"] == ["ml-jobs"]
    assert values["workflow"] == {"serviceAccount": {"create": False}, "rbac": {"create": False}}
    spec = values["controller"]["workflowDefaults"]["spec"]
    assert spec["serviceAccountName"] == "mlstack-jobs"
    role = rec.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "argo-executor").inputs
    assert role["metadata"]["namespace"] == "ml-jobs"
    verbs = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert ("argoproj.io", "workflowtaskresults", "create") in verbs
    assert all(g == "argoproj.io" for g, _, _ in verbs)  # nothing on pods, secrets or core objects
    assert not any(v in ("*", "delete") for _, _, v in verbs)
    binding = rec.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "argo-executor").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlstack-jobs", "namespace": "ml-jobs"}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_gpu_tolerations_by_default(rec: Recording, pulumi_run) -> None:
    spec = release(rec)["values"]["controller"]["workflowDefaults"]["spec"]
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    off = build(pulumi_run, {"gpu_tolerations": False}, publish=False)
    assert "tolerations" not in release(off)["values"]["controller"]["workflowDefaults"]["spec"]


def test_every_main_container_gets_the_manifest(rec: Recording) -> None:
    env = release(rec)["values"]["mainContainer"]["env"]
    assert env == [
        {
            "name": "MLSTACK_MANIFEST",
            "valueFrom": {"configMapKeyRef": {"name": "mlstack-manifest", "key": "mlstack.json"}},
        }
    ]
    cm = rec.one("kubernetes:core/v1:ConfigMap").inputs
    assert cm["metadata"] == {
        "name": "mlstack-manifest",
        "namespace": "ml-jobs",
        "labels": {"app.kubernetes.io/managed-by": "mlstack"},
    }
    from mlstack.manifest import loads

    m = loads(cm["data"]["mlstack.json"])
    assert m.compute.kind == "kubernetes" and m.orchestrator.kind == "argo"
    assert m.orchestrator.configmap == "mlstack-manifest"
    assert m.artifacts.kind == "s3"


def test_manifest_section(rec: Recording) -> None:
    from mlstack.manifest import ArgoOrchestrator

    section = ArgoOrchestrator.model_validate(rec.stack_outputs["orchestrator"])
    assert section.namespace == "ml-jobs"
    assert section.service_account == "mlstack-jobs"
    assert section.configmap == "mlstack-manifest"
    assert section.server_url == "https://argo-workflows-server.argo.svc:2746"


def test_publish_manifest_refuses_a_secret(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import ArgoWorkflows, EksGpuCluster

        cluster = EksGpuCluster("gpu", {})
        argo = ArgoWorkflows("argo", {"cluster": cluster})
        argo.publish_manifest(
            {
                "version": 1,
                "project": "p",
                "stack": "s",
                "artifacts": {"kind": "local", "root": "/a"},
                "data": {**LOCAL_DATA, "password": "hunter2"},
                "compute": cluster.manifest_section,
                "orchestrator": argo.manifest_section,
            }
        )

    with pytest.raises(Exception, match="credentials never go in the manifest"):
        pulumi_run(program)


def test_publish_manifest_twice_is_an_error(pulumi_run) -> None:
    raised: list[str] = []

    def program() -> None:
        from mlstack.components import ArgoWorkflows, EksGpuCluster

        cluster = EksGpuCluster("gpu", {})
        argo = ArgoWorkflows("argo", {"cluster": cluster})
        manifest = {
            "version": 1,
            "project": "p",
            "stack": "s",
            "artifacts": {"kind": "local", "root": "/a"},
            "data": LOCAL_DATA,
            "compute": cluster.manifest_section,
            "orchestrator": argo.manifest_section,
        }
        argo.publish_manifest(manifest)
        with pytest.raises(ValueError, match="already called") as info:
            argo.publish_manifest(manifest)
        raised.append(str(info.value))

    rec = pulumi_run(program)
    assert raised and len(rec.by_type("kubernetes:core/v1:ConfigMap")) == 1


def test_extra_values_merge(pulumi_run) -> None:
    rec = build(
        pulumi_run,
        {"extra_values": {"controller": {"parallelism": 8}, "server": {"replicas": 2}}},
        publish=False,
    )
    values = release(rec)["values"]
    assert values["controller"]["parallelism"] == 8.0
    assert values["controller"]["workflowNamespaces"] == ["ml-jobs"]  # merged, not replaced
    assert values["server"]["replicas"] == 2.0 and values["server"]["authModes"] == ["client"]


def _problems(pulumi_run, args: dict[str, Any], **kw: Any) -> list[str]:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(Exception) as info:
        build(pulumi_run, args, publish=False, **kw)
    err: BaseException | None = info.value
    while err is not None and not isinstance(err, InputPropertiesError):
        err = err.__cause__
    assert isinstance(err, InputPropertiesError), repr(info.value)
    return [p for p, _, _ in err.problems]


@pytest.mark.parametrize(
    ("args", "paths"),
    [
        ({"auth_mode": "server"}, ["auth_mode"]),
        ({"auth_mode": "sso"}, ["sso"]),
        (
            {"auth_mode": "sso", "sso": {"issuer": "http://x", "redirect_url": "https://a/b"}},
            ["sso.issuer", "sso.redirect_url"],
        ),
        ({"sso": {"issuer": "https://x", "redirect_url": "https://a/oauth2/callback"}}, ["sso"]),
        ({"extra_values": {"server": {"authModes": ["server"]}}}, ["extra_values.server"]),
        ({"extra_values": {"server": {"extraArgs": ["--auth-mode=server"]}}}, ["extra_values.server"]),
        ({"extra_values": {"useStaticCredentials": True}}, ["extra_values.useStaticCredentials"]),
        ({"chart_version": "^1.0"}, ["chart_version"]),
        ({"namespace": "ml-jobs"}, ["namespace"]),
        ({"workflow_ttl_hours": 0, "bogus": 1}, ["workflow_ttl_hours", "bogus"]),
    ],
)
def test_refused(pulumi_run, args: dict[str, Any], paths: list[str]) -> None:
    got = _problems(pulumi_run, args)
    for p in paths:
        assert p in got, got


def test_cluster_is_required(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    def program() -> None:
        from mlstack.components import ArgoWorkflows

        ArgoWorkflows("argo", {})

    with pytest.raises(Exception) as info:
        pulumi_run(program)
    err: BaseException | None = info.value
    while err is not None and not isinstance(err, InputPropertiesError):
        err = err.__cause__
    assert err is not None and "cluster" in [p for p, _, _ in err.problems]  # type: ignore[attr-defined]

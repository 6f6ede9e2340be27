"""MLStack under the mock runtime: grants (read data, read+write artifacts, nothing more), the manifest
output (valid, secret-free), the manifest ConfigMap, and argument validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.plan.mock_runtime import contains_secret

ART = {"kind": "s3", "bucket": "art-bucket", "prefix": "ml", "region": "us-east-1"}
LAKE = {
    "kind": "lakehouse",
    "database": "ml",
    "workgroup": "ml",
    "location": "s3://art-bucket/lake",
    "region": "us-east-1",
}
K8S = {
    "kind": "kubernetes",
    "cluster_name": "gpu",
    "region": "us-east-1",
    "namespace": "ml-jobs",
    "service_account": "mlstack-jobs",
}
ARGO = {
    "kind": "argo",
    "namespace": "argo",
    "service_account": "argo-workflow",
    "configmap": "mlstack-manifest",
}


def _fakes(
    *,
    publish: bool = True,
    compute_grants: bool = False,
    data_section: dict | None = None,
    access: str | None = None,
) -> dict[str, Any]:
    """Small stand-in components with the attributes MLStack uses (duck-typed like the real ones)."""
    import pulumi
    import pulumi_aws as aws
    import pulumi_kubernetes as k8s

    class Layer(pulumi.ComponentResource):
        def __init__(self, kind: str, name: str, section: dict) -> None:
            super().__init__(f"test:fake:{kind}", name, None, None)
            self._n = name
            self.manifest_section = pulumi.Output.from_input(section)
            self.register_outputs({})

        def _grant(self, verb: str, role: Any, name: str | None) -> Any:
            return aws.iam.RolePolicy(
                name or f"{self._n}-{verb}",
                role=role.name,
                policy=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": f"{self._n}:{verb}",
                                "Resource": f"arn:aws:s3:::{self._n}",
                            }
                        ],
                    }
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        def grant_read(self, role: Any, name: str | None = None) -> Any:
            return self._grant("read", role, name)

        def grant_write(self, role: Any, name: str | None = None) -> Any:
            return self._grant("write", role, name)

    store = Layer("Store", "art", ART)
    data = Layer("Lake", "lake", data_section or LAKE)
    if access == "snowflake":

        def sf_access(private_key_path: str = "/x") -> dict[str, Any]:
            toml = f'[default]\nprivate_key_file = "{private_key_path}"\n'
            return {
                "connections_toml": pulumi.Output.secret(toml),
                "private_key_pem": pulumi.Output.secret("PEM"),
            }

        data.jobs_access = sf_access
    elif access == "databricks-no-secret":
        data.jobs_access = lambda profile=None: {"databrickscfg": None, "profile": "DEFAULT"}
    compute = Layer("Cluster", "gpu", K8S)
    compute.jobs_role = aws.iam.Role(
        "jobs", assume_role_policy="{}", opts=pulumi.ResourceOptions(parent=compute)
    )
    compute.provider = k8s.Provider("k8s", kubeconfig="{}", opts=pulumi.ResourceOptions(parent=compute))
    compute.jobs_namespace = pulumi.Output.from_input("ml-jobs")
    if compute_grants:
        compute.artifact_store, compute.data_layer = store, data
        store.grant_write(compute.jobs_role, "cluster-grant-art")
        data.grant_read(compute.jobs_role, "cluster-grant-lake")
    orch = Layer("Orchestrator", "argo", ARGO)
    if publish:

        def publish_manifest(manifest: Any) -> Any:
            return k8s.core.v1.ConfigMap(
                "argo-manifest",
                metadata={"name": "mlstack-manifest", "namespace": "ml-jobs"},
                data={"mlstack.json": pulumi.Output.from_input(manifest).apply(json.dumps)},
                opts=pulumi.ResourceOptions(parent=orch, provider=compute.provider),
            )

        orch.publish_manifest = publish_manifest
    return {"data": data, "compute": compute, "orchestrator": orch, "artifacts": store}


def _stack(**kw: Any):
    def program() -> None:
        from mlstack.components import MLStack

        layers = _fakes(**kw)
        MLStack("ml", layers)

    return program


def _policies(rec) -> dict[str, str]:
    return {
        r.name: json.loads(r.inputs["policy"])["Statement"][0]["Action"]
        for r in rec.by_type("aws:iam/rolePolicy:RolePolicy")
    }


def test_grants_read_data_and_readwrite_artifacts_only(pulumi_run) -> None:
    rec = pulumi_run(_stack(), project="p", stack="dev")
    assert _policies(rec) == {"ml-jobs-artifacts-rw": "art:write", "ml-jobs-data-read": "lake:read"}
    for r in rec.by_type("aws:iam/rolePolicy:RolePolicy"):
        assert r.inputs["role"] == "jobs"


def test_no_duplicate_grants_when_the_cluster_already_granted(pulumi_run) -> None:
    rec = pulumi_run(_stack(compute_grants=True), project="p", stack="dev")
    assert _policies(rec) == {"cluster-grant-art": "art:write", "cluster-grant-lake": "lake:read"}


def test_manifest_output_is_the_whole_valid_manifest_without_secrets(pulumi_run) -> None:
    from mlstack import manifest

    rec = pulumi_run(_stack(), project="p", stack="dev")
    m = rec.stack_outputs["manifest"]
    assert not contains_secret(m)
    assert m == manifest.from_dict(m).to_dict()
    assert (m["project"], m["stack"], m["version"]) == ("p", "dev", 1)
    assert m["artifacts"]["bucket"] == "art-bucket" and m["data"]["kind"] == "lakehouse"
    assert m["compute"]["namespace"] == "ml-jobs" and m["orchestrator"]["kind"] == "argo"
    comp = rec.one("mlstack:index:MLStack")
    assert comp.outputs["manifest"] == m


def test_no_duplicate_artifact_grant_when_the_orchestrator_granted(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import MLStack

        layers = _fakes()
        layers["orchestrator"].artifact_store = layers["artifacts"]
        layers["artifacts"].grant_write(layers["compute"].jobs_role, "argo-grant-art")
        MLStack("ml", layers)

    rec = pulumi_run(program, project="p", stack="dev")
    assert _policies(rec) == {"argo-grant-art": "art:write", "ml-jobs-data-read": "lake:read"}


def test_configmap_through_the_orchestrator(pulumi_run) -> None:
    rec = pulumi_run(_stack(), project="p", stack="dev")
    (cm,) = rec.by_type("kubernetes:core/v1:ConfigMap")
    assert cm.name == "argo-manifest"
    assert json.loads(cm.inputs["data"]["mlstack.json"]) == rec.stack_outputs["manifest"]


def test_configmap_fallback_in_the_jobs_namespace(pulumi_run) -> None:
    rec = pulumi_run(_stack(publish=False), project="p", stack="dev")
    cm = rec.one("kubernetes:core/v1:ConfigMap")
    assert cm.name == "ml-manifest" and cm.parent == rec.one("mlstack:index:MLStack").urn
    assert (
        cm.inputs["metadata"]["name"] == "mlstack-manifest"
        and cm.inputs["metadata"]["namespace"] == "ml-jobs"
    )
    assert json.loads(cm.inputs["data"]["mlstack.json"]) == rec.stack_outputs["manifest"]
    assert cm.options["provider"] and "k8s" in cm.options["provider"]


def test_warehouse_login_files_go_to_a_secret_in_the_jobs_namespace(pulumi_run) -> None:
    from mlstack.plan.mock_runtime import is_secret, unwrap_secrets

    rec = pulumi_run(_stack(access="snowflake"), project="p", stack="dev")
    sec = rec.one("kubernetes:core/v1:Secret")
    assert sec.inputs["metadata"] == {
        "name": "mlstack-data-credentials",
        "namespace": "ml-jobs",
        "labels": {"app.kubernetes.io/part-of": "mlstack"},
    }
    assert is_secret(sec.inputs["stringData"])  # the whole map is encrypted in the state
    data = unwrap_secrets(sec.inputs["stringData"])
    assert data == {
        "connections.toml": '[default]\nprivate_key_file = "/var/run/secrets/snowflake/rsa_key.p8"\n',
        "rsa_key.p8": "PEM",
    }
    mount = rec.one("mlstack:index:MLStack").outputs["data_credentials_mount"]
    assert mount == {
        "secret": "mlstack-data-credentials",
        "files": ["connections.toml", "rsa_key.p8"],
        "path": "/var/run/secrets/snowflake",
        "env": {"SNOWFLAKE_HOME": "/var/run/secrets/snowflake"},
        "default_mode": 0o400,  # the connector wants connections.toml and the key unreadable by others
    }
    assert not contains_secret(rec.stack_outputs["manifest"])


def test_the_credentials_mount_matches_what_pipelines_mount() -> None:
    """components/stack.py cannot import mlstack.pipeline.argo (it loads hera), so the names are duplicated."""
    pytest.importorskip("hera")
    from mlstack.components import stack
    from mlstack.pipeline import argo

    assert stack.CREDENTIALS_SECRET == argo.DATA_CREDENTIALS_SECRET
    assert stack.SNOWFLAKE_DIR == argo.SNOWFLAKE_DIR
    assert stack.DATABRICKS_DIR == argo.DATABRICKS_DIR
    assert stack.CREDENTIALS_MODE == argo.DATA_CREDENTIALS_MODE == 0o400


def test_no_secret_when_the_layer_has_no_credentials_to_hand_over(pulumi_run) -> None:
    for kw in ({"access": "databricks-no-secret"}, {}):
        rec = pulumi_run(_stack(**kw), project="p", stack="dev")
        assert not rec.by_type("kubernetes:core/v1:Secret")


def test_a_secret_in_a_section_fails_the_program(pulumi_run) -> None:
    from mlstack.errors import ManifestError

    bad = {**LAKE, "password": "hunter2"}
    with pytest.raises(ManifestError, match=r"data\.password") as info:
        pulumi_run(_stack(data_section=bad), project="p", stack="dev")
    assert "hunter2" not in str(info.value)


def test_missing_and_wrong_layers_are_reported_together(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    def program() -> None:
        from mlstack.components import MLStack

        layers = _fakes()
        MLStack("ml", {"data": layers["data"], "compute": "not-a-component", "grant": "yes"})  # type: ignore[typeddict-item]

    with pytest.raises(InputPropertiesError) as info:
        pulumi_run(program, project="p", stack="dev")
    paths = {p for p, _, _ in info.value.problems}
    assert paths == {"compute", "orchestrator", "artifacts", "grant"}


def test_args_fields_are_documented() -> None:
    import ast
    from pathlib import Path

    from mlstack.components import stack

    source = Path(stack.__file__).read_text()
    # CPython 3.11's shared AST recursion counter can fail a parse spuriously: mlstack._astutil retries
    from mlstack import _astutil

    tree = _astutil.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MLStackArgs")
    body = cls.body[1:]
    fields = [n for n in body if isinstance(n, ast.AnnAssign)]
    assert len(fields) >= 8
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign):
            doc = body[i + 1]
            name = node.target.id  # type: ignore[union-attr]
            assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), name
            assert "Default" in doc.value.value or "Required" in doc.value.value, name


@pytest.mark.parametrize("store_on", ["cluster", "argo", "stack"])
def test_real_components_one_policy_per_role_and_store(pulumi_run, store_on: str) -> None:
    """Whoever grants (the cluster, Argo or MLStack), the jobs role gets exactly one inline policy for the
    store (grant_write includes read), and Argo's server role exactly one read policy."""

    def program() -> None:
        from mlstack.components import ArgoWorkflows, EksGpuCluster, MLStack, S3ArtifactStore

        layers = _fakes(publish=False)
        store = S3ArtifactStore("art", {})
        cluster = EksGpuCluster("gpu", {"artifact_store": store} if store_on == "cluster" else {})
        argo_args: dict[str, Any] = {"cluster": cluster}
        if store_on == "argo":
            argo_args["artifact_store"] = store
        argo = ArgoWorkflows("argo", argo_args)
        MLStack(
            "ml",
            {
                "data": layers["data"],
                "compute": cluster,
                "orchestrator": argo,
                "artifacts": store,
                "grant": True,
            },
        )

    rec = pulumi_run(program, project="p", stack="dev")
    per_role: dict[str, list[str]] = {}
    for p in rec.by_type("aws:iam/rolePolicy:RolePolicy"):
        if p.name.startswith(("art-", "ml-jobs-artifacts")):  # the store's grants (default / MLStack names)
            per_role.setdefault(p.inputs["role"], []).append(p.name)
    assert len(per_role.get("gpu-jobs", [])) == 1, per_role
    if store_on != "stack":
        assert len(per_role.get("argo-server", [])) == 1, per_role

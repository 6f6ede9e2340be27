"""Every built-in Kubernetes object EksGpuCluster and ArgoWorkflows create, checked against the API schema.

The objects are taken from the mock runtime's recording (the inputs Pulumi would send), dumped to YAML and
validated with ``kubernetes-validate --strict`` for the pinned Kubernetes versions, so an unknown or misspelt
field fails here instead of at ``pulumi up``. The Argo chart values that become Kubernetes / Argo objects
(main-container defaults, workflow defaults, artifact repository) are checked the same way or against hera's
Argo models. Rendered objects are kept as golden files under tests/golden/k8s/ for review; regenerate them
with ``MLSTACK_UPDATE_GOLDEN=1 pytest tests/components/test_k8s_validate.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.plan.mock_runtime import Recording, unwrap_secrets

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "k8s"
KUBE_VERSIONS = ("1.32.0", "1.35.0")  # oldest and newest minor EksGpuCluster accepts
NOT_BUILT_IN = ("kubernetes:helm.sh/v3:Release", "pulumi:providers:kubernetes")


def _program() -> None:
    from mlstack.components import ArgoWorkflows, EksGpuCluster, S3ArtifactStore

    store = S3ArtifactStore("art", {})
    cluster = EksGpuCluster(
        "gpu",
        {
            "cluster_name": "golden",
            "artifact_store": store,
            "jobs_gpu_quota": 8,
            "gpu_node_groups": [
                {"name": "a10g", "instance_types": ["g5.xlarge"], "max_size": 4, "labels": {"team": "ml"}},
                {"name": "l40s", "instance_types": ["g6e.xlarge"], "ami_type": "BOTTLEROCKET_x86_64_NVIDIA"},
            ],
        },
    )
    argo = ArgoWorkflows("argo", {"cluster": cluster})
    argo.publish_manifest(
        {
            "version": 1,
            "project": "golden",
            "stack": "test",
            "artifacts": store.manifest_section,
            "data": {"kind": "local", "path": "/data/warehouse.duckdb"},
            "compute": cluster.manifest_section,
            "orchestrator": argo.manifest_section,
        }
    )


@pytest.fixture(scope="module")
def rec() -> Recording:
    from mlstack.plan import mock_runtime

    return mock_runtime.run(_program, project="golden", stack="test")


def _ints(value: Any) -> Any:
    """Wire format sends numbers as floats; the API server (and the schema) want integers back."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def to_object(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """``kubernetes:apps/v1:DaemonSet`` + recorded inputs -> the object the provider would apply."""
    _, group_version, kind = type_token.split(":")
    group, version = group_version.split("/")
    api_version = version if group == "core" else f"{group}/{version}"
    body = {k: v for k, v in _ints(unwrap_secrets(inputs)).items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": api_version, "kind": kind, **body}


def k8s_objects(rec: Recording) -> list[dict[str, Any]]:
    objs = [
        to_object(r.type, r.inputs)
        for r in rec.resources
        if r.type.startswith("kubernetes:") and r.type not in NOT_BUILT_IN
    ]
    return sorted(objs, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def test_objects_recorded(rec: Recording) -> None:
    kinds = {o["kind"] for o in k8s_objects(rec)}
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Deployment",
        "ConfigMap",
        "ResourceQuota",
    }


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_built_in_object_validates_strictly(rec: Recording, kube_version: str) -> None:
    import kubernetes_validate

    failures = []
    for obj in k8s_objects(rec):
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not failures, "\n".join(failures)


def test_the_validator_catches_a_misspelt_field(rec: Recording) -> None:
    """Guard against a validator that accepts anything (e.g. a schema silently not found)."""
    import kubernetes_validate

    ds = next(o for o in k8s_objects(rec) if o["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["tolerationz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, KUBE_VERSIONS[-1], strict=True)


def _values(rec: Recording) -> dict[str, Any]:
    return _ints(rec.one("kubernetes:helm.sh/v3:Release").inputs["values"])


def test_chart_values_that_become_pod_fields_validate(rec: Recording) -> None:
    """mainContainer defaults and workflow defaults end up in pods: validate them inside a Pod."""
    import kubernetes_validate

    values = _values(rec)
    spec = values["controller"]["workflowDefaults"]["spec"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "step", "namespace": "ml-jobs"},
        "spec": {
            "serviceAccountName": spec["serviceAccountName"],
            "tolerations": spec["tolerations"],
            "containers": [{"name": "main", "image": "python:3.12", **values["mainContainer"]}],
        },
    }
    kubernetes_validate.validate(pod, KUBE_VERSIONS[-1], strict=True)


def test_chart_values_that_become_argo_objects_match_argo_models(rec: Recording) -> None:
    """workflowDefaults is a WorkflowSpec and artifactRepository an ArtifactRepository (hera's Argo models);
    a round trip that drops a key means Argo would ignore it."""
    from hera.workflows.models import ArtifactRepository, WorkflowSpec

    values = _values(rec)
    spec = values["controller"]["workflowDefaults"]["spec"]
    parsed = WorkflowSpec.model_validate(spec).model_dump(by_alias=True, exclude_none=True)
    assert parsed == spec
    repo = values["artifactRepository"]
    parsed_repo = ArtifactRepository.model_validate(repo).model_dump(by_alias=True, exclude_none=True)
    assert parsed_repo == repo


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)


def test_golden_files(rec: Recording) -> None:
    rendered: dict[str, str] = {}
    for o in k8s_objects(rec):
        name = f"{o['kind'].lower()}-{o['metadata']['name']}.yaml"
        if name in rendered:  # same kind and name in another namespace (each namespace's NetworkPolicies)
            name = f"{o['kind'].lower()}-{o['metadata']['namespace']}-{o['metadata']['name']}.yaml"
        rendered[name] = _dump(o)
    rendered["argo-workflows-values.yaml"] = _dump(_values(rec))
    if os.environ.get("MLSTACK_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN.glob("*.yaml"):
            old.unlink()
        for name, text in rendered.items():
            (GOLDEN / name).write_text(text)
    existing = {p.name: p.read_text() for p in GOLDEN.glob("*.yaml")}
    assert sorted(existing) == sorted(rendered), (
        "golden files differ in names; rerun with MLSTACK_UPDATE_GOLDEN=1 and review the diff"
    )
    for name, text in rendered.items():
        assert existing[name] == text, f"{name} changed; rerun with MLSTACK_UPDATE_GOLDEN=1 and review"


def test_golden_files_are_valid_yaml_objects() -> None:
    """What reviewers read is what the validator checked (kubernetes-validate's file entry point)."""
    import kubernetes_validate

    files = sorted(GOLDEN.glob("*.yaml"))
    assert files
    for path in files:
        if path.name.startswith("argo-workflows-values"):
            continue
        doc = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)

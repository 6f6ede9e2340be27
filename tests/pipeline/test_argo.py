"""Argo rendering (hera models, golden files) and submit() against a fake Argo server on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("hera")

from hera.workflows import WorkflowTemplate
from hera.workflows.models import WorkflowTemplate as WorkflowTemplateModel

from mlstack import manifest
from mlstack.errors import BackendError, ConfigError, CredentialsError
from mlstack.pipeline import load
from mlstack.pipeline.argo import ArgoRunner, to_workflow_template

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "argo"

EKS_MANIFEST = {
    "version": 1,
    "project": "acme",
    "stack": "prod",
    "artifacts": {"kind": "s3", "bucket": "acme-ml-artifacts", "region": "us-east-1"},
    "data": {"kind": "local", "path": "/tmp/x.duckdb"},
    "compute": {
        "kind": "kubernetes",
        "cluster_name": "prod-gpu",
        "region": "us-east-1",
        "namespace": "ml-jobs",
        "service_account": "ml-jobs",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/ml:2026.11",
        "gpu": {
            "resource": "nvidia.com/gpu",
            "node_selector": {"mlstack.io/role": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
    "orchestrator": {
        "kind": "argo",
        "namespace": "ml-jobs",
        "service_account": "ml-jobs",
        "server_url": "https://argo-workflows-server.argo.svc:2746",
        "configmap": "mlstack-manifest",
    },
}


@pytest.fixture
def in_repo(local_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)  # the step command names the pipeline file relative to here
    return REPO


def _eks() -> manifest.Manifest:
    return manifest.from_dict(EKS_MANIFEST)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; create it with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.parametrize("example", ["churn", "gpu-finetune"])
@pytest.mark.parametrize("stack", ["local", "eks"])
def test_rendered_templates_match_golden_files_and_hera_models(in_repo, local_home, example, stack) -> None:
    pipe = load(REPO / "examples" / example)
    rendered = to_workflow_template(pipe, manifest=_eks() if stack == "eks" else manifest.local_default())
    text = rendered.to_yaml()
    _check_golden(f"{example}-{stack}.yaml", text)
    # hera's models (generated from Argo's OpenAPI) accept it, and it round-trips
    doc = yaml.safe_load(text)
    WorkflowTemplateModel.model_validate(doc) if hasattr(WorkflowTemplateModel, "model_validate") else (
        WorkflowTemplateModel.parse_obj(doc)
    )
    assert WorkflowTemplate.from_yaml(text).to_yaml() == text
    assert doc["kind"] == "WorkflowTemplate" and doc["spec"]["entrypoint"] == "main"


def _templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def test_gpu_step_requests_gpus_tolerates_the_taint_and_gets_the_manifest(in_repo, local_home) -> None:
    rendered = to_workflow_template(
        load(REPO / "examples" / "gpu-finetune"), manifest=manifest.local_default()
    )
    doc = yaml.safe_load(rendered.to_yaml())
    t = _templates(doc)
    ft = t["finetune"]
    assert ft["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in ft[
        "tolerations"
    ]
    env = {e["name"]: e for e in ft["container"]["env"]}
    assert env["MLSTACK_MANIFEST"]["valueFrom"]["configMapKeyRef"] == {
        "name": "mlstack-manifest",
        "key": "mlstack.json",
    }
    assert env["MLSTACK_RUN_ID"]["value"] == "{{workflow.name}}"
    assert ft["container"]["command"] == ["python", "-m", "mlstack.pipeline.entry"]
    assert ft["container"]["args"][:2] == ["examples/gpu-finetune/pipeline.py", "finetune"]
    # the CPU step stays off the GPU nodes
    assert "tolerations" not in t["report"] and "nvidia.com/gpu" not in json.dumps(t["report"])
    assert any("nvidia.com/gpu=true:NoSchedule" in n for n in rendered.notes)
    assert any("mlstack-manifest" in n for n in rendered.notes)


def test_manifest_compute_settings_drive_gpu_scheduling(in_repo, local_home) -> None:
    m = EKS_MANIFEST | {
        "compute": EKS_MANIFEST["compute"]
        | {"gpu": {"resource": "amd.com/gpu", "node_selector": {"pool": "mi300"}}}
    }
    rendered = to_workflow_template(load(REPO / "examples" / "gpu-finetune"), manifest=manifest.from_dict(m))
    doc = yaml.safe_load(rendered.to_yaml())
    ft = _templates(doc)["finetune"]
    assert ft["container"]["resources"]["requests"]["amd.com/gpu"] == "1"
    assert ft["nodeSelector"] == {"pool": "mi300"}
    assert doc["metadata"]["namespace"] == "ml-jobs" and doc["spec"]["serviceAccountName"] == "ml-jobs"
    assert ft["container"]["image"].endswith("acme/ml:2026.11")
    assert rendered.notes == []


def test_fanout_uses_withparam_and_the_join_gets_every_result(in_repo, local_home) -> None:
    doc = yaml.safe_load(to_workflow_template(load(REPO / "examples" / "churn"), manifest=_eks()).to_yaml())
    tasks = {t["name"]: t for t in _templates(doc)["main"]["dag"]["tasks"]}
    assert tasks["train"]["withParam"] == "{{workflow.parameters.C}}"
    assert tasks["train"]["dependencies"] == ["features"]
    args = {p["name"]: p["value"] for p in tasks["evaluate"]["arguments"]["parameters"]}
    assert args["train"] == "{{tasks.train.outputs.parameters.result}}"
    assert args["lineage-train"] == "{{tasks.train.outputs.parameters.inputs}}"
    params = {p["name"]: p["value"] for p in doc["spec"]["arguments"]["parameters"]}
    assert json.loads(params["C"]) == [0.05, 0.5, 5.0]


def test_params_override_the_defaults_in_the_template(in_repo, local_home) -> None:
    rendered = to_workflow_template(
        load(REPO / "examples" / "churn"), manifest=_eks(), params={"threshold": "0.9"}
    )
    params = {
        p["name"]: p["value"] for p in yaml.safe_load(rendered.to_yaml())["spec"]["arguments"]["parameters"]
    }
    assert params["threshold"] == "0.9"


def test_the_entry_in_argo_mode_reads_params_inputs_and_lineage(
    write_pipeline, tmp_path, monkeypatch
) -> None:
    from mlstack.pipeline import entry

    f = write_pipeline(
        """
import mlstack.run
pipeline = Pipeline("p", params={"n": 2, "xs": [1]})

@pipeline.step
def up():
    return 1

@pipeline.step(foreach="xs")
def down(up, n, xs):
    mlstack.run.record_input("table", "t2", "1")
    return {"sum": up + n + xs}
"""
    )
    out = tmp_path / "out"
    monkeypatch.delenv("MLSTACK_RUN_INPUTS", raising=False)
    lineage = json.dumps([json.dumps([{"type": "table", "name": "t1", "version": "3"}])])
    rc = entry.main(
        [
            str(f),
            "down",
            "--argo",
            "--out",
            str(out),
            "--param",
            "n=5",
            "--input",
            "up=1",
            "--item",
            "10",
            "--lineage",
            lineage,
        ]
    )
    assert rc == 0
    assert json.loads((out / "result.json").read_text()) == {"sum": 16}
    names = {(i["name"], i["version"]) for i in json.loads((out / "inputs.json").read_text())}
    assert names == {("t1", "3"), ("t2", "1")}


def test_the_entry_decodes_a_fanout_list_argo_aggregated_as_text(write_pipeline, tmp_path) -> None:
    from mlstack.pipeline import entry

    f = write_pipeline(
        """
pipeline = Pipeline("agg", params={"xs": [1, 2]})

@pipeline.step(foreach="xs")
def branch(xs):
    return {"x": xs}

@pipeline.step
def join(branch):
    return sum(b["x"] for b in branch)
"""
    )
    out = tmp_path / "out"
    aggregated = json.dumps([json.dumps({"x": 1}), {"x": 2}])
    assert entry.main([str(f), "join", "--argo", "--out", str(out), "--input", f"branch={aggregated}"]) == 0
    assert json.loads((out / "result.json").read_text()) == 3


# ---------------------------------------------------------------- against the fake Argo server
# (tests/support/argo.py: the fixture fake_argo)


def test_submit_creates_then_updates_the_template_and_submits_a_workflow(
    in_repo, local_home, fake_argo
) -> None:
    url, handler = fake_argo
    pipe = load(REPO / "examples" / "churn")
    runner = ArgoRunner(_eks(), server_url=url, token="s3cret")
    info = runner.submit(pipe, {"threshold": "0.8"})
    assert info["workflow"] == "churn-x7k2p" and info["namespace"] == "ml-jobs"
    methods = [(m, p) for m, p, _, _ in handler.requests]
    assert methods == [
        ("POST", "/api/v1/workflow-templates/ml-jobs"),
        ("POST", "/api/v1/workflows/ml-jobs/submit"),
    ]
    submitted = handler.requests[-1][2]
    assert submitted["resourceKind"] == "WorkflowTemplate" and submitted["resourceName"] == "churn"
    assert submitted["submitOptions"]["parameters"] == ["threshold=0.8"]
    assert handler.templates["ml-jobs/churn"]["spec"]["entrypoint"] == "main"
    # second time: the template exists, so it is updated in place
    runner.submit(pipe)
    assert [(m, p) for m, p, _, _ in handler.requests[2:]] == [
        ("POST", "/api/v1/workflow-templates/ml-jobs"),
        ("GET", "/api/v1/workflow-templates/ml-jobs/churn"),
        ("PUT", "/api/v1/workflow-templates/ml-jobs/churn"),
        ("POST", "/api/v1/workflows/ml-jobs/submit"),
    ]


def test_submit_errors_name_the_fix(in_repo, local_home, fake_argo, monkeypatch) -> None:
    url, _ = fake_argo
    pipe = load(REPO / "examples" / "churn")
    with pytest.raises(CredentialsError, match="HTTP 401") as e:
        ArgoRunner(_eks(), server_url=url, token="wrong").submit(pipe)
    assert "ARGO_TOKEN" in (e.value.fix or "")
    with pytest.raises(ConfigError, match="no container image"):
        ArgoRunner(manifest.local_default(), server_url=url, token="s3cret").submit(pipe)
    with pytest.raises(BackendError, match="cannot reach"):
        ArgoRunner(_eks(), server_url="http://127.0.0.1:9", token="x", timeout=5).submit(pipe)
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    no_url = EKS_MANIFEST | {"orchestrator": EKS_MANIFEST["orchestrator"] | {"server_url": None}}
    with pytest.raises(ConfigError, match="no Argo server URL"):
        ArgoRunner(manifest.from_dict({k: v for k, v in no_url.items()}), token="x").submit(pipe)


@pytest.mark.parametrize(
    ("data", "env"),
    [
        (
            {
                "kind": "snowflake",
                "account": "acme-prod",
                "warehouse": "ml",
                "database": "ml",
                "schema": "f",
                "role": "ml_reader",
                "user": "svc_ml",
            },
            {"SNOWFLAKE_HOME": "/var/run/secrets/snowflake"},
        ),
        (
            {
                "kind": "databricks",
                "host": "https://dbc-1.cloud.databricks.com",
                "warehouse_id": "abc123",
                "catalog": "ml",
                "schema": "f",
            },
            {"DATABRICKS_CONFIG_FILE": "/var/run/secrets/databricks/databrickscfg"},
        ),
    ],
)
def test_warehouse_steps_mount_the_login_files_secret(in_repo, local_home, data, env) -> None:
    """MLStack puts the warehouse login files in the Secret mlstack-data-credentials; every step mounts it
    read-only, mode 0400, and points the connector at it."""
    from mlstack.pipeline import argo

    m = manifest.from_dict(EKS_MANIFEST | {"data": data})
    rendered = to_workflow_template(load(REPO / "examples" / "churn"), manifest=m)
    doc = yaml.safe_load(rendered.to_yaml())
    WorkflowTemplateModel.model_validate(doc)
    (vol,) = [v for v in doc["spec"]["volumes"] if "secret" in v]
    assert vol["secret"] == {"secretName": "mlstack-data-credentials", "defaultMode": 0o400, "optional": True}
    path = (
        next(iter(env.values())).rsplit("/", 1)[0] if data["kind"] == "databricks" else env["SNOWFLAKE_HOME"]
    )
    for t in doc["spec"]["templates"]:
        if "container" not in t or t["name"] == argo.EXIT_TEMPLATE:  # it writes the run record only
            continue
        c = t["container"]
        assert {"name": vol["name"], "mountPath": path, "readOnly": True} in c["volumeMounts"], t["name"]
        names = {e["name"]: e.get("value") for e in c["env"]}
        assert all(names[k] == v for k, v in env.items()), t["name"]
        assert "securityContext" not in t, "non-root steps take the workflow's pod securityContext"
    # the non-root user reads the 0400 files through the pod's fsGroup (the kubelet makes them 0440)
    assert doc["spec"]["securityContext"]["fsGroup"] == argo.DATA_CREDENTIALS_FS_GROUP
    assert any("mlstack-data-credentials" in n for n in rendered.notes)


def test_no_credentials_mount_for_other_data_kinds(in_repo, local_home) -> None:
    doc = yaml.safe_load(to_workflow_template(load(REPO / "examples" / "churn"), manifest=_eks()).to_yaml())
    assert doc["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert "mlstack-data-credentials" not in json.dumps(doc)

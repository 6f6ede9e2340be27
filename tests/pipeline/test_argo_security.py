"""Rendered pipelines run non-root, read-only, with a named service account; checked by checkov too.

Every template the examples render (with the local default manifest, an EKS manifest, and no manifest at
all) is asserted field by field, validated as a Pod by ``kubernetes-validate --strict``, and scanned with
checkov's ``argo_workflows`` framework (from its own virtualenv, tests/support/checkov.py): 0 failed checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("hera")

from mlstack import manifest
from mlstack.cli.main import main
from mlstack.pipeline import load, security
from mlstack.pipeline.argo import to_workflow_template
from tests.pipeline.test_argo import EKS_MANIFEST
from tests.support import checkov

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("churn", "gpu-finetune")
MANIFESTS = ("none", "local", "eks")


def _manifest(kind: str) -> Any:
    if kind == "eks":
        return manifest.from_dict(EKS_MANIFEST)
    if kind == "local":
        return manifest.local_default()
    return None  # no MLSTACK_MANIFEST and no ./mlstack.json: the local default is resolved


def _render(example: str, kind: str) -> tuple[dict[str, Any], list[str]]:
    r = to_workflow_template(load(REPO / "examples" / example), manifest=_manifest(kind))
    return yaml.safe_load(r.to_yaml()), r.notes


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in doc["spec"]["templates"] if "container" in t]


@pytest.fixture
def in_repo(local_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLSTACK_MANIFEST", raising=False)
    monkeypatch.chdir(REPO)
    return REPO


@pytest.mark.parametrize("kind", MANIFESTS)
@pytest.mark.parametrize("example", EXAMPLES)
def test_every_pod_runs_non_root_read_only_with_a_writable_tmp(in_repo, example, kind) -> None:
    doc, _ = _render(example, kind)
    pod = doc["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == security.JOB_UID != 0 and pod["runAsGroup"] == security.JOB_GID != 0
    assert pod["fsGroup"] == security.JOB_GID
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "emptyDir": {}} in doc["spec"]["volumes"]
    assert _containers(doc), "no container templates rendered"
    for t in _containers(doc):
        assert "securityContext" not in t, f"{t['name']} overrides the workflow's pod securityContext"
        c = t["container"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, t["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, t["name"]
        assert sc["readOnlyRootFilesystem"] is True, t["name"]
        assert sc["runAsNonRoot"] is True, t["name"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], t["name"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["HOME"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
        # the step writes its results under the writable mount, nowhere else
        outputs = (t.get("outputs") or {}).get("parameters") or []  # the exit handler has none
        assert all(str(p["valueFrom"]["path"]).startswith("/tmp/") for p in outputs)


@pytest.mark.parametrize("kind", MANIFESTS)
def test_every_template_names_its_service_account(in_repo, kind) -> None:
    doc, notes = _render("churn", kind)
    sa = doc["spec"]["serviceAccountName"]
    if kind == "eks":
        assert sa == EKS_MANIFEST["orchestrator"]["service_account"]
        assert not any("service account" in n for n in notes)
    else:  # the manifest names none: EksGpuCluster's default, said in a note; never the namespace default
        assert sa == security.DEFAULT_SERVICE_ACCOUNT == "mlstack-jobs"
        assert any("no service account in the manifest: 'mlstack-jobs'" in n for n in notes)
    assert sa != "default"


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_step_is_a_valid_restricted_pod(in_repo, example) -> None:
    """Each template, assembled into the Pod Argo would create, passes ``kubernetes-validate --strict``."""
    import kubernetes_validate

    doc, _ = _render(example, "eks")
    for t in _containers(doc):
        c = {k: v for k, v in t["container"].items()}
        c["name"] = "main"
        c["args"] = [str(a) for a in c.get("args", [])]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": t["name"], "namespace": doc["metadata"]["namespace"]},
            "spec": {
                "serviceAccountName": doc["spec"]["serviceAccountName"],
                "securityContext": t.get("securityContext", doc["spec"]["securityContext"]),
                "volumes": doc["spec"]["volumes"],
                "containers": [c],
            },
        }
        kubernetes_validate.validate(pod, "1.35.0", strict=True)


ROOT_PIPELINE = """
pipeline = Pipeline("rooty")

@pipeline.step(run_as_root=True)
def install():
    return 1

@pipeline.step
def train(install):
    return install + 1
"""


def test_run_as_root_opts_one_step_out_and_render_says_so(local_home, write_pipeline, capsys) -> None:
    f = write_pipeline(ROOT_PIPELINE)
    assert main(["render", str(f), "--argo"]) == 0
    out, err = capsys.readouterr()
    doc = yaml.safe_load(out)
    by_name = {t["name"]: t for t in _containers(doc)}
    root, plain = by_name["install"], by_name["train"]
    # the workflow default stays non-root; only the opted-out step's template overrides it
    assert doc["spec"]["securityContext"]["runAsNonRoot"] is True
    assert root["securityContext"]["runAsUser"] == 0 and root["securityContext"]["runAsNonRoot"] is False
    assert root["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert root["container"]["securityContext"]["readOnlyRootFilesystem"] is False
    assert root["container"]["securityContext"]["allowPrivilegeEscalation"] is False
    assert "securityContext" not in plain and plain["container"]["securityContext"]["runAsNonRoot"] is True
    assert "note: step 'install' runs as root (run_as_root=True)" in err
    assert "'train'" not in err


def test_run_as_root_must_be_a_bool() -> None:
    from mlstack.errors import UsageError
    from mlstack.pipeline import step

    with pytest.raises(UsageError, match="run_as_root='yes'"):
        step(run_as_root="yes")(lambda: None)


def test_security_helpers_agree_with_runs_as_root() -> None:
    assert not security.runs_as_root(security.pod_security_context(), security.container_security_context())
    assert security.runs_as_root(security.pod_security_context(run_as_root=True))
    assert security.runs_as_root({}) and security.runs_as_root({"runAsNonRoot": True, "runAsUser": 0})
    assert security.runs_as_root({"runAsNonRoot": True}, {"runAsNonRoot": False})


@pytest.mark.slow
def test_checkov_argo_workflows_passes_every_rendered_template(in_repo, tmp_path) -> None:
    """checkov's argo_workflows framework (CKV_ARGO_1 service account, CKV_ARGO_2 non-root): 0 failed."""
    out = tmp_path / "rendered"
    out.mkdir()
    for example in EXAMPLES:
        for kind in MANIFESTS:
            doc, _ = _render(example, kind)
            (out / f"{example}-{kind}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    reports = checkov.scan(out, "argo_workflows")
    failed = checkov.failed_checks(reports)
    assert not failed, json.dumps(
        [(c["check_id"], c.get("file_path"), c.get("resource")) for c in failed], indent=1
    )
    passed = checkov.passed_checks(reports)
    ids = {c["check_id"] for c in passed}
    files = {Path(c["file_path"]).name for c in passed}
    assert ids == {"CKV_ARGO_1", "CKV_ARGO_2"}, ids
    assert len(files) == len(EXAMPLES) * len(MANIFESTS), files  # every file was scanned, none skipped


@pytest.mark.parametrize("kind", MANIFESTS)
def test_cron_workflow_runs_non_root_with_the_templates_service_account(in_repo, kind) -> None:
    from mlstack.pipeline.argo import to_cron_workflow

    pipe = load(REPO / "examples" / "churn")
    cron = yaml.safe_load(to_cron_workflow(pipe, manifest=_manifest(kind)).to_yaml())
    template, _ = _render("churn", kind)
    ws = cron["spec"]["workflowSpec"]
    assert ws["securityContext"] == template["spec"]["securityContext"]
    assert ws["securityContext"]["runAsNonRoot"] is True
    assert ws["serviceAccountName"] == template["spec"]["serviceAccountName"] != "default"

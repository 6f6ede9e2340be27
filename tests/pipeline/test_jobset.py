"""Multi-node steps on Argo: a resource template that creates a JobSet and waits for it (issue #14).

The rendered JobSet is validated against JobSet v0.12.0's pinned CRD (tests/support/crds.py: schema strict on
unknown fields, defaults, CEL rules) after Argo's substitutions, its Job and pod against
``kubernetes-validate --strict``; the WorkflowTemplate against hera's models and a golden file. Then the pods
are *run*: each rank's environment is resolved the way the kubelet would (field refs, ``$(VAR)``), the
arguments the way Argo would (``sprig.b64enc``), and the step entry runs per rank and the downstream step
reads rank 0's result from the run store.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("hera")

from hera.workflows.models import WorkflowTemplate as WorkflowTemplateModel

from mlstack import manifest
from mlstack.pipeline import jobset, load, security
from mlstack.pipeline.argo import to_workflow_template
from tests.pipeline.test_argo import EKS_MANIFEST, _check_golden
from tests.support import crds

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "gpu-finetune" / "multinode.py"
WORKFLOW = "gpu-finetune-multinode-x7k2p"
KUBE = "1.35.0"


@pytest.fixture
def in_repo(local_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


def _render(pipe: Any, mf: Any = None) -> dict[str, Any]:
    r = to_workflow_template(pipe, manifest=mf or manifest.from_dict(EKS_MANIFEST))
    return yaml.safe_load(r.to_yaml())


def _template(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def argo_substitute(text: str, values: dict[str, str]) -> str:
    """What Argo does to the manifest: simple tags by name, ``sprig.b64enc(x['k'])`` expressions encoded."""

    def expr(m: re.Match[str]) -> str:
        var = f"{m.group(1)}.{m.group(2)}"
        return base64.b64encode(values[var].encode()).decode()

    text = re.sub(r"\{\{=sprig\.b64enc\(([\w.]+)\['([\w-]+)'\]\)\}\}", expr, text)
    return re.sub(r"\{\{([\w.-]+)\}\}", lambda m: values[m.group(1)], text)


def _created(doc: dict[str, Any], values: dict[str, str], name: str = "train") -> dict[str, Any]:
    """The JobSet as the API server receives it: Argo's substitutions done, generateName resolved."""
    t = _template(doc, name)
    obj = json.loads(argo_substitute(t["resource"]["manifest"], values))
    obj["metadata"]["name"] = obj["metadata"].pop("generateName") + "abcde"
    return obj


VALUES = {
    "workflow.name": WORKFLOW,
    "workflow.namespace": "ml-jobs",
    "workflow.creationTimestamp": "2026-11-30T18:00:00Z",
    "workflow.parameters.epochs": "5",
    "workflow.parameters.lr": "0.01",
    "workflow.parameters.seed": "0",
    "workflow.parameters.samples": "4096",
    "workflow.parameters.mlstack-resume": "",
    "workflow.parameters.mlstack-no-cache": "false",
}


def test_multi_node_step_renders_a_resource_template_that_waits_for_the_jobset(in_repo) -> None:
    doc = _render(load(EXAMPLE))
    t = _template(doc, "train")
    assert "container" not in t
    res = t["resource"]
    assert res["action"] == "create" and res["setOwnerReference"] is True
    assert res["successCondition"] == "status.terminalState == Completed"
    assert res["failureCondition"] == "status.terminalState == Failed"
    # the downstream step reads the result from the run store: no reference to pod outputs of `train`
    report = _template(doc, "report")
    assert report["container"]["args"][-2:] == ["--from-run", "train"]
    assert "tasks.train.outputs" not in json.dumps(doc)
    # hera's models (Argo's OpenAPI) accept the WorkflowTemplate, and it is the reviewed golden file
    WorkflowTemplateModel.model_validate(doc)
    _check_golden(
        "gpu-finetune-multinode-eks.yaml",
        to_workflow_template(load(EXAMPLE), manifest=manifest.from_dict(EKS_MANIFEST)).to_yaml(),
    )


def test_jobset_is_valid_against_the_pinned_crd_and_carries_the_rendezvous_contract(in_repo) -> None:
    doc = _render(load(EXAMPLE))
    js = _created(doc, VALUES)
    crds.assert_valid(js)
    spec = js["spec"]
    assert spec["network"]["enableDNSHostnames"] is True  # the headless service gives each pod a name
    assert "subdomain" not in spec["network"]  # default: the JobSet's name, which MASTER_ADDR relies on
    assert spec["successPolicy"] == {"operator": "All"} and spec["failurePolicy"] == {"maxRestarts": 1}
    (rj,) = spec["replicatedJobs"]
    job = rj["template"]["spec"]
    assert rj["replicas"] == 1 and job["parallelism"] == job["completions"] == 2
    assert job["completionMode"] == "Indexed" and job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] == 3600
    pod = job["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MASTER_ADDR"]["value"] == "$(JOBSET_NAME)-node-0-0.$(JOBSET_NAME)"
    assert env["MASTER_PORT"]["value"] == "29500" and env["WORLD_SIZE"]["value"] == "2"
    assert env["LOCAL_WORLD_SIZE"]["value"] == "1" and env["MLSTACK_NODES"]["value"] == "2"
    for rank_var in ("RANK", "NODE_RANK", "MLSTACK_NODE_RANK"):
        assert env[rank_var]["valueFrom"]["fieldRef"]["fieldPath"] == jobset.COMPLETION_INDEX
    names = [e["name"] for e in c["env"]]
    assert names.index("JOBSET_NAME") < names.index("MASTER_ADDR")  # $(VAR) only sees earlier entries
    assert "MLSTACK_RUN_PARAMS" not in env  # JSON pasted raw would break the manifest
    # the GPU pool: per-node GPUs, its toleration and node selector (from the manifest)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"] == EKS_MANIFEST["compute"]["gpu"]["tolerations"]
    assert pod["nodeSelector"] == {"mlstack.io/role": "gpu"}
    # the hardened settings every pipeline pod has, and the jobs service account
    assert pod["serviceAccountName"] == "ml-jobs"
    assert pod["securityContext"] == security.pod_security_context()
    assert c["securityContext"] == security.container_security_context()
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert js["metadata"]["labels"]["workflows.argoproj.io/workflow"] == WORKFLOW


def test_the_validator_rejects_a_broken_jobset(in_repo) -> None:
    """Guard: the pinned schema is really applied (an unknown field and a bad completion mode fail)."""
    js = _created(_render(load(EXAMPLE)), VALUES)
    bad = json.loads(json.dumps(js))
    bad["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containerz"] = []
    assert any("containerz" in p for p in crds.validate(bad))
    bad = json.loads(json.dumps(js))
    bad["spec"]["replicatedJobs"][0]["replicaz"] = 1
    assert crds.validate(bad)


@pytest.mark.parametrize("kube_version", ["1.32.0", KUBE])
def test_jobs_pods_and_rbac_validate_strictly(in_repo, kube_version) -> None:
    import kubernetes_validate

    js = _created(_render(load(EXAMPLE)), VALUES)
    rj = js["spec"]["replicatedJobs"][0]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{js['metadata']['name']}-node-0", "namespace": "ml-jobs"},
        "spec": rj["template"]["spec"],
    }
    kubernetes_validate.validate(job, kube_version, strict=True)
    kubernetes_validate.validate(jobset.role("ml-jobs"), kube_version, strict=True)
    kubernetes_validate.validate(jobset.role_binding("ml-jobs", "ml-jobs"), kube_version, strict=True)
    job["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, kube_version, strict=True)


def test_rbac_lets_the_workflow_create_and_follow_jobsets_only() -> None:
    (rule,) = jobset.rbac_rules()
    assert rule == {
        "apiGroups": ["jobset.x-k8s.io"],
        "resources": ["jobsets"],
        "verbs": ["create", "get", "list", "watch"],
    }
    binding = jobset.role_binding("ml-jobs", "ml-jobs")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ml-jobs", "namespace": "ml-jobs"}]


@pytest.mark.parametrize("nodes", [2, 9, 10, 128])
def test_generated_names_keep_every_pod_hostname_a_dns_label(nodes) -> None:
    prefix = jobset.name_prefix("a-very-long-pipeline-name-for-fine-tuning-llms-train_the_model" * 2, nodes)
    name = prefix + "abcde"
    host = f"{name}-node-0-{nodes - 1}"
    assert len(host) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", host), host
    assert jobset.name_prefix("train", 2) == "train-"
    assert jobset.name_prefix("9lives", 2).startswith("s-9lives")


PIPE = """
import json, os

pipeline = Pipeline("mn", params={"cfg": {"lr": 0.1, "note": "it's \\"quoted\\"\\nand multi-line"}})

@pipeline.step
def prep(cfg):
    return {"rows": 7, "cfg": cfg}

@pipeline.step(nodes=3, gpus=1, retries=2)
def train(prep, cfg):
    keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "NODE_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
            "TORCHELASTIC_RUN_ID")
    return {"env": {k: os.environ[k] for k in keys}, "prep": prep, "cfg": cfg}

@pipeline.step
def report(train, prep):
    return {"rank": train["env"]["RANK"], "rows": prep["rows"]}
"""


def _pod_env(
    container: dict[str, Any], *, pod: str, labels: dict[str, str], index: int, cm: str
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: field refs, the ConfigMap key, $(VAR)."""
    out: dict[str, str] = {}
    for e in container["env"]:
        if "value" in e:
            out[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), e["value"])
            continue
        src = e["valueFrom"]
        if "configMapKeyRef" in src:
            out[e["name"]] = cm
            continue
        path = src["fieldRef"]["fieldPath"]
        if path == "metadata.name":
            out[e["name"]] = pod
        elif path == jobset.COMPLETION_INDEX:
            out[e["name"]] = str(index)
        else:
            key = re.fullmatch(r"metadata\.labels\['(.+)'\]", path).group(1)  # type: ignore[union-attr]
            out[e["name"]] = labels[key]
    return out


def test_the_jobset_pods_run_the_step_and_the_next_step_gets_rank_zeros_result(
    local_home, write_pipeline, tmp_path
) -> None:
    """Each rank's pod, with the env and args Argo and the kubelet would give it, runs the entry; rank 0's
    result (a JSON with quotes and newlines, through base64) reaches the downstream step via the run store."""
    f = write_pipeline(PIPE)
    os.chdir(f.parent)
    mf = manifest.local_default()
    mf_text = mf.to_json() if hasattr(mf, "to_json") else json.dumps(mf.to_dict())
    doc = _render(load(f), mf)
    cfg = {"lr": 0.1, "note": 'it\'s "quoted"\nand multi-line'}
    prep_out = {"rows": 7, "cfg": cfg}
    values = {
        **VALUES,
        "workflow.name": "mn-abcde",
        "workflow.parameters.cfg": json.dumps(cfg),
        "inputs.parameters.prep": json.dumps(prep_out),
        "inputs.parameters.lineage-prep": "[]",
    }
    js = _created(doc, values)
    crds.assert_valid(js)
    pod_t = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    (c,) = pod_t["containers"]
    labels = {jobset.NAME_LABEL: js["metadata"]["name"]}
    env_base = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    env_base["MLSTACK_HOME"] = str(local_home)
    procs = []
    for rank in range(3):
        pod_name = f"{js['metadata']['name']}-node-0-{rank}-q9z8w"
        env = {**env_base, **_pod_env(c, pod=pod_name, labels=labels, index=rank, cm=mf_text)}
        env["HOME"] = str(tmp_path)
        out = tmp_path / f"out{rank}"
        args = [a.replace("/tmp/mlstack", str(out)) for a in c["args"]]
        procs.append(
            subprocess.run(
                [sys.executable, *c["command"][1:], *args],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        )
    for p in procs:
        assert p.returncode == 0, p.stderr[-2000:]
    name = js["metadata"]["name"]
    rank0 = json.loads((tmp_path / "out0" / "result.json").read_text())
    assert rank0["env"] == {
        "MASTER_ADDR": f"{name}-node-0-0.{name}",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "3",
        "RANK": "0",
        "NODE_RANK": "0",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "TORCHELASTIC_RUN_ID": name,
    }
    assert rank0["cfg"] == cfg and rank0["prep"] == prep_out
    assert not (tmp_path / "out1" / "result.json").exists()  # only rank 0 writes the step's outputs
    # the downstream step, as its Argo template says: --from-run train
    report = _template(doc, "report")["container"]
    args = [argo_substitute(a, values).replace("/tmp/mlstack", str(tmp_path / "rep")) for a in report["args"]]
    assert "--from-run" in args
    env = {**env_base, "MLSTACK_MANIFEST": mf_text, "MLSTACK_RUN_ID": "mn-abcde", "HOME": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-m", "mlstack.pipeline.entry", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads((tmp_path / "rep" / "result.json").read_text()) == {"rank": "0", "rows": 7}


def test_from_run_without_a_record_fails_naming_the_step(
    local_home, write_pipeline, tmp_path, capsys, monkeypatch
) -> None:
    from mlstack.pipeline import entry

    f = write_pipeline(PIPE)
    monkeypatch.setenv("MLSTACK_RUN_ID", "mn-none")
    rc = entry.main(
        [
            str(f),
            "report",
            "--argo",
            "--out",
            str(tmp_path / "o"),
            "--from-run",
            "train",
            "--input",
            'prep={"rows": 1}',
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "multi-node step 'train' left no successful record in run 'mn-none'" in err and "fix:" in err


@pytest.mark.slow
def test_the_multinode_example_trains_data_parallel_locally(local_home, monkeypatch) -> None:
    """examples/gpu-finetune/multinode.py end to end on the local runner: two workers, real DDP (gloo), the
    replicas agree, rank 0's model is an artifact and ``report`` reads rank 0's result."""
    from tests.support import torchenv

    python = torchenv.torch_python()
    if python is None:
        if torchenv.in_ci():
            pytest.fail("no Python with torch under CI (tests/support/torchenv.py)")
        pytest.skip(f"no Python with torch: set {torchenv.PYTHON_VAR} (tests/support/torchenv.py)")
    code = (
        "import json, sys; from mlstack.pipeline import load; from mlstack.pipeline.local import LocalRunner; "
        "r = LocalRunner().run(load(sys.argv[1]), {'epochs': 2, 'samples': 512}); "
        "print(json.dumps({'ok': r.ok, 'train': r.output('train') if r.ok else None, "
        "'report': r.output('report') if r.ok else None, 'tail': [s.log_tail for s in r.steps]}))"
    )
    proc = subprocess.run(
        [python, "-c", code, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ok"], got["tail"]
    train = got["train"]
    assert train["workers"] == 2 and train["replicas_agree"] is True and train["device"] == "cpu"
    assert train["version"] == 1 and train["loss"] < 5
    assert got["report"].startswith("model v1 trained by 2 workers on cpu (replicas in sync)")

"""Argo runs: step pods record themselves, the exit handler ends the run, resume in pods, following a workflow
through the Argo server API (a fake on loopback, tests/support/argo.py), and logs from the server or the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("hera")

import mlstack.run
import mlstack.runs as runs
from mlstack.pipeline import entry, load
from mlstack.pipeline.argo import EXIT_TEMPLATE, ArgoRunner, to_workflow_template
from tests.support.argo import pod_node, workflow

WF = """
import os
from pathlib import Path

pipeline = Pipeline("wf", params={"xs": [1, 2, 3], "k": 10}, image="ghcr.io/acme/ml:1")

@pipeline.step
def start(k):
    Path(os.environ["CALLS"], "start").open("a").write("x")
    print("start pod says hi")
    return {"k": k}

@pipeline.step(foreach="xs")
def branch(start, xs):
    Path(os.environ["CALLS"], f"branch{xs}").open("a").write("x")
    if os.environ.get("FAIL_XS") == str(xs):
        raise RuntimeError(f"branch {xs} broke")
    print(f"branch {xs} ok")
    return start["k"] * xs

@pipeline.step
def join(branch):
    return sum(branch)
"""


class Pods:
    """Runs steps the way Argo's pods run them: ``python -m mlstack.pipeline.entry SOURCE STEP --argo ...``,
    with the env the WorkflowTemplate gives every step."""

    def __init__(
        self, f: Path, wf: str, monkeypatch: pytest.MonkeyPatch, out: Path, resume: str = ""
    ) -> None:
        self.f, self.wf, self.mp, self.out, self.n = f, wf, monkeypatch, out, 0
        params = [
            {"name": "xs", "value": "[1, 2, 3]"},
            {"name": "k", "value": "10"},
            {"name": "mlstack-resume", "value": resume},
            {"name": "mlstack-no-cache", "value": "false"},
        ]
        self.env = {
            "MLSTACK_RUN_ID": wf,
            "MLSTACK_PIPELINE": "wf",
            "MLSTACK_RUN_PARAMS": json.dumps(params),
            "MLSTACK_RUN_STARTED": "2026-11-30T10:00:00Z",
            "MLSTACK_ARGO_WORKFLOW": wf,
            "MLSTACK_ARGO_NAMESPACE": "ml-jobs",
            "MLSTACK_RESUME": resume,
            "MLSTACK_NO_CACHE": "false",
            "MLSTACK_IMAGE": "ghcr.io/acme/ml:1",
        }

    def __call__(self, step: str, *args: str, env: dict[str, str] | None = None) -> int:
        self.n += 1
        mlstack.run._current = None  # a fresh process per pod
        for k, v in {
            **self.env,
            **(env or {}),
            "MLSTACK_STEP": step,
            "MLSTACK_POD": f"{self.wf}-{step}-{self.n}",
        }.items():
            self.mp.setenv(k, v)
        out = self.out / f"{self.wf}-{self.n}"
        return entry.main([str(self.f), step, "--argo", "--out", str(out), *args])

    def result(self) -> str:
        return (self.out / f"{self.wf}-{self.n}" / "result.json").read_text()

    def exit(self, status: str, failures: str = "null") -> int:
        mlstack.run._current = None
        self.mp.setenv("MLSTACK_WORKFLOW_STATUS", status)
        self.mp.setenv("MLSTACK_WORKFLOW_FAILURES", failures)
        return entry.main([str(self.f), "--argo-exit"])


def _calls(d: Path) -> dict[str, int]:
    return {p.name: len(p.read_text()) for p in d.iterdir()}


def test_step_pods_record_the_run_and_resume_reuses_results_in_pods(
    stack, pipeline_file, monkeypatch, tmp_path
) -> None:
    f = pipeline_file(WF)
    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv("CALLS", str(calls))
    pods = Pods(f, "wf-one", monkeypatch, tmp_path / "out")
    assert pods("start", "--param", "k=10") == 0
    start = pods.result()
    rc = [
        pods("branch", "--input", f"start={start}", "--item", str(x), env={"FAIL_XS": "2"}) for x in (1, 2, 3)
    ]
    assert rc == [0, 1, 0]
    assert (
        pods.exit("Failed", json.dumps([{"displayName": "branch(1:2)", "message": "Error (exit code 1)"}]))
        == 0
    )

    one = runs.get("wf-one")
    assert one.status == "failed" and one.orchestrator["kind"] == "argo"
    assert one.orchestrator["workflow"] == "wf-one" and one.orchestrator["namespace"] == "ml-jobs"
    assert one.params == {"xs": [1, 2, 3], "k": 10} and one.started == "2026-11-30T10:00:00.000Z"
    assert [(s.label, s.status) for s in one.steps.flat()] == [
        ("start", "succeeded"),
        ("branch[0]", "succeeded"),
        ("branch[1]", "failed"),
        ("branch[2]", "succeeded"),
        ("join", "skipped"),
    ]
    assert one.steps["branch[2]"].result == 30 and one.steps["start"].result == {"k": 10}
    assert "start pod says hi" in one.steps["start"].log()  # the pod's own output, captured at the fd level
    assert "branch 2 broke" in one.steps["branch[1]"].doc["log_tail"]
    assert one.steps["branch[1]"].doc["pod"].startswith("wf-one-branch-")
    assert one.record["error"]["step"] == "branch(1:2)"
    assert [r.id for r in runs.list(pipeline="wf")] == ["wf-one"]

    # resubmitted with mlstack-resume=wf-one: pods whose code and inputs match reuse, the rest run
    pods2 = Pods(f, "wf-two", monkeypatch, tmp_path / "out", resume="wf-one")
    assert pods2("start", "--param", "k=10") == 0
    start = pods2.result()
    assert json.loads(start) == {"k": 10}
    results = []
    for x in (1, 2, 3):
        assert pods2("branch", "--input", f"start={start}", "--item", str(x), env={"FAIL_XS": ""}) == 0
        results.append(json.loads(pods2.result()))
    assert pods2("join", "--input", f"branch={json.dumps(results)}") == 0
    assert pods2.exit("Succeeded") == 0
    assert _calls(calls) == {"start": 1, "branch1": 1, "branch2": 2, "branch3": 1}
    two = runs.get("wf-two")
    assert two.status == "succeeded" and two.resumed_from == "wf-one"
    got = {s.label: s.status for s in two.steps.flat()}
    assert got == {
        "start": "reused",
        "branch[0]": "reused",
        "branch[1]": "succeeded",
        "branch[2]": "reused",
        "join": "succeeded",
    }
    assert two.steps["branch[0]"].reused_from == {"run": "wf-one", "step": "branch[0]", "via": "resume"}
    assert two.steps["branch[1]"].doc["why"] == "it failed in wf-one"
    assert two.steps["join"].result == 60 and two.steps["branch"].result == [10, 20, 30]
    assert [r.id for r in runs.list(pipeline="wf")] == ["wf-two", "wf-one"] or {
        r.id for r in runs.list()
    } == {
        "wf-one",
        "wf-two",
    }


def test_the_template_records_runs_from_pods_and_declares_the_resume_params(
    local_home, pipeline_file
) -> None:
    from mlstack import manifest

    f = pipeline_file(WF)
    doc = to_workflow_template(load(f), manifest=manifest.local_default()).to_dict()
    spec = doc["spec"]
    assert spec["onExit"] == EXIT_TEMPLATE
    args = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert args["mlstack-resume"] == "" and args["mlstack-no-cache"] == "false"
    by = {t["name"]: t for t in spec["templates"]}
    env = {e["name"]: e.get("value") for e in by["branch"]["container"]["env"]}
    assert env["MLSTACK_RUN_PARAMS"] == "{{workflow.parameters.json}}"
    assert env["MLSTACK_RUN_STARTED"] == "{{workflow.creationTimestamp}}"
    assert env["MLSTACK_RESUME"] == "{{workflow.parameters.mlstack-resume}}"
    assert env["MLSTACK_POD"] == "{{pod.name}}"
    exit_t = by[EXIT_TEMPLATE]["container"]
    assert exit_t["args"][-1] == "--argo-exit"
    exit_env = {e["name"]: e.get("value") for e in exit_t["env"]}
    assert exit_env["MLSTACK_WORKFLOW_STATUS"] == "{{workflow.status}}"
    assert exit_env["MLSTACK_WORKFLOW_FAILURES"] == "{{workflow.failures}}"


def _frames(name: str) -> list[dict]:
    t = "2026-11-30T10:00:0{}Z"
    return [
        workflow(name, "Running", [pod_node("n1", "start", "Running")]),
        workflow(
            name,
            "Running",
            [
                pod_node("n1", "start", "Succeeded", result={"k": 10}),
                pod_node("n2", "branch", "Running", display="branch(0:1)"),
                pod_node("n3", "branch", "Succeeded", display="branch(1:2)", result=20, started=t.format(2)),
                pod_node("n4", "branch", "Running", display="branch(2:3)"),
            ],
        ),
        workflow(
            name,
            "Succeeded",
            [
                pod_node("n1", "start", "Succeeded", result={"k": 10}),
                pod_node("n2", "branch", "Succeeded", display="branch(0:1)", result=10),
                pod_node("n3", "branch", "Succeeded", display="branch(1:2)", result=20),
                pod_node("n4", "branch", "Succeeded", display="branch(2:3)", result=30),
                pod_node("n5", "join", "Succeeded", result=60),
            ],
        ),
    ]


@pytest.fixture
def argo_env(fake_argo, monkeypatch, local_stack):
    url, handler = fake_argo
    monkeypatch.setenv("ARGO_SERVER", url)
    monkeypatch.setenv("ARGO_TOKEN", "s3cret")
    monkeypatch.setenv("MLSTACK_ARGO_POLL", "0.05")
    return url, handler


def test_run_argo_follows_the_workflow_with_the_step_table(argo_env, pipeline_file, cli) -> None:
    _, handler = argo_env
    handler.frames["wf-x7k2p"] = _frames("wf-x7k2p")
    f = pipeline_file(WF)
    code, out, err = cli("run", str(f), "--argo")
    assert code == 0, err
    lines = out.splitlines()
    assert any(ln.endswith("start  running") for ln in lines)
    assert any("branch[1]  succeeded" in ln and "20" in ln for ln in lines)
    assert any("join  succeeded" in ln for ln in lines)
    assert "run wf-x7k2p: succeeded" in out and "Report: mlstack runs show wf-x7k2p" in out
    # the CLI recorded the run at once (the pods add their steps)
    r = runs.get("wf-x7k2p")
    assert r.orchestrator == {"kind": "argo", "workflow": "wf-x7k2p", "namespace": "ml-jobs"}
    assert r.started == "2026-11-30T10:00:00.000Z" and r.params == {"xs": [1, 2, 3], "k": 10}
    gets = [p for m, p, _, _ in handler.requests if m == "GET" and p.startswith("/api/v1/workflows/")]
    assert len(gets) >= 3


def test_ctrl_c_stops_following_not_the_workflow(argo_env, pipeline_file, cli, monkeypatch) -> None:
    _, handler = argo_env
    handler.frames["wf-x7k2p"] = [workflow("wf-x7k2p", "Running", [pod_node("n1", "start", "Running")])]
    from mlstack.pipeline import argo_follow

    real = argo_follow.get_workflow
    calls = {"n": 0}

    def interrupt_second(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(argo_follow, "get_workflow", interrupt_second)
    code, _, err = cli("run", str(pipeline_file(WF)), "--argo")
    assert code == 0
    assert "stopped following; workflow wf-x7k2p keeps running" in err
    assert not [r for r in handler.requests if r[0] in ("DELETE", "PUT") and "/workflows/" in r[1]]
    assert not [r for r in handler.requests if r[1].endswith(("/stop", "/terminate"))]


def test_a_failed_workflow_fails_the_command_naming_the_step(argo_env, pipeline_file, cli) -> None:
    _, handler = argo_env
    handler.frames["wf-x7k2p"] = [
        workflow(
            "wf-x7k2p",
            "Failed",
            [
                pod_node("n1", "start", "Succeeded", result={"k": 10}),
                pod_node("n2", "branch", "Failed", display="branch(0:1)", message="Error (exit code 1)"),
            ],
        )
    ]
    code, _, err = cli("run", str(pipeline_file(WF)), "--argo", "--resume", "nope-run")
    assert code == 1 and "no run 'nope-run'" in err  # resume of an unknown run: nothing submitted
    assert not [r for r in handler.requests if r[1].endswith("/submit")]
    code, _, err = cli("run", str(pipeline_file(WF)), "--argo")
    assert code == 1 and "branch[0] failed" in err and "--resume wf-x7k2p" in err


def test_submit_passes_resume_and_no_cache_as_reserved_params(argo_env, local_home, pipeline_file) -> None:
    url, handler = argo_env
    info = ArgoRunner(None, server_url=url, token="s3cret").submit(
        load(pipeline_file(WF)), {"k": "3"}, resume="wf-one", no_cache=True
    )
    body = [b for m, p, b, _ in handler.requests if p.endswith("/submit")][-1]
    assert body["submitOptions"]["parameters"] == ["k=3", "mlstack-resume=wf-one", "mlstack-no-cache=true"]
    assert info["created"] == "2026-11-30T10:00:00.000Z"


def test_runs_logs_reads_pod_logs_through_the_server_else_the_store(
    argo_env, pipeline_file, monkeypatch, tmp_path, cli
) -> None:
    _, handler = argo_env
    f = pipeline_file(WF)
    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv("CALLS", str(calls))
    pods = Pods(f, "wf-logs", monkeypatch, tmp_path / "out")
    assert pods("start", "--param", "k=10") == 0
    assert pods("branch", "--input", f"start={pods.result()}", "--item", "2") == 0
    pod = runs.get("wf-logs").steps["branch[1]"].doc["pod"]
    handler.logs["wf-logs"] = [(pod, "from the server: branch pod line"), ("other-pod", "not this one")]
    code, out, _ = cli("runs", "logs", "wf-logs", "branch[1]")
    assert code == 0 and out.strip() == "branch[1]: from the server: branch pod line"
    # the workflow is gone from the server (garbage-collected): the log stored with the run
    handler.logs.clear()
    code, out, _ = cli("runs", "logs", "wf-logs", "branch[1]")
    assert code == 0 and "branch 2 ok" in out

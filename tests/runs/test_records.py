"""Run records on every store tier: what a run records, listing, the client, the CLI, resume and the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlstack.runs as runs
from mlstack.errors import RunNotFound
from mlstack.pipeline import load
from mlstack.pipeline.local import LocalRunner
from tests.runs.conftest import cli_json

FLOW = """
import os
from pathlib import Path
import mlstack.run

pipeline = Pipeline("flow", params={"xs": [1, 2, 3], "k": 10, "threshold": 0.5})

@pipeline.step
def start(k):
    mlstack.run.record_input("table", "customers", "4", source="test")
    print("hello from start")
    return {"k": k}

@pipeline.step(foreach="xs")
def branch(start, xs):
    fail = os.environ.get("FAIL_BRANCH")
    if fail and int(fail) == xs and not Path(os.environ["FIXED"]).exists():
        raise SystemExit(f"branch {xs} fails until fixed")
    print(f"branch {xs}")
    return start["k"] * xs

@pipeline.step
def join(branch, threshold):
    import mlstack.artifacts as artifacts
    v = artifacts.put("model", repr(branch).encode())
    artifacts.promote("model", v.version, "production", when=sum(branch) > threshold * 1000,
                      reason=f"sum {sum(branch)} vs {threshold * 1000}")
    return {"total": sum(branch), "version": v.version}

@pipeline.step
def end(join):
    return join["total"]
"""


def test_a_run_records_params_steps_results_logs_lineage_and_lists(stack, pipeline_file, cli) -> None:
    f = pipeline_file(FLOW)
    result = LocalRunner(max_parallel=4).run(load(f), {"k": "7"})
    assert result.ok, result.to_dict()
    assert result.record_errors == []

    run = runs.get(result.run_id)
    assert run.status == "succeeded" and run.pipeline == "flow"
    assert run.params == {"xs": [1, 2, 3], "k": 7, "threshold": 0.5}
    assert run.steps["start"].result == {"k": 7}
    assert run.steps["branch"].result == [7, 14, 21]
    assert run.steps["branch[2]"].result == 21 and run.steps["branch[2]"].branch == 2
    assert run.steps["join"].result == {"total": 42, "version": 1}
    assert run.steps["end"].result == 42
    assert "hello from start" in run.steps["start"].log()
    assert "branch 3" in run.steps["branch[2]"].log() and "branch 1" not in run.steps["branch[2]"].log()
    assert "hello from start" in run.logs() and "branch 2" in run.logs("branch")
    assert run.orchestrator["kind"] == "local" and run.record["who"]["pid"] > 0
    assert run.record["code"]["source_digest"].startswith("sha256:")
    assert run.record["stack"] == {"project": "t", "stack": "t"}
    assert {(i["type"], i["name"], i["version"]) for i in run.inputs} == {("table", "customers", "4")}
    outs = {(o["type"], o["name"], o.get("alias"), o.get("moved"), o["step"]) for o in run.outputs}
    # the gate said no: recorded as a decision, not silently dropped
    assert outs == {
        ("artifact", "model", None, None, "join"),
        ("alias", "model", "production", False, "join"),
    }

    # the listing and `runs show --json` (the documented shape) from the store
    listed = runs.list()
    assert [r.id for r in listed] == [result.run_id] and listed[0].status == "succeeded"
    doc = cli_json(cli, "runs", "show", "latest")
    assert {"id", "pipeline", "status", "params", "steps", "inputs", "outputs"} <= set(doc)
    assert doc["id"] == result.run_id and doc["pipeline"] == "flow"
    steps = {(s["name"], s["branch"]): s for s in doc["steps"]}
    assert set(steps) == {
        ("start", None),
        ("branch", 0),
        ("branch", 1),
        ("branch", 2),
        ("join", None),
        ("end", None),
    }
    for s in doc["steps"]:
        assert s["status"] == "succeeded" and s["attempts"] == 1 and s["seconds"] >= 0
    assert steps[("join", None)]["result"] == {"total": 42, "version": 1}
    rows = cli_json(cli, "runs", "ls", "flow")
    assert [(r["id"], r["status"], r["steps"]) for r in rows] == [
        (result.run_id, "succeeded", {"succeeded": 6})
    ]
    assert cli_json(cli, "runs", "ls", "other") == []
    code, out, _ = cli("runs", "logs", result.run_id, "branch[1]")
    assert code == 0 and "branch 2" in out and "hello" not in out
    code, out, _ = cli("runs", "show", result.run_id)
    assert code == 0 and "branch[2]" in out and "NOT moved" in out


def test_resume_reruns_the_failed_branch_and_downstream_only_and_says_why(
    stack, pipeline_file, monkeypatch, tmp_path
) -> None:
    f = pipeline_file(FLOW)
    monkeypatch.setenv("FAIL_BRANCH", "2")
    monkeypatch.setenv("FIXED", str(tmp_path / "fixed"))
    first = LocalRunner(max_parallel=4).run(load(f))
    assert first.status == "failed"
    assert [(s.label, s.status) for s in first.steps] == [
        ("start", "succeeded"),
        ("branch[0]", "succeeded"),
        ("branch[1]", "failed"),
        ("branch[2]", "succeeded"),
        ("join", "skipped"),
        ("end", "skipped"),
    ]
    rec = runs.get(first.run_id)
    assert rec.status == "failed" and "fails until fixed" in rec.steps["branch[1]"].doc["log_tail"]
    assert rec.steps["join"].status == "skipped"

    (tmp_path / "fixed").touch()
    second = LocalRunner(max_parallel=4).run(load(f), resume=first.run_id)
    assert second.ok, second.to_dict()
    got = {s.label: s.status for s in second.steps}
    assert got == {
        "start": "reused",
        "branch[0]": "reused",
        "branch[1]": "succeeded",
        "branch[2]": "reused",
        "join": "succeeded",
        "end": "succeeded",
    }
    assert second.step("branch[0]").reused_from == {"run": first.run_id, "step": "branch[0]", "via": "resume"}
    assert second.step("branch[1]").why == f"it failed in {first.run_id}"
    assert second.output("branch") == [10, 20, 30] and second.output("end") == 60
    rec2 = runs.get(second.run_id)
    assert rec2.resumed_from == first.run_id and rec2.steps["branch"].result == [10, 20, 30]
    assert rec2.steps["start"].status == "reused" and rec2.steps["start"].result == {"k": 10}

    # a changed item reruns its branch only; the join and end follow, and each says why
    third = LocalRunner(max_parallel=4).run(load(f), {"xs": "[1, 2, 5]"}, resume=second.run_id)
    got = {s.label: (s.status, s.why) for s in third.steps}
    assert got["branch[0]"][0] == got["branch[1]"][0] == got["start"][0] == "reused"
    assert got["branch[2]"] == ("succeeded", "its item changed (3 -> 5)")
    assert got["join"] == ("succeeded", "upstream branch changed")
    # a resumed result names the run that computed it, not the one that reused it
    assert third.step("branch[0]").reused_from["run"] == first.run_id
    assert third.step("branch[1]").reused_from["run"] == second.run_id

    # changed code reruns exactly that step
    f.write_text(f.read_text().replace('return join["total"]', 'return join["total"] + 1'))
    from mlstack.pipeline import spec

    spec._modules.pop(str(f.resolve()), None)
    fourth = LocalRunner(max_parallel=4).run(load(f), {"xs": "[1, 2, 5]"}, resume=third.run_id)
    got = {s.label: (s.status, s.why) for s in fourth.steps}
    assert [k for k, v in got.items() if v[0] != "reused"] == ["end"]
    assert got["end"] == ("succeeded", "its code changed")
    assert fourth.output("end") == 81


CACHED = """
import os, uuid
from pathlib import Path

pipeline = Pipeline("cached", params={"n": 2})

@pipeline.step(cache=True)
def slow(n):
    Path(os.environ["COUNT_DIR"], uuid.uuid4().hex).touch()
    return n * 2

@pipeline.step
def after(slow):
    return slow + 1
"""


def test_cache_hits_across_runs_and_misses_on_new_inputs_or_no_cache(
    stack, pipeline_file, monkeypatch, tmp_path
) -> None:
    counts = tmp_path / "counts"
    counts.mkdir()
    monkeypatch.setenv("COUNT_DIR", str(counts))
    f = pipeline_file(CACHED)
    a = LocalRunner().run(load(f))
    assert a.ok and a.step("slow").status == "succeeded" and len(list(counts.iterdir())) == 1
    b = LocalRunner().run(load(f))
    assert b.step("slow").status == "reused"
    assert b.step("slow").reused_from == {"run": a.run_id, "step": "slow", "via": "cache"}
    assert b.step("after").status == "succeeded" and b.output("after") == 5  # not cached: runs
    assert len(list(counts.iterdir())) == 1
    c = LocalRunner().run(load(f), cache=False)  # --no-cache
    assert c.step("slow").status == "succeeded" and len(list(counts.iterdir())) == 2
    d = LocalRunner().run(load(f), {"n": "3"})  # new inputs: a miss
    assert d.step("slow").status == "succeeded" and d.output("after") == 7
    assert len(list(counts.iterdir())) == 3
    assert runs.get(b.run_id).steps["slow"].reused_from["via"] == "cache"


def test_resume_of_an_unknown_run_lists_the_newest(stack, pipeline_file, cli) -> None:
    f = pipeline_file(CACHED.replace("cache=True", "cache=False"))
    import os

    os.environ.setdefault("COUNT_DIR", str(f.parent))
    done = LocalRunner().run(load(f))
    with pytest.raises(RunNotFound) as e:
        LocalRunner().run(load(f), resume="20200101T000000Z-deadbeef")
    assert done.run_id in e.value.message and "20200101T000000Z-deadbeef" in e.value.message
    code, _, err = cli("run", str(f), "--local", "--resume", "nope-123")
    assert code == 1 and done.run_id in err and "runs ls" in err


def test_a_corrupt_record_is_reported_by_id_and_the_others_still_list(stack, pipeline_file, cli) -> None:
    import os

    f = pipeline_file(CACHED.replace("cache=True", "cache=False"))
    os.environ.setdefault("COUNT_DIR", str(f.parent))
    good = LocalRunner().run(load(f))
    bad = LocalRunner().run(load(f))
    stack.tamper(f"runs/records/{bad.run_id}/run.json", b"{not json")
    stack.tamper(f"runs/records/{good.run_id}/steps/after.json", b"\x00\x01")
    listed = {r.id: r for r in runs.list()}
    assert set(listed) == {good.run_id, bad.run_id}
    assert listed[bad.run_id].status == "unreadable" and "not JSON" in (listed[bad.run_id].error or "")
    assert listed[good.run_id].status == "succeeded"
    rows = cli_json(cli, "runs", "ls")
    assert {r["id"]: r["status"] for r in rows} == {good.run_id: "succeeded", bad.run_id: "unreadable"}
    code, _, err = cli("runs", "show", bad.run_id)
    assert code == 1 and bad.run_id in err and "unreadable" in err
    doc = cli_json(cli, "runs", "show", good.run_id)
    assert doc["unreadable"] == [f"runs/records/{good.run_id}/steps/after.json"]
    assert [s["name"] for s in doc["steps"]] == ["slow", "after"]


def test_records_hold_no_secrets_from_the_environment(stack, pipeline_file, monkeypatch) -> None:
    secret = "s3cr3t-" + "9f8e7d6c5b4a"
    monkeypatch.setenv("MLSTACK_TEST_API_TOKEN", secret)
    f = pipeline_file(
        """
import os
pipeline = Pipeline("env", params={"api_token": "tok-in-param", "n": 1})

@pipeline.step
def one(n, api_token):
    assert os.environ["MLSTACK_TEST_API_TOKEN"]  # the step sees the environment...
    return n
"""
    )
    r = LocalRunner().run(load(f))
    assert r.ok, r.to_dict()
    # ...the record does not: no environment values, and secret-looking params only as a digest
    blob = b""
    keys = stack.object_keys()
    assert any(k.startswith("runs/records/") or "/runs/records/" in k for k in keys)
    for k in keys:
        if stack.raw is None:
            blob += (Path(stack.manifest["artifacts"]["root"]) / k).read_bytes()
        else:
            blob += stack.raw.get_object(Bucket=stack.bucket, Key=k)["Body"].read()
    assert secret.encode() not in blob and b"tok-in-param" not in blob
    for var in ("AWS_SECRET_ACCESS_KEY",):
        import os

        if os.environ.get(var):
            assert os.environ[var].encode() not in blob
    assert runs.get(r.run_id).params["api_token"].startswith("sha256:")


def test_run_json_includes_step_results_and_the_record_location(local_stack, pipeline_file, cli) -> None:
    f = pipeline_file(FLOW)
    doc = cli_json(cli, "run", str(f), "--local")
    assert doc["status"] == "succeeded" and doc["store"] == str(
        Path(local_stack.manifest["artifacts"]["root"])
    )
    by = {s["step"]: s for s in doc["steps"]}
    assert by["join"]["result"] == {"total": 60, "version": 1} and by["branch[1]"]["result"] == 20
    assert {o["type"] for o in doc["outputs"]} == {"artifact", "alias"}
    assert json.dumps(doc)  # plain JSON

"""The local runner: order, parallelism, fan-out and joins, failure propagation, lineage of outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstack.pipeline import load
from mlstack.pipeline.local import LocalRunner, StepFailed

# a rendezvous instead of timings: each branch waits (with a deadline) until the other has started,
# which only succeeds when both run at the same time
RENDEZVOUS = """
import os, time
from pathlib import Path

def meet(me, other, deadline=60):
    d = Path(os.environ["MEET_DIR"]); d.mkdir(exist_ok=True)
    (d / me).touch()
    end = time.monotonic() + deadline
    while not (d / other).exists():
        if time.monotonic() > end:
            raise SystemExit(f"{other} never ran alongside {me}")
        time.sleep(0.02)
    return me
"""


def test_steps_run_in_order_with_fanout_join_and_parallel_branches(
    write_pipeline, local_home, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("MEET_DIR", str(tmp_path / "meet"))
    f = write_pipeline(
        RENDEZVOUS
        + """
pipeline = Pipeline("flow", params={"xs": [1, 2], "k": 10})

@pipeline.step
def start(k):
    return {"k": k, "run": os.environ["MLSTACK_RUN_ID"], "step": os.environ["MLSTACK_STEP"],
            "pipeline": os.environ["MLSTACK_PIPELINE"], "manifest": os.environ["MLSTACK_MANIFEST"]}

@pipeline.step(foreach="xs")
def branch(start, xs):
    meet(f"b{xs}", f"b{3 - xs}")
    return start["k"] * xs

@pipeline.step
def join(branch):
    return sum(branch), branch

@pipeline.step(foreach="join")
def again(join):
    return repr(join)
"""
    )
    pipe = load(f)
    result = LocalRunner(max_parallel=2).run(pipe, {"k": "3"})
    assert result.ok, result.to_dict()
    assert [s.label for s in result.steps] == [
        "start",
        "branch[0]",
        "branch[1]",
        "join",
        "again[0]",
        "again[1]",
    ]
    start = result.output("start")
    assert start["run"] == result.run_id and start["step"] == "start" and start["pipeline"] == "flow"
    assert json.loads(Path(start["manifest"]).read_text())["stack"] == "local"
    assert result.output("branch") == [3, 6]
    assert result.output("join") == (9, [3, 6])
    assert result.output("again") == ["9", "[3, 6]"]
    assert result.run_dir == local_home / "runs" / result.run_id
    state = json.loads((result.run_dir / "run.json").read_text())
    assert state["status"] == "succeeded" and len(state["steps"]) == 6
    for s in result.steps:
        assert Path(s.log).is_file() and "starting" in Path(s.log).read_text()


def test_one_slot_runs_branches_one_at_a_time(write_pipeline, local_home, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEET_DIR", str(tmp_path / "meet"))
    f = write_pipeline(
        RENDEZVOUS
        + """
pipeline = Pipeline("serial", params={"xs": [1, 2]})

@pipeline.step(foreach="xs", timeout=20)
def branch(xs):
    meet(f"b{xs}", f"b{3 - xs}", deadline=2)
"""
    )
    result = LocalRunner(max_parallel=1).run(load(f))
    assert result.status == "failed"
    assert result.step("branch[0]").status == "failed"
    assert "never ran alongside" in result.step("branch[0]").log_tail
    assert result.step("branch[1]").status == "skipped"  # nothing new starts after a failure


def test_a_failing_step_fails_the_run_with_its_log_tail_and_exit_code(write_pipeline, local_home) -> None:
    f = write_pipeline(
        """
import sys
pipeline = Pipeline("boom")

@pipeline.step
def ok():
    return 1

@pipeline.step
def bad(ok):
    print("computing the thing")
    sys.exit(7)

@pipeline.step
def after(bad):
    return bad
"""
    )
    pipe = load(f)
    result = LocalRunner().run(pipe)
    assert result.status == "failed"
    assert [(s.label, s.status) for s in result.steps] == [
        ("ok", "succeeded"),
        ("bad", "failed"),
        ("after", "skipped"),
    ]
    assert result.step("bad").exit_code == 7
    with pytest.raises(StepFailed) as e:
        result.raise_for_status()
    assert (
        "step bad" in str(e.value) and "exit code 7" in str(e.value) and "computing the thing" in str(e.value)
    )
    assert e.value.fix and result.step("bad").log in e.value.fix
    assert e.value.exit_code == 1
    with pytest.raises(StepFailed):
        pipe.run()


def test_an_exception_shows_its_traceback_and_retries_run_again(write_pipeline, local_home, tmp_path) -> None:
    f = write_pipeline(
        f"""
from pathlib import Path
pipeline = Pipeline("flaky")

@pipeline.step(retries=1)
def flaky():
    marker = Path({str(tmp_path / "tried")!r})
    if not marker.exists():
        marker.touch()
        raise RuntimeError("first attempt fails")
    return "second attempt"
"""
    )
    result = LocalRunner().run(load(f))
    assert result.ok and result.step("flaky").attempts == 2
    assert result.output("flaky") == "second attempt"
    assert "RuntimeError: first attempt fails" in Path(result.step("flaky").log).read_text()


def test_a_step_over_its_timeout_is_killed(write_pipeline, local_home) -> None:
    f = write_pipeline(
        """
import time
pipeline = Pipeline("slow")

@pipeline.step(timeout=1)
def sleepy():
    time.sleep(60)
"""
    )
    result = LocalRunner().run(load(f))
    assert result.step("sleepy").status == "timed_out"
    with pytest.raises(StepFailed, match="timed out"):
        result.raise_for_status()


def test_artifacts_name_the_run_and_what_earlier_steps_read(write_pipeline, local_home) -> None:
    f = write_pipeline(
        """
import mlstack.run

pipeline = Pipeline("lineage")

@pipeline.step
def read():
    mlstack.run.record_input("table", "customers", "4", source="local")
    return "read"

@pipeline.step
def write(read):
    import mlstack.artifacts as artifacts
    v = artifacts.put("model", b"weights")
    return v.version
"""
    )
    result = LocalRunner().run(load(f))
    assert result.ok, result.to_dict()
    import mlstack.artifacts as artifacts
    from mlstack import manifest

    manifest._cache.clear()
    v = artifacts.store(manifest.local_default()).show("model@1")
    assert v.run_id == result.run_id
    assert any(i["type"] == "table" and i["name"] == "customers" and i["version"] == "4" for i in v.inputs)


def test_a_pipeline_not_from_a_file_cannot_run_in_subprocesses(local_home) -> None:
    from mlstack.errors import PipelineError
    from mlstack.pipeline import Pipeline

    p = Pipeline("inline")
    p.step(lambda: 1, name="one")
    with pytest.raises(PipelineError, match="not loaded from a file"):
        p.run()


def test_a_missing_package_is_not_retried(write_pipeline, local_home) -> None:
    f = write_pipeline(
        """
pipeline = Pipeline("needs")

@pipeline.step(retries=3)
def gpu():
    from mlstack.errors import require
    require("surely_not_installed_pkg", "examples", "this step")
"""
    )
    result = LocalRunner().run(load(f))
    step = result.step("gpu")
    assert step.status == "failed" and step.attempts == 1
    assert "pip install 'mlstack[examples]'" in step.log_tail


def test_steps_fork_from_a_fork_server_with_their_own_env_and_log(
    write_pipeline, local_home, monkeypatch
) -> None:
    f = write_pipeline(
        """
import os, sys, time
pipeline = Pipeline("forky", params={"xs": [1, 2, 3]})

@pipeline.step
def first():
    time.sleep(3)  # the fork server boots meanwhile
    os.environ["LEAK"] = "from first"
    return os.getppid()

@pipeline.step(foreach="xs", env={"OWN": "yes"})
def branch(first, xs):
    print(f"branch {xs} says hi")
    print("to stderr", file=sys.stderr)
    if xs == 3:
        raise SystemExit(5)
    return {"ppid": os.getppid(), "step": os.environ["MLSTACK_STEP"], "leak": os.environ.get("LEAK"),
            "own": os.environ.get("OWN")}
"""
    )
    import os

    result = LocalRunner(max_parallel=2).run(load(f))
    assert result.status == "failed" and result.step("branch[2]").exit_code == 5
    got = [result.step(f"branch[{i}]") for i in range(2)]
    outs = [json.loads((Path(s.log).parent / "result.json").read_text()) for s in got]
    assert [o["step"] for o in outs] == ["branch[0]", "branch[1]"]
    assert all(o["leak"] is None and o["own"] == "yes" for o in outs)  # each step gets its own environment
    # forked from the server (its parent is not this process), unlike the first step that started meanwhile
    assert result.output("first") == os.getpid()
    assert any(o["ppid"] != os.getpid() for o in outs)
    text = Path(got[1].log).read_text()
    assert "branch 2 says hi" in text and "to stderr" in text
    assert (
        result.step("branch[2]").status == "failed" and "SystemExit" not in result.step("branch[2]").log_tail
    )

    monkeypatch.setenv("MLSTACK_LOCAL_FORK", "0")  # the opt-out: every step a fresh interpreter
    again = LocalRunner(max_parallel=2).run(load(f))
    outs = [
        json.loads((Path(again.step(f"branch[{i}]").log).parent / "result.json").read_text())
        for i in range(2)
    ]
    assert all(o["ppid"] == os.getpid() for o in outs)

"""Faults: a runner killed mid-run (lease -> interrupted, then --resume), two runs at once, listing by prefix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import mlstack.runs as runs
from mlstack.runs._store import RunStore

SLOW = """
import os, time
from pathlib import Path

pipeline = Pipeline("slow", params={"k": 1})

@pipeline.step
def first(k):
    return k + 1

@pipeline.step
def second(first):
    release = Path(os.environ["RELEASE"])
    end = time.monotonic() + 60
    while not release.exists() and time.monotonic() < end:
        time.sleep(0.05)
    return first * 10
"""


def _cli(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlstack.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill below takes the runner and its steps
        **kw,
    )


def _wait(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_runner_reads_interrupted_after_its_lease_and_resume_finishes_it(
    stack, pipeline_file, tmp_path, monkeypatch
) -> None:
    f = pipeline_file(SLOW)
    lease = 1.5
    monkeypatch.setenv("MLSTACK_RUN_LEASE", str(lease))
    env = {**os.environ, **stack.env, "RELEASE": str(tmp_path / "release"), "MLSTACK_RUN_LEASE": str(lease)}
    proc = _cli(["run", str(f), "--local"], env, cwd=tmp_path)
    try:
        # wait until `first` is recorded and `second` is running, then SIGKILL the runner (no clean-up runs)
        def started():
            got = runs.list(pipeline="slow")
            if got and got[0].steps["first"].status == "succeeded":
                return got[0]
            return None

        run = _wait(started, 60, "the first step's record")
        assert runs.get(run.id).status == "running"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # still `running` until the lease lapses, then `interrupted` with the reason
    got = _wait(
        lambda: runs.get(run.id) if runs.get(run.id).status == "interrupted" else None, 10 + lease, "lease"
    )
    assert "no heartbeat" in (got.reason or "")
    assert got.steps["second"].status == "interrupted" and got.steps["first"].status == "succeeded"
    assert [r.status for r in runs.list(status="interrupted")] == ["interrupted"]
    assert runs.list(status="running") == []

    (tmp_path / "release").touch()
    done = _cli(["run", str(f), "--local", "--resume", run.id, "--json"], env, cwd=tmp_path)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    doc = json.loads(out)
    assert doc["resumed_from"] == run.id
    assert [(s["step"], s["status"]) for s in doc["steps"]] == [("first", "reused"), ("second", "succeeded")]
    assert doc["steps"][1]["why"] == f"it did not run in {run.id}"
    assert runs.get(doc["run_id"]).steps["second"].result == 20


def test_two_runs_at_once_write_two_records_and_mix_nothing(stack, pipeline_file, tmp_path) -> None:
    f = pipeline_file(
        """
pipeline = Pipeline("twice", params={"k": 1, "xs": [1, 2, 3]})

@pipeline.step(foreach="xs")
def branch(k, xs):
    return k * xs

@pipeline.step
def total(branch, k):
    return {"k": k, "sum": sum(branch)}
"""
    )
    (tmp_path / "release").touch()
    env = {**os.environ, **stack.env}
    procs = [
        _cli(["run", str(f), "--local", "--json", "-p", f"k={k}"], env, cwd=tmp_path) for k in (10, 1000)
    ]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        docs.append(json.loads(out))
    assert docs[0]["run_id"] != docs[1]["run_id"]
    listed = runs.list(pipeline="twice")
    assert sorted(r.id for r in listed) == sorted(d["run_id"] for d in docs)
    for d, k in zip(docs, (10, 1000), strict=True):
        r = runs.get(d["run_id"])
        assert r.params["k"] == k and r.status == "succeeded"
        assert r.steps["branch"].result == [k, 2 * k, 3 * k]
        assert r.steps["total"].result == {"k": k, "sum": 6 * k}
        assert len(r.steps.flat()) == 4 and {s.doc["run"] for s in r.steps.flat()} == {r.id}


@pytest.mark.parametrize("tier", ["local", "moto"])
def test_listing_reads_the_index_and_only_the_records_it_shows(
    tier, tmp_path, monkeypatch, request, local_home
) -> None:
    from tests.artifacts.conftest import make_env

    env = make_env(tier, tmp_path, monkeypatch, request)
    st = runs.store()
    assert isinstance(st, RunStore)
    base = time.time() - 1000
    from mlstack.runs._store import now_iso

    for i in range(120):
        rec = {
            "id": f"r{i:04d}",
            "pipeline": "a" if i % 2 else "b",
            "started": now_iso(base + i),
            "status": "running",
            "params": {"i": i},
            "orchestrator": {"kind": "local"},
            "lease": {"expires": time.time() + 600},
        }
        st.start_run(rec)
        if i % 3:
            st.finish_run(
                rec["id"],
                lambda cur, i=i: {**cur, "status": "failed" if i % 5 == 0 else "succeeded", "seconds": 1.0},
            )
    reads: list[str] = []
    real = st.backend.read_doc

    def counting(key: str):
        reads.append(key)
        return real(key)

    monkeypatch.setattr(st.backend, "read_doc", counting)
    newest = runs.list(limit=5)
    assert [r.id for r in newest] == ["r0119", "r0118", "r0117", "r0116", "r0115"]
    assert len([k for k in reads if k.endswith("run.json")]) == 5  # the five shown, not 120
    assert [r.id for r in runs.list(pipeline="b", limit=3)] == ["r0118", "r0116", "r0114"]
    failed = runs.list(status="failed", limit=0)
    assert [r.id for r in failed] == [f"r{i:04d}" for i in range(119, -1, -1) if i % 3 and i % 5 == 0]
    running = runs.list(status="running", limit=0)
    assert len(running) == 40 and all(int(r.id[1:]) % 3 == 0 for r in running)
    assert env.kind == tier

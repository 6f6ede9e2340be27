"""`mlstack run` and `mlstack render` end to end, and `mlstack demo --json` in a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlstack.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None, timeout: int = 240):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_render_argo_prints_a_workflow_template(local_home, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    assert main(["render", "examples/gpu-finetune", "--argo", "-p", "epochs=2"]) == 0
    out, err = capsys.readouterr()
    doc = yaml.safe_load(out)
    assert doc["kind"] == "WorkflowTemplate" and doc["metadata"]["name"] == "gpu-finetune"
    assert "nvidia.com/gpu" in out and "MLSTACK_MANIFEST" in out
    assert {"name": "epochs", "value": "2"} in doc["spec"]["arguments"]["parameters"]
    assert "note:" in err and "mlstack-manifest" in err  # the defaults used are said, on stderr


def test_render_needs_a_target_and_rejects_unknown_params(local_home, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    assert main(["render", "examples/churn"]) == 2
    assert "--argo" in capsys.readouterr().err
    assert main(["render", "examples/churn", "--argo", "-p", "nope=1"]) == 2
    assert "no param 'nope'" in capsys.readouterr().err
    assert main(["render", "examples/none", "--argo"]) == 2


def test_run_local_json_and_a_failing_step(write_pipeline, tmp_path) -> None:
    f = write_pipeline(
        """
pipeline = Pipeline("cli", params={"fail": False})

@pipeline.step
def one(fail):
    if fail:
        raise SystemExit(3)
    return 1
"""
    )
    ok = _cli(["run", str(f.parent), "--local", "--json"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["status"] == "succeeded" and data["steps"][0]["step"] == "one"
    assert Path(data["run_dir"]).is_relative_to(tmp_path / ".mlstack" / "runs")
    bad_json = _cli(["run", str(f), "-p", "fail=true", "--json"], cwd=tmp_path)
    assert bad_json.returncode == 1
    doc = json.loads(bad_json.stdout)  # exactly one JSON document, carrying the error
    assert doc["status"] == "failed" and doc["error"] == "StepFailed" and doc["steps"][0]["exit_code"] == 3
    bad = _cli(["run", str(f), "-p", "fail=true"], cwd=tmp_path)
    assert bad.returncode == 1
    assert "exit code 3" in bad.stderr and "fix:" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_demo_json_runs_the_churn_pipeline_end_to_end(tmp_path) -> None:
    res = _cli(["demo", "--json"], cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout)
    assert report["home"] == str(tmp_path / ".mlstack")
    assert report["run"]["status"] == "succeeded"
    assert [s["step"] for s in report["run"]["steps"]] == [
        "ingest",
        "features",
        "train[0]",
        "train[1]",
        "train[2]",
        "evaluate",
    ]
    assert report["dataset"] == {"table": "churn_customers", "loaded": 5000}
    model = report["model"]
    assert model["name"] == "churn-model" and model["run_id"] == report["run"]["run_id"]
    tables = {i["name"] for i in model["inputs"] if i["type"] == "table"}
    assert tables == {"churn_customers", "churn_features"}
    ev = report["evaluation"]
    assert ev["promoted"] == (ev["auc"] >= ev["threshold"])
    assert ("production" in model["aliases"]) == ev["promoted"]
    assert "churn_customers" in model["lineage"]
    # the run is recorded: `runs show latest --json` holds the evaluate step's result
    shown = _cli(["runs", "show", "latest", "--json"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["id"] == report["run"]["run_id"] and doc["status"] == "succeeded"
    evaluate = next(s for s in doc["steps"] if s["name"] == "evaluate")
    assert evaluate["result"] == ev
    gate = [o for o in doc["outputs"] if o["type"] == "alias"]
    assert [(o["alias"], o["moved"]) for o in gate] == [("production", ev["promoted"])]

    # a run whose gate says no: the end of `mlstack run` says so plainly, with results and what was written
    res = _cli(["run", str(REPO / "examples" / "churn"), "--local", "-p", "threshold=0.999"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "evaluate  succeeded" in out  # piped: one line per state change
    assert "churn-model:production NOT moved to version" in out and "threshold 0.999" in out
    assert "Artifacts written:" in out and "churn-model@" in out and '"promoted": false' in out
    assert "mlstack runs show " in out
    latest = json.loads(_cli(["runs", "show", "latest", "--json"], cwd=tmp_path).stdout)
    evaluate = next(s for s in latest["steps"] if s["name"] == "evaluate")
    assert evaluate["result"]["promoted"] is False and evaluate["result"]["threshold"] == 0.999
    # no --resume and no cached steps: every step ran
    assert [s["status"] for s in latest["steps"]] == ["succeeded"] * 6

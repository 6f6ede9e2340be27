"""`mlstack doctor` end to end through the CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack.cli.main import main
from tests.doctor.conftest import manifest_dict


def test_fresh_local_stack_passes(local_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["summary"]["fail"] == 0
    statuses = {f["check"]: f["status"] for f in out["findings"]}
    assert statuses["artifacts.probe"] == "ok" and statuses["data.connection"] == "ok"
    assert {f["layer"] for f in out["findings"]} == {
        "environment",
        "artifacts",
        "data",
        "compute",
        "orchestrator",
    }
    assert all(f["fix"] for f in out["findings"] if f["status"] != "ok")


def test_table_output_and_exit_1_on_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    m = tmp_path / "m.json"
    # a root below a regular file can never be created: a failing check
    m.write_text(json.dumps(manifest_dict(artifacts={"kind": "local", "root": str(blocker / "sub")})))
    assert main(["doctor", "--manifest", str(m)]) == 1
    out = capsys.readouterr().out
    assert "artifacts.folder" in out and "fail" in out and "1 fail" in out


def test_bad_manifest_is_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.json"
    m.write_text("{")
    assert main(["doctor", "--manifest", str(m), "--json"]) == 2
    cap = capsys.readouterr()
    assert json.loads(cap.out)["error"] == "ManifestError" and "Traceback" not in cap.err


def test_acceptance_closed_port_within_about_4s(tmp_path: Path, closed_port: int) -> None:
    """`mlstack doctor --manifest m.json --json --timeout 3` with the artifacts endpoint on a closed port."""
    m = tmp_path / "m.json"
    m.write_text(
        json.dumps(
            manifest_dict(
                artifacts={
                    "kind": "s3",
                    "bucket": "ml-artifacts",
                    "region": "us-east-1",
                    "endpoint_url": f"http://127.0.0.1:{closed_port}",
                }
            )
        )
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli.main",
            "doctor",
            "--manifest",
            str(m),
            "--json",
            "--timeout",
            "3",
        ],
        capture_output=True,
        text=True,
        env={**env, "AWS_EC2_METADATA_DISABLED": "true"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    failing = [f for f in out["findings"] if f["status"] == "fail"]
    assert failing and all(f["fix"] for f in failing)
    assert any(f["check"] == "artifacts.bucket" for f in failing)
    # the checks ran under the --timeout given (their bound is tested without a clock in test_core.py and
    # test_artifacts.py: one attempt, no retries; seconds here would only measure how loaded the machine is)
    assert out["timeout_s"] == 3


def test_job_on_local_compute_says_so(local_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "job", "train-1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["job"] == "train-1" and out["findings"][0]["check"] == "job.compute"

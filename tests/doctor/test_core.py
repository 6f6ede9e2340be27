from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from mlstack.doctor import core
from mlstack.doctor.core import Check, Finding, Report, Sink, fail, ok, run_checks, warn
from mlstack.errors import MissingExtraError


def test_finding_needs_a_fix_unless_ok() -> None:
    assert ok("a.b", "fine").fix is None
    with pytest.raises(ValueError, match="needs a fix"):
        Finding("a.b", "fail", "broken")
    with pytest.raises(ValueError, match="status"):
        Finding("a.b", "bad", "x", "y")  # type: ignore[arg-type]
    assert warn("artifacts.x", "d", "f").to_dict() == {
        "check": "artifacts.x",
        "status": "warn",
        "detail": "d",
        "fix": "f",
        "layer": "artifacts",
    }


def test_checks_run_concurrently_under_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three checks that each hang: the run costs one timeout, not three."""
    release = threading.Event()

    def hang(i: int):  # type: ignore[no-untyped-def]
        def _fn(sink: Sink, timeout: float) -> None:
            sink.add(ok("x.first", f"learned before hanging ({i})"))
            release.wait(30)

        return _fn

    waits: list[float] = []

    class Done(threading.Event):  # records how long run_checks waits for each check
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout if timeout is not None else float("inf"))
            return super().wait(timeout)

    monkeypatch.setattr(core, "threading", SimpleNamespace(Event=Done, Thread=threading.Thread, Lock=threading.Lock))
    checks = [Check(f"x.hang{i}", hang(i), "the fix for a hang") for i in range(3)]
    report = run_checks(checks, timeout=1.0)
    release.set()
    # one shared deadline: the waits add up to the timeout (sequential timeouts would wait 3 x 1 s). Counted
    # from what run_checks asks for, not from the clock, so a loaded machine cannot fail it
    assert len(waits) == 3 and 0 < waits[0] <= 1.0 and sum(waits) <= 1.05, waits
    timeouts = [f for f in report.findings if f.detail == "timed out after 1 s"]
    assert [f.check for f in timeouts] == ["x.hang0", "x.hang1", "x.hang2"]
    assert all(f.status == "fail" and f.fix == "the fix for a hang" for f in timeouts)
    # what a check learned before the deadline is kept
    assert sum(f.check == "x.first" for f in report.findings) == 3
    assert report.failed


def test_late_findings_after_the_deadline_are_dropped() -> None:
    go = threading.Event()
    sink_seen: list[Sink] = []

    def slow(sink: Sink, timeout: float) -> None:
        sink_seen.append(sink)
        go.wait(5)
        sink.add(ok("x.late", "too late"))

    report = run_checks([Check("x.slow", slow)], timeout=0.2)
    go.set()
    time.sleep(0.1)
    assert [f.check for f in report.findings] == ["x.slow"]


def test_a_crashing_check_becomes_a_failing_finding() -> None:
    def boom(sink: Sink, timeout: float) -> None:
        raise KeyError("nope")

    def missing(sink: Sink, timeout: float) -> None:
        raise MissingExtraError("boto3", "aws", "the S3 checks")

    report = run_checks([Check("x.boom", boom), Check("x.extra", missing)], timeout=2)
    boom_f, extra_f = report.findings
    assert boom_f.status == "fail" and "KeyError" in boom_f.detail and "--debug" in (boom_f.fix or "")
    assert (
        extra_f.status == "fail" and "boto3" in extra_f.detail and extra_f.fix == "pip install 'mlstack[aws]'"
    )


def test_report_summary() -> None:
    r = Report([ok("a.x", "1"), warn("a.y", "2", "f"), fail("b.z", "3", "f")], 0.1234, 5)
    d = r.to_dict()
    assert d["ok"] is False and d["summary"] == {"ok": 1, "warn": 1, "fail": 1}
    assert [f["layer"] for f in d["findings"]] == ["a", "a", "b"]
    assert not Report([ok("a.x", "1"), warn("a.y", "2", "f")]).failed


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        run_checks([], timeout=0)


def test_doctor_modules_import_no_client_library() -> None:
    """Clients load inside the checks that need them: `mlstack doctor` on a local stack stays quick."""
    import json
    import subprocess
    import sys

    code = (
        "import sys, json, mlstack.doctor.runner, mlstack.doctor.explain, mlstack.doctor.preflight, "
        "mlstack.cli.doctor_cmd; heavy = ('boto3', 'botocore', 'kubernetes', 'snowflake', 'databricks', "
        "'duckdb', 'pulumi', 'pyarrow'); print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []

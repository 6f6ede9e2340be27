from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack.cli.main import main


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=e,
        timeout=120,
    )


def test_version_init_show_in_an_empty_folder(tmp_path: Path) -> None:
    r = run_cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("mlstack ")
    r = run_cli("init", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert (tmp_path / ".mlstack" / "mlstack.json").is_file()
    assert first["created"]
    r = run_cli("init", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["created"] == []  # twice changes nothing
    r = run_cli("manifest", "show", "--json", cwd=tmp_path)
    shown = json.loads(r.stdout)
    assert shown["source"] == "default"
    assert shown["manifest"]["artifacts"] == {
        "kind": "local",
        "root": str(tmp_path / ".mlstack" / "artifacts"),
    }


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        ({"artifacts": {"kind": "ftp", "root": "x"}}, "artifacts.kind"),
        ({"artifacts": {"kind": "s3", "region": "us-east-1"}}, "artifacts.bucket"),
        ({"artifacts": {"kind": "local", "root": "x", "password": "p"}}, "artifacts.password"),
        ({"project": 5}, "project"),
    ],
)
def test_validate_bad_manifest_exits_2_naming_the_path(tmp_path: Path, edit: dict, path: str) -> None:
    m = {
        "version": 1,
        "project": "p",
        "stack": "s",
        "artifacts": {"kind": "local", "root": "a"},
        "data": {"kind": "local", "path": "d.duckdb"},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }
    m.update(edit)
    f = tmp_path / "m.json"
    f.write_text(json.dumps(m))
    r = run_cli("manifest", "validate", str(f), cwd=tmp_path)
    assert r.returncode == 2
    assert path in r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def test_json_errors_are_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["manifest", "validate", str(tmp_path / "missing.json"), "--json"])
    assert code == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "ManifestError" and "does not exist" in out["message"] and out["fix"]


def test_usage_error_exits_2_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No such command" in err


def test_manifest_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["required"]) >= {"project", "stack", "artifacts", "data", "compute", "orchestrator"}


def test_table_cells_are_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from mlstack.cli._common import print_table

    print_table(None, ["name"], [["model[bold]x[/bold]"], ["[prod]"]])
    out = capsys.readouterr().out
    assert "model[bold]x[/bold]" in out and "[prod]" in out

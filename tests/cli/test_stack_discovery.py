"""The stack is found the way git finds a repository: walking up from the current folder. A command run in a
sub-folder uses the stack above it (and says so); none found means a new local stack here, said as much."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack import manifest
from mlstack.cli.main import main


def _s3(prefix: str) -> dict:
    return {
        "version": 1,
        "project": "p",
        "stack": "prod",
        "artifacts": {"kind": "s3", "bucket": "b-1", "region": "us-east-1", "prefix": prefix},
        "data": {"kind": "local", "path": "w.duckdb"},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }


def test_walks_up_to_the_nearest_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    new = manifest.resolve()
    assert (new.source_kind, new.origin, new.source) == ("default", "new", str(deep / ".mlstack"))

    (tmp_path / ".mlstack").mkdir()
    found = manifest.resolve()
    assert (found.source_kind, found.origin) == ("default", "parent")
    assert found.manifest.artifacts.root == str(tmp_path / ".mlstack" / "artifacts")
    assert "found in a parent folder" in (found.note() or "")

    # a deployed stack's mlstack.json nearer than the local stack wins; in the same folder too
    (tmp_path / "a" / "mlstack.json").write_text(json.dumps(_s3("near")))
    assert manifest.resolve().manifest.artifacts.prefix == "near"
    (tmp_path / "a" / "b" / ".mlstack").mkdir()
    nearest = manifest.resolve()
    assert nearest.source == str(tmp_path / "a" / "b" / ".mlstack")
    (tmp_path / "a" / "b" / "mlstack.json").write_text(json.dumps(_s3("same-folder")))
    assert manifest.resolve().manifest.artifacts.prefix == "same-folder"

    here = manifest.resolve(cwd=tmp_path / "a" / "b")
    assert here.origin == "here" and here.note() is None


def test_ceiling_directories_stop_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".mlstack").mkdir()
    sub = tmp_path / "repo" / "src"
    sub.mkdir(parents=True)
    assert manifest.discover(sub) == (tmp_path, "home")
    monkeypatch.setenv("MLSTACK_CEILING_DIRECTORIES", f"/nonexistent{os.pathsep}{tmp_path}")
    assert manifest.discover(sub) is None
    assert manifest.discover(tmp_path) == (tmp_path, "home")  # the start folder itself is always searched


def test_mlstack_home_names_the_local_stack_but_not_over_an_mlstack_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".mlstack").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path / "elsewhere"))
    loaded = manifest.resolve()
    assert (loaded.origin, loaded.source) == ("home-env", str(tmp_path / "elsewhere"))
    (tmp_path / "mlstack.json").write_text(json.dumps(_s3("deployed")))
    assert manifest.resolve().manifest.artifacts.prefix == "deployed"
    assert manifest.home() == tmp_path / "elsewhere"


def test_data_loaded_in_a_subfolder_lands_in_the_stack_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--json"]) == 0
    init = json.loads(capsys.readouterr().out)
    assert init["origin"] == "new" and init["home"] == str(tmp_path / ".mlstack")

    sub = tmp_path / "notebooks" / "week1"
    sub.mkdir(parents=True)
    csv = sub / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    monkeypatch.chdir(sub)
    assert main(["data", "load", str(csv), "t"]) == 0
    err = capsys.readouterr().err
    assert f"stack: the local stack in {tmp_path / '.mlstack'} (found in a parent folder)" in err
    assert not (sub / ".mlstack").exists() and not (tmp_path / "notebooks" / ".mlstack").exists()

    monkeypatch.chdir(tmp_path)
    assert main(["data", "query", "select sum(b) s from t", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["rows"] == [{"s": 6}]
    assert "stack:" not in out.err  # the stack of this very folder goes without saying


def test_init_in_a_subfolder_reuses_the_stack_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".mlstack").mkdir()
    sub = tmp_path / "x"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / '.mlstack'} (found in a parent folder)" in " ".join(out.split())
    assert not (sub / ".mlstack").exists()


def test_no_stack_anywhere_says_a_new_one_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["manifest", "show"]) == 0
    captured = capsys.readouterr()
    assert f"using a new local stack in {tmp_path / '.mlstack'}" in captured.err
    assert "a new local stack" in captured.out


def test_a_job_run_from_another_folder_finds_the_stack(tmp_path: Path) -> None:
    """A plain `python job.py` in a sub-folder writes its artifact into the stack above, not a fresh one."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.py").write_text(
        "import mlstack\nv = mlstack.artifacts.put('from-a-job', b'hello')\nprint(v.version)\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLSTACK_") or k == "MLSTACK_CEILING_DIRECTORIES"
    }
    subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "init"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    r = subprocess.run(
        [sys.executable, "job.py"],
        cwd=tmp_path / "jobs",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "jobs" / ".mlstack").exists()
    ls = subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "artifacts", "ls", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "from-a-job" in ls.stdout

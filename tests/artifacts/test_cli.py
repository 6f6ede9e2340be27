"""``mlstack artifacts`` end to end: in-process on every tier, and as a subprocess against SeaweedFS."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack.cli.main import main
from tests.artifacts.conftest import StoreEnv, make_env

REPO = Path(__file__).resolve().parents[2]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> object:
    capsys.readouterr()
    assert main(argv) == code, capsys.readouterr()
    return json.loads(capsys.readouterr().out)


def test_cli_put_get_ls_show_alias_verify(
    art: StoreEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "model.pkl"
    f.write_bytes(b"model bytes " * 1000)
    v = _json(
        capsys, ["artifacts", "put", "churn", str(f), "--alias", "staging", "--meta", "auc=0.91", "--json"]
    )
    assert isinstance(v, dict)
    assert (v["ref"], v["aliases"], v["metadata"], v["unchanged"]) == (
        "churn@1",
        ["staging"],
        {"auc": "0.91"},
        False,
    )
    again = _json(capsys, ["artifacts", "put", "churn", str(f), "--meta", "auc=0.91", "--json"])
    assert isinstance(again, dict) and again["unchanged"] is True and again["version"] == 1
    f.write_bytes(b"model bytes v2")
    _json(capsys, ["artifacts", "put", "churn", str(f), "--json"])

    capsys.readouterr()
    assert main(["artifacts", "put", "churn", str(f)]) == 0
    assert "churn@2" in capsys.readouterr().out  # plain output names the version

    alias = _json(capsys, ["artifacts", "alias", "churn", "1", "production", "--json"])
    assert isinstance(alias, dict) and alias["version"] == 1
    out = tmp_path / "got.pkl"
    got = _json(capsys, ["artifacts", "get", "churn:production", str(out), "--json"])
    assert isinstance(got, dict) and got["path"] == str(out)
    assert out.read_bytes() == b"model bytes " * 1000
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    by_prefix = _json(capsys, ["artifacts", "show", f"churn@{digest[:8]}", "--json"])
    assert (
        isinstance(by_prefix, dict)
        and by_prefix["version"] == 1
        and by_prefix["aliases"] == ["production", "staging"]
    )

    listing = _json(capsys, ["artifacts", "ls", "--json"])
    assert isinstance(listing, list) and [x["ref"] for x in listing] == ["churn@2"]
    versions = _json(capsys, ["artifacts", "ls", "churn", "--json"])
    assert isinstance(versions, list) and [x["version"] for x in versions] == [2, 1]
    verified = _json(capsys, ["artifacts", "verify", "churn@1", "--json"])
    assert isinstance(verified, dict) and verified["verified"] is True

    capsys.readouterr()
    assert main(["artifacts", "show", "churn:staging"]) == 0
    text = capsys.readouterr().out
    assert "churn@1" in text and "auc" in text and "run" in text
    assert main(["artifacts", "ls"]) == 0
    assert "churn" in capsys.readouterr().out


def test_cli_errors_are_one_message_with_a_fix(
    art: StoreEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["artifacts", "get", "nope", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "no artifact named 'nope'" in err and "fix:" in err and "Traceback" not in err
    assert main(["artifacts", "show", "nope@zz"]) == 2
    assert main(["artifacts", "put", "ok", str(tmp_path / "missing")]) == 2
    assert main(["artifacts", "put", "bad name", __file__]) == 2
    assert main(["artifacts", "put", "ok", __file__, "--meta", "novalue"]) == 2
    err = _json(capsys, ["artifacts", "show", "nope", "--json"], code=1)
    assert isinstance(err, dict) and err["error"] == "ArtifactNotFound" and err["fix"]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.seaweedfs
def test_acceptance_against_seaweedfs_with_wrong_and_right_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The issue's acceptance run: a manifest whose artifacts section points at SeaweedFS on loopback."""
    art = make_env("seaweedfs", tmp_path, monkeypatch, request)
    env = {**os.environ, **art.env, "PYTHONPATH": str(REPO)}
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20_000_000))
    d = tmp_path / "dir"
    (d / "a" / "b").mkdir(parents=True)
    for i in range(12):
        (d / "a" / f"{i}.csv").write_text(f"x,y\n{i},{i * i}\n")
    (d / "a" / "b" / "deep.bin").write_bytes(os.urandom(70_000))

    r = _cli(["artifacts", "put", "big", str(big), "--json"], env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == 1
    keys = art.object_keys()
    r = _cli(["artifacts", "put", "big", str(big), "--json"], env)
    assert r.returncode == 0 and json.loads(r.stdout)["unchanged"] is True
    assert art.object_keys() == keys  # putting the same file again writes no object
    assert _cli(["artifacts", "put", "tree", str(d)], env).returncode == 0
    assert _cli(["artifacts", "get", "big", str(tmp_path / "big.out")], env).returncode == 0
    assert (tmp_path / "big.out").read_bytes() == big.read_bytes()
    assert _cli(["artifacts", "get", "tree", str(tmp_path / "tree.out")], env).returncode == 0
    for p in d.rglob("*"):
        if p.is_file():
            assert (tmp_path / "tree.out" / p.relative_to(d)).read_bytes() == p.read_bytes()
    ls = json.loads(_cli(["artifacts", "ls", "--json"], env).stdout)
    assert sorted(x["ref"] for x in ls) == ["big@1", "tree@1"]
    show = json.loads(_cli(["artifacts", "show", "tree", "--json"], env).stdout)
    assert show["kind"] == "dir" and show["files"] == 13

    bad = {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    r = _cli(["artifacts", "ls"], bad)
    assert r.returncode == 1
    assert "rejected the credentials" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
    r = _cli(["artifacts", "put", "big", str(big)], bad)
    assert r.returncode == 1 and "credentials" in r.stderr and "Traceback" not in r.stderr

    m = json.loads(art.manifest_path.read_text())
    m["artifacts"]["bucket"] = "no-such-bucket-here"
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps(m))
    r = _cli(["artifacts", "ls", "--manifest", str(missing)], env)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_no_aws_credentials_is_a_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_env("moto", tmp_path, monkeypatch, request)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    capsys.readouterr()
    assert main(["artifacts", "ls"]) == 1
    err = capsys.readouterr().err
    assert "no AWS credentials found" in err and "AWS_ACCESS_KEY_ID" in err and "Traceback" not in err


def test_a_refusing_endpoint_fails_fast_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #15: a dead endpoint cost 9 attempts with back-off (6-10 s) before one line; now 2 attempts."""
    import socket

    import urllib3.util.connection as conn

    from mlstack.artifacts import s3
    from tests.conftest import free_port

    port = free_port()  # bound and released: nothing listens there, connections are refused
    m = {
        "version": 1,
        "project": "t",
        "stack": "t",
        "artifacts": {
            "kind": "s3",
            "bucket": "bkt",
            "region": "us-east-1",
            "endpoint_url": f"http://127.0.0.1:{port}",
        },
        "data": {"kind": "local", "path": str(tmp_path / "x.duckdb")},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }
    path = tmp_path / "dead.json"
    path.write_text(json.dumps(m))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    attempts: list[tuple[str, int]] = []
    real = conn.create_connection

    def counting(address: tuple[str, int], *a: object, **kw: object) -> socket.socket:
        attempts.append(address)
        return real(address, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(conn, "create_connection", counting)
    capsys.readouterr()
    assert main(["artifacts", "ls", "--manifest", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach S3 at http://127.0.0.1:{port}" in err and f"{s3.CONNECT_ATTEMPTS} attempts" in err
    assert "fix:" in err and "Traceback" not in err
    assert len(attempts) == s3.CONNECT_ATTEMPTS == 2
    attempts.clear()
    assert main(["artifacts", "put", "x", __file__, "--manifest", str(path)]) == 1
    assert 0 < len(attempts) <= 2 * s3.CONNECT_ATTEMPTS  # at most two requests before the first error

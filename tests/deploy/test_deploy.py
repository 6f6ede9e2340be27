"""`mlstack up|preview|destroy|outputs` against a stub `pulumi` executable (tests/deploy/stub_pulumi.py).

The Automation API really runs here (real subprocesses, real event-log watcher, real error parsing): only the
CLI binary is a stand-in, so the tests assert the exact command sequence the API sends and what mlstack does
with the answers. A real-CLI round trip (YAML program, file backend) runs only when `pulumi` is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlstack import manifest as mf
from mlstack.cli.main import main

STUB = Path(__file__).with_name("stub_pulumi.py")


@dataclass
class Stub:
    root: Path
    state: Path

    def calls(self) -> list[dict[str, Any]]:
        log = self.state / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def argvs(self) -> list[list[str]]:
        """Each call's argv without the --non-interactive the API puts first."""
        return [[a for a in c["argv"] if a != "--non-interactive"] for c in self.calls()]

    def set_outputs(self, outputs: dict[str, tuple[Any, bool]]) -> None:
        data = {k: {"value": v, "secret": s} for k, (v, s) in outputs.items()}
        (self.state / "outputs.json").write_text(json.dumps(data))

    def reset_calls(self) -> None:
        (self.state / "calls.jsonl").unlink(missing_ok=True)


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stub:
    root = tmp_path / "pulumi-stub"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "pulumi"
    exe.write_text(f"#!{sys.executable}\n" + STUB.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "stub-state"
    state.mkdir()
    monkeypatch.setenv("STUB_STATE", str(state))
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("MLSTACK_PULUMI", "PULUMI_BACKEND_URL", "STUB_FAIL", "PULUMI_CONFIG_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    return Stub(root, state)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    proj = tmp_path / "platform"
    proj.mkdir()
    (proj / "Pulumi.yaml").write_text("name: platform\nruntime: python\n")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # mlstack.json lands in the caller's folder, not the project's
    return proj


def stack_manifest(tmp_path: Path) -> dict[str, Any]:
    m = mf.local_default(tmp_path / "home", project="platform").to_dict()
    m["stack"] = "dev"
    return m


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


UP_TAIL = [
    ["stack", "output", "--json", "--stack", "dev"],
    ["stack", "output", "--json", "--show-secrets", "--stack", "dev"],
    ["stack", "history", "--json", "--show-secrets", "--page-size", "1", "--page", "1", "--stack", "dev"],
]


def test_up_runs_the_automation_api_sequence_and_writes_the_manifest(stub, project, tmp_path, capsys):
    expected = stack_manifest(tmp_path)
    stub.set_outputs({"manifest": (expected, False), "bucket_name": ("ml-artifacts-1", False)})

    code, out, err = run(
        ["up", str(project), "--stack", "dev", "-c", "aws:region=us-west-2", "--secret", "app:token=s3cr3t"],
        capsys,
    )

    assert code == 0, err
    assert stub.argvs() == [
        ["version"],
        ["stack", "select", "--stack", "dev"],
        ["stack", "init", "dev"],
        [
            "config",
            "set-all",
            "--stack",
            "dev",
            "--plaintext",
            "aws:region=us-west-2",
            "--secret",
            "app:token=s3cr3t",
        ],
        ["up", "--yes", "--skip-preview", "--exec-kind", "auto.local", "--stack", "dev"],
        *UP_TAIL,
    ]
    calls = stub.calls()
    # every command but `version` runs non-interactive, in the project folder, flagged as Automation API
    assert all(c["argv"][0] == "--non-interactive" for c in calls[1:])
    assert {c["cwd"] for c in calls[1:]} == {str(project)}
    assert all(c["env"]["PULUMI_AUTOMATION_API"] == "true" for c in calls[1:])
    assert all(c["env"]["PULUMI_SKIP_UPDATE_CHECK"] == "true" for c in calls[1:])

    written = Path("mlstack.json")
    assert json.loads(written.read_text()) == mf.from_dict(expected).to_dict()
    assert mf.load_file(written).stack == "dev"
    assert "Updating (dev)" in err  # the CLI's progress is streamed to stderr
    assert "create" in out and "3" in out
    assert "Traceback" not in out + err


def test_up_on_an_existing_stack_selects_it_and_json_masks_secrets(stub, project, tmp_path, capsys):
    stub.set_outputs({"manifest": (stack_manifest(tmp_path), False), "token": ("hunter2", True)})
    assert run(["up", str(project), "--stack", "dev", "--no-manifest"], capsys)[0] == 0
    stub.reset_calls()
    out_file = tmp_path / "out" / "stack.json"

    code, out, err = run(["up", str(project), "-s", "dev", "--manifest-out", str(out_file), "--json"], capsys)

    assert code == 0, err
    assert stub.argvs()[:3] == [
        ["version"],
        ["stack", "select", "--stack", "dev"],
        ["up", "--yes", "--skip-preview", "--exec-kind", "auto.local", "--stack", "dev"],
    ]  # no `stack init`, no `config set-all` when no --config is given
    doc = json.loads(out)  # stdout is only the JSON document
    assert doc["outputs"]["token"] == "[secret]"
    assert "hunter2" not in out
    assert doc["manifest_path"] == str(out_file)
    assert doc["summary"]["result"] == "succeeded"
    assert doc["summary"]["resource_changes"] == {"create": 3}
    assert mf.load_file(out_file).project == "platform"
    assert not Path("mlstack.json").exists()  # --no-manifest on the first run wrote nothing


def test_message_and_refresh_reach_the_cli(stub, project, capsys):
    assert (
        run(
            ["up", str(project), "-s", "dev", "--no-manifest", "--message", "rotate keys", "--refresh"],
            capsys,
        )[0]
        == 0
    )
    up_call = next(a for a in stub.argvs() if a[0] == "up")
    assert up_call[up_call.index("--message") + 1] == "rotate keys"
    assert "--refresh" in up_call
    assert run(["preview", str(project), "-s", "dev", "--refresh"], capsys)[0] == 0
    assert "--refresh" in stub.argvs()[-1]


def test_up_without_a_manifest_output_is_a_config_error_and_writes_nothing(stub, project, capsys):
    stub.set_outputs({"bucket_name": ("b", False)})
    code, _out, err = run(["up", str(project), "--stack", "dev"], capsys)
    assert code == 2
    assert "no stack output 'manifest'" in err and "bucket_name" in err
    assert "MLStack" in err  # the fix says how to get one
    assert not Path("mlstack.json").exists()


def test_up_with_an_invalid_manifest_names_the_bad_field(stub, project, tmp_path, capsys):
    bad = stack_manifest(tmp_path)
    bad["artifacts"] = {"kind": "s3"}  # bucket missing
    stub.set_outputs({"manifest": (json.dumps(bad), False)})  # exported as JSON text: parsed, then validated
    code, _out, err = run(["up", str(project), "--stack", "dev"], capsys)
    assert code == 2
    assert "artifacts" in err and "bucket" in err
    assert not Path("mlstack.json").exists()


def test_a_failed_update_is_one_error_with_the_cli_reason(stub, project, tmp_path, capsys, monkeypatch):
    Path("mlstack.json").write_text("{}")  # a previous manifest must survive a failed update untouched
    stub.set_outputs({"manifest": (stack_manifest(tmp_path), False)})
    monkeypatch.setenv("STUB_FAIL", "up")
    code, out, err = run(["up", str(project), "--stack", "dev", "--json"], capsys)
    assert code == 1
    assert json.loads(out)["error"] == "DeployError"
    assert "`pulumi up` failed for stack 'dev'" in err and "update failed" in err
    assert "Traceback" not in err
    assert Path("mlstack.json").read_text() == "{}"


def test_a_locked_stack_says_so_and_how_to_unlock(stub, project, capsys, monkeypatch):
    monkeypatch.setenv("STUB_FAIL", "locked")
    code, _, err = run(["up", str(project), "--stack", "dev"], capsys)
    assert code == 1
    assert "locked by another update" in err and "pulumi cancel --stack dev" in err


def test_preview_reports_the_change_summary_from_the_event_log(stub, project, capsys):
    code, out, err = run(["preview", str(project), "--stack", "dev", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == {"stack": "dev", "changes": {"create": 3}}
    preview_call = stub.argvs()[-1]
    assert preview_call[:3] == ["preview", "--exec-kind", "auto.local"]
    assert "--event-log" in preview_call
    assert not Path("mlstack.json").exists()


def test_outputs_mask_secrets_unless_asked(stub, project, tmp_path, capsys):
    assert run(["up", str(project), "--stack", "dev", "--no-manifest"], capsys)[0] == 0
    stub.set_outputs({"bucket_name": ("ml-artifacts-1", False), "sf_private_key": ("PEM-TEXT", True)})

    code, out, _ = run(["outputs", str(project), "--stack", "dev", "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"bucket_name": "ml-artifacts-1", "sf_private_key": "[secret]"}

    code, out, _ = run(["outputs", str(project), "--stack", "dev"], capsys)
    assert code == 0
    assert "ml-artifacts-1" in out and "[secret]" in out and "PEM-TEXT" not in out

    code, out, _ = run(["outputs", str(project), "--stack", "dev", "--json", "--show-secrets"], capsys)
    assert json.loads(out)["sf_private_key"] == "PEM-TEXT"


def test_outputs_can_write_the_manifest_of_a_stack_deployed_with_pulumi_up(stub, project, tmp_path, capsys):
    assert run(["up", str(project), "--stack", "dev", "--no-manifest"], capsys)[0] == 0
    m = stack_manifest(tmp_path)
    stub.set_outputs({"manifest": (m, False)})
    code, out, err = run(
        ["outputs", str(project), "--stack", "dev", "--manifest-out", "m.json", "--json"], capsys
    )
    assert code == 0, err
    assert mf.load_file("m.json").to_dict() == mf.from_dict(m).to_dict()
    assert json.loads(out)["manifest"]["stack"] == "dev"
    stub.set_outputs({"other": (1, False)})
    code, _, err = run(["outputs", str(project), "--stack", "dev", "--manifest-out", "m.json"], capsys)
    assert code == 2 and "no stack output 'manifest'" in err


def test_outputs_and_destroy_never_create_a_missing_stack(stub, project, capsys):
    for verb in (["outputs"], ["destroy", "--yes"]):
        code, _out, err = run([verb[0], str(project), "--stack", "nope", *verb[1:]], capsys)
        assert code == 1
        assert "stack 'nope'" in err and "does not exist" in err
        assert "mlstack up" in err
    assert not any(a[:2] == ["stack", "init"] for a in stub.argvs())


def test_destroy_needs_confirmation_then_runs_and_can_remove_the_stack(stub, project, capsys, monkeypatch):
    assert run(["up", str(project), "--stack", "dev", "--no-manifest"], capsys)[0] == 0
    stub.reset_calls()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    code, out, err = run(["destroy", str(project), "--stack", "dev"], capsys)
    assert code == 2 and "--yes" in err
    assert stub.argvs() == []  # nothing ran

    code, out, err = run(
        ["destroy", str(project), "--stack", "dev", "--yes", "--remove-stack", "--json"], capsys
    )
    assert code == 0, err
    argvs = stub.argvs()
    assert ["destroy", "--skip-preview", "--yes", "--exec-kind", "auto.local", "--stack", "dev"] in argvs
    assert argvs[-1][:3] == ["stack", "rm", "--yes"]
    doc = json.loads(out)
    assert doc["removed_stack"] is True and doc["summary"]["resource_changes"] == {"delete": 3}
    state = json.loads((stub.state / "state.json").read_text())
    assert "dev" not in state["stacks"]


def test_no_pulumi_cli_is_a_clear_error_with_install_instructions(project, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home-without-pulumi"))
    monkeypatch.delenv("MLSTACK_PULUMI", raising=False)
    for verb in ("up", "preview", "outputs"):
        code, _out, err = run([verb, str(project), "--stack", "dev"], capsys)
        assert code == 1
        assert "no `pulumi` executable was found" in err
        assert "https://get.pulumi.com" in err and "brew install pulumi" in err
        assert "Traceback" not in err


def test_mlstack_pulumi_points_at_any_executable(stub, project, tmp_path, capsys, monkeypatch):
    # an executable outside a bin/ folder still works (the API is given the layout it expects)
    elsewhere = tmp_path / "pulumi-3.200"
    shutil.copy(stub.root / "bin" / "pulumi", elsewhere)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("MLSTACK_PULUMI", str(elsewhere))
    assert run(["preview", str(project), "--stack", "dev"], capsys)[0] == 0
    monkeypatch.setenv("MLSTACK_PULUMI", str(tmp_path / "missing"))
    code, _, err = run(["preview", str(project), "--stack", "dev"], capsys)
    assert code == 1 and "MLSTACK_PULUMI" in err


def test_a_file_backend_without_passphrase_is_refused_before_running(stub, project, tmp_path, capsys):
    code, _, err = run(
        ["up", str(project), "--stack", "dev", "--backend", f"file://{tmp_path}/state"], capsys
    )
    assert code == 2 and "PULUMI_CONFIG_PASSPHRASE" in err
    assert stub.argvs() == []


def test_a_stack_with_a_kms_secrets_provider_needs_no_passphrase(stub, project, tmp_path, capsys):
    (project / "Pulumi.dev.yaml").write_text("secretsprovider: awskms://alias/pulumi?region=us-west-2\n")
    url = f"file://{tmp_path}/state"
    assert run(["preview", str(project), "--stack", "dev", "--backend", url], capsys)[0] == 0


def test_the_backend_option_reaches_the_cli(stub, project, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
    url = f"file://{tmp_path}/state"
    assert run(["preview", str(project), "--stack", "dev", "--backend", url], capsys)[0] == 0
    assert {c["env"]["PULUMI_BACKEND_URL"] for c in stub.calls()[1:]} == {url}


def test_a_folder_without_pulumi_yaml_is_a_usage_error(stub, tmp_path, capsys):
    code, _, err = run(["up", str(tmp_path), "--stack", "dev"], capsys)
    assert code == 2 and "Pulumi.yaml" in err
    assert stub.argvs() == []


def test_bad_config_pair_is_a_usage_error(stub, project, capsys):
    code, _, err = run(["up", str(project), "--stack", "dev", "--config", "no-equals"], capsys)
    assert code == 2 and "--config" in err


@pytest.mark.pulumi_cli
@pytest.mark.skipif(shutil.which("pulumi") is None, reason="needs the real pulumi CLI on PATH")
def test_real_cli_round_trip_with_a_yaml_program(tmp_path, capsys, monkeypatch):
    """A provider-free YAML program on a file backend: up writes the manifest, outputs, destroy."""
    proj = tmp_path / "yaml-stack"
    proj.mkdir()
    m = stack_manifest(tmp_path)
    (proj / "Pulumi.yaml").write_text(
        "name: mlstack-real-cli\nruntime: yaml\noutputs:\n  manifest: " + json.dumps(m) + "\n  answer: 42\n"
    )
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.chdir(tmp_path)
    backend = f"file://{tmp_path / 'state'}"
    code, out, err = run(["up", str(proj), "--stack", "dev", "--backend", backend], capsys)
    assert code == 0, err
    assert mf.load_file(tmp_path / "mlstack.json").to_dict() == mf.from_dict(m).to_dict()
    code, out, err = run(["outputs", str(proj), "--stack", "dev", "--backend", backend, "--json"], capsys)
    assert code == 0 and json.loads(out)["answer"] == 42
    code, out, err = run(
        ["destroy", str(proj), "-s", "dev", "--backend", backend, "--yes", "--remove-stack"], capsys
    )
    assert code == 0, err

"""A verb whose extra is missing says which one, the same way, in one line; `mlstack doctor` lists them all.

The missing packages are real: the CLI runs in a subprocess whose import system refuses them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlstack import manifest, registry
from mlstack.doctor import environment

ROOT = Path(__file__).resolve().parents[2]

_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Missing())
from mlstack.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def run_without(blocked: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, ",".join(blocked), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_the_extras_table_matches_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    offered = set(extras) - {"dev", "bench", "all"}
    assert set(registry.EXTRA_MODULES) == offered
    assert set(registry.EXTRA_USES) == offered
    assert registry.extra_for_module("pulumi_aws") == "components"
    assert registry.extra_for_module("hera.workflows") == "k8s"
    assert registry.extra_for_module("sklearn") == "examples"
    assert registry.extra_for_module("snowflake.connector") == "snowflake"
    assert registry.extra_for_module("yaml") is None  # a core dependency: no extra to name


@pytest.mark.parametrize(
    ("blocked", "args", "verb", "extra"),
    [
        (["pulumi"], ["plan", "stacks/aws-snowflake"], "mlstack plan", "components"),
        (
            ["pulumi"],
            ["plan", "stacks/aws-snowflake", "--graph", "html", "--out", "x.html"],
            "mlstack plan",
            "components",
        ),
        (
            ["pulumi"],
            ["doctor", "--preflight", "stacks/aws-snowflake"],
            "mlstack doctor --preflight",
            "components",
        ),
        (["boto3"], ["doctor", "--preflight", "stacks/aws-snowflake"], "mlstack doctor --preflight", "aws"),
        (["pulumi"], ["up", "stacks/aws-snowflake", "--stack", "prod"], "mlstack up", "components"),
        (["hera"], ["render", "examples/gpu-finetune", "--argo"], "mlstack render", "k8s"),
        (["duckdb"], ["data", "query", "select 1"], "mlstack data query", "local"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    blocked: list[str], args: list[str], verb: str, extra: str, tmp_path: Path
) -> None:
    for folder in ("stacks", "examples"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    r = run_without(blocked, *args, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if not line.startswith("stack: ")]
    assert lines == [
        f"error: {verb} needs mlstack[{extra}] (the Python package '{blocked[0]}' is not installed): "
        f"pip install 'mlstack[{extra}]'"
    ], r.stderr
    assert "report" not in r.stderr and "Traceback" not in r.stderr


def test_json_carries_the_fix(tmp_path: Path) -> None:
    (tmp_path / "stacks").symlink_to(ROOT / "stacks")
    r = run_without(["pulumi"], "plan", "stacks/aws-snowflake", "--json", cwd=tmp_path)
    doc = json.loads(r.stdout)
    assert doc["error"] == "MissingExtraError" and doc["fix"] == "pip install 'mlstack[components]'"
    assert doc["exit_code"] == r.returncode == 1


def test_doctor_lists_every_missing_extra(tmp_path: Path) -> None:
    r = run_without(["pulumi", "hera", "kubernetes", "boto3"], "doctor", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (f,) = [f for f in json.loads(r.stdout)["findings"] if f["check"] == "environment.extras"]
    assert f["status"] == "warn"
    for extra in ("components", "k8s", "aws", "lakehouse"):
        assert f"{extra} (" in f["detail"]
    assert "local (" not in f["detail"] and "examples (" not in f["detail"]
    assert f["fix"].startswith("pip install 'mlstack[components,k8s,aws,")


def test_optional_extras_finding() -> None:
    m = manifest.local_default("/tmp/nowhere")
    every = environment.optional_extras_finding(m, installed=lambda mod: True)
    assert every.status == "ok"
    some = environment.optional_extras_finding(m, installed=lambda mod: not mod.startswith("pulumi"))
    assert some.status == "warn" and some.detail.startswith("not installed: components (plan")
    assert some.fix and some.fix.startswith("pip install 'mlstack[components]'")


def test_every_missing_extra_of_a_verb_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "stacks").symlink_to(ROOT / "stacks")
    r = run_without(["pulumi", "boto3"], "doctor", "--preflight", "stacks/aws-snowflake", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "error: mlstack doctor --preflight needs mlstack[components,aws] (the Python packages 'pulumi', "
        "'boto3' are not installed): pip install 'mlstack[components,aws]'"
    ]

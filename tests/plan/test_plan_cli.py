"""`mlstack plan`: text and JSON output, exit codes, --graph files, usage errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlstack.cli.main import main

BAD = """
import pulumi_aws as aws
aws.s3.Bucket("open", bucket="open-bucket")
"""
GOOD = """
import pulumi, pulumi_aws as aws

class Box(pulumi.ComponentResource):
    def __init__(self, name):
        super().__init__("demo:box:Box", name, None, None)
        k = aws.kms.Key(f"{name}-key", enable_key_rotation=True, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})

Box("one")
Box("two")
"""


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_high_finding_exits_1_and_no_fail_reports_only(make_stack, capsys) -> None:
    folder = make_stack(BAD, {})
    assert main(["plan", str(folder), "--json"]) == 1
    d = _json(capsys)
    assert d["notice"] == "offline estimate, not a Pulumi preview" and d["exit_code"] == 1
    assert {"S3-001", "S3-002", "S3-004"} <= {f["rule_id"] for f in d["findings"]}
    assert main(["plan", str(folder), "--json", "--no-fail"]) == 0
    assert _json(capsys)["exit_code"] == 0


def test_text_output_says_offline_estimate(make_stack, capsys) -> None:
    assert main(["plan", str(make_stack(GOOD, {}))]) == 0
    out = capsys.readouterr().out
    assert "offline estimate, not a Pulumi preview" in out
    assert "Policy: no findings" in out and "Cost estimate" in out and "one" in out and "two" in out


def test_skip_a_rule_and_unknown_rule_is_usage_error(make_stack, capsys) -> None:
    folder = make_stack(BAD, {})
    assert (
        main(
            [
                "plan",
                str(folder),
                "--json",
                "--skip",
                "S3-001",
                "--skip",
                "S3-002",
                "--skip",
                "S3-004",
                "--skip",
                "S3-006",
            ]
        )
        == 0
    )
    assert {f["severity"] for f in _json(capsys)["findings"]} <= {"medium", "low"}
    assert main(["plan", str(folder), "--skip", "NOPE-1"]) == 2
    assert "no such rule" in capsys.readouterr().err


@pytest.mark.parametrize(
    "fmt,check",
    [
        ("mermaid", lambda t: t.startswith("flowchart LR") and t.count("subgraph ") == 2),
        ("dot", lambda t: t.startswith("digraph mlstack") and t.count("subgraph cluster_") == 2),
        ("html", lambda t: t.startswith("<!doctype html>") and t.count('class="node component"') == 2),
    ],
)
def test_graph_formats(make_stack, tmp_path: Path, capsys, fmt: str, check) -> None:
    out = tmp_path / f"plan.{fmt}"
    assert main(["plan", str(make_stack(GOOD, {})), "--graph", fmt, "--out", str(out), "--json"]) == 0
    assert _json(capsys)["graph"] == {"format": fmt, "file": str(out)}
    assert check(out.read_text())


def test_graph_needs_out_and_bad_path_is_usage_error(make_stack, tmp_path: Path, capsys) -> None:
    assert main(["plan", str(make_stack(GOOD, {})), "--graph", "dot"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["plan", str(tmp_path / "missing"), "--json"]) == 2
    assert _json(capsys)["error"] == "UsageError"


def test_html_is_self_contained(make_stack, tmp_path: Path) -> None:
    out = tmp_path / "p.html"
    assert main(["plan", str(make_stack(GOOD, {})), "--graph", "html", "--out", str(out)]) == 0
    page = out.read_text()
    # nothing is fetched: no src/href to any URL, no @import, and a CSP that forbids network loads
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "default-src 'none'" in page
    assert "offline estimate, not a Pulumi preview" in page


def test_tree_prints_every_resource_under_its_component(make_stack, capsys) -> None:
    assert main(["plan", str(make_stack(GOOD, {})), "--tree"]) == 0
    out = capsys.readouterr().out
    assert "one-key" in out and "two-key" in out and "aws:kms/key:Key" in out

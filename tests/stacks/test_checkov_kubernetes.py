"""checkov's ``kubernetes`` framework on every Kubernetes object of every shipped stack.

The objects are the recorded inputs (what Pulumi would apply), dumped as YAML, scanned by checkov from its own
virtualenv (tests/support/checkov.py). Every failed check must be a deliberate exception listed, with its
reason, in docs/policy.md ("Deliberate exceptions" table: check id, object, reason); and every listed
exception must still fail somewhere, so the list never outlives the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.components.test_k8s_validate import k8s_objects
from tests.support import checkov

REPO = Path(__file__).resolve().parents[2]
STACKS = ("stacks/aws-lakehouse", "stacks/aws-snowflake", "stacks/aws-databricks", "examples/platform-repo")
ROW = re.compile(r"^\| (CKV2?_K8S_\d+) \| `([A-Za-z]+)/([a-z0-9.-]+)` \| (.+) \|$")


def documented_exceptions() -> dict[tuple[str, str, str], str]:
    out = {}
    for line in (REPO / "docs" / "policy.md").read_text().splitlines():
        m = ROW.match(line.strip())
        if m:
            out[(m.group(1), m.group(2), m.group(3))] = m.group(4)
    return out


def _key(check: dict) -> tuple[str, str, str]:
    """(check id, kind, name) from checkov's resource id ``Kind.namespace.name`` (or ``Pod.ns.name.labels``)."""
    parts = str(check["resource"]).split(".")
    kind = parts[0]
    name = parts[2] if len(parts) > 2 else parts[-1]
    if kind == "Pod":  # graph checks report the pod template of a workload by its name
        kind = "PodTemplate"
    return check["check_id"], kind, name


@pytest.mark.slow
def test_only_documented_exceptions_fail(tmp_path: Path) -> None:
    from mlstack.plan import run_plan

    for stack in STACKS:
        folder = tmp_path / stack.replace("/", "-")
        folder.mkdir()
        objs = k8s_objects(run_plan(REPO / stack, None).recording)
        assert any(o["kind"] == "NetworkPolicy" for o in objs), stack
        for i, o in enumerate(objs):
            (folder / f"{i:03d}-{o['kind'].lower()}.yaml").write_text(yaml.safe_dump(o, sort_keys=False))
    reports = checkov.scan(tmp_path, "kubernetes")
    assert checkov.summary(reports)["parsing_errors"] == 0
    assert len(checkov.passed_checks(reports)) > 100
    allowed = documented_exceptions()
    assert allowed, (
        "docs/policy.md lists no deliberate exceptions (table rows | CKV_K8S_n | `Kind/name` | why |)"
    )
    failed = {_key(c) for c in checkov.failed_checks(reports)}
    undocumented = sorted(failed - set(allowed))
    assert not undocumented, f"checkov failures not listed in docs/policy.md: {undocumented}"
    stale = sorted(set(allowed) - failed)
    assert not stale, f"docs/policy.md lists exceptions that no longer fail (remove them): {stale}"


def test_the_exception_table_is_parsed() -> None:
    rows = documented_exceptions()
    assert all(reason.strip() for reason in rows.values())
    assert ("CKV_K8S_23", "DaemonSet", "nvidia-device-plugin") in rows

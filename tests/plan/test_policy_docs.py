"""docs/policy.md lists every rule exactly as the code defines it."""

from __future__ import annotations

from pathlib import Path

from mlstack.plan.policy import catalog_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def test_catalog_in_docs_matches_the_rules() -> None:
    text = DOC.read_text()
    documented = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and line[2:3].isupper() and "-0" in line[:12]
    ]
    assert documented == catalog_rows(), "regenerate the table in docs/policy.md from catalog_rows()"

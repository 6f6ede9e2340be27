"""Fixtures for the data-layer tests: one stack manifest per adapter, sources closed after each test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ADAPTERS = [
    "local",
    pytest.param("snowflake", marks=pytest.mark.fakesnow),
    "databricks",
]


def manifest_dict(data_section: dict[str, Any], root: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "project": "test",
        "stack": "test",
        "artifacts": {"kind": "local", "root": str(root / "artifacts")},
        "data": data_section,
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }


@pytest.fixture
def data_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The manifest data section of the adapter under test (param: local, snowflake, databricks)."""
    kind = request.param
    if kind == "local":
        return {
            "kind": "local",
            "path": str(tmp_path / "stack" / "warehouse.duckdb"),
            "lake_root": str(tmp_path / "stack" / "lake"),
        }
    if kind == "snowflake":
        conn = request.getfixturevalue("snowflake_connection")
        return conn.manifest_section()  # type: ignore[no-any-return]
    if kind == "databricks":
        fake = request.getfixturevalue("fake_databricks")
        return fake.manifest_section()  # type: ignore[no-any-return]
    raise AssertionError(kind)


@pytest.fixture
def stack(data_section: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A manifest file for the adapter under test, in force through $MLSTACK_MANIFEST."""
    import mlstack.data

    path = tmp_path / "mlstack.json"
    path.write_text(json.dumps(manifest_dict(data_section, tmp_path)), encoding="utf-8")
    monkeypatch.setenv("MLSTACK_MANIFEST", str(path))
    mlstack.data.reset()
    yield path
    mlstack.data.reset()

"""Helpers for pipeline tests: write a small pipeline file into a temporary folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[[str, str], Path]:
    counter = {"n": 0}

    def _write(body: str, name: str = "pipeline.py") -> Path:
        counter["n"] += 1
        folder = tmp_path / f"p{counter['n']}"
        folder.mkdir()
        path = folder / name
        path.write_text("from mlstack.pipeline import Pipeline, step\n" + textwrap.dedent(body))
        return path

    return _write

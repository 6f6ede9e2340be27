"""Helpers for plan tests: write a small Pulumi project folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def make_stack(tmp_path: Path) -> Callable[..., Path]:
    """``make_stack(program_source, config={...}, name="demo")`` -> the folder (Pulumi.yaml, __main__.py,
    Pulumi.example.yaml)."""

    def _make(program: str, config: dict | None = None, name: str = "demo", runtime: str = "python") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "Pulumi.yaml").write_text(f"name: {name}\nruntime: {runtime}\n")
        (folder / "__main__.py").write_text(textwrap.dedent(program))
        if config is not None:
            import yaml

            (folder / "Pulumi.example.yaml").write_text(yaml.safe_dump({"config": config}))
        return folder

    return _make

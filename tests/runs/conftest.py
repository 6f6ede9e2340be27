"""Fixtures of the run-record tests: a fresh stack per test on each store tier (local folder, moto, SeaweedFS),
MLSTACK_MANIFEST pointing at it, and helpers to write pipelines and run the CLI in-process."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.artifacts.conftest import BACKENDS, StoreEnv, make_env


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    import mlstack.artifacts as arts
    from mlstack.runs import _client

    arts._stores.clear()
    _client._stores.clear()
    yield
    for st in arts._stores.values():
        st.close()
    arts._stores.clear()
    _client._stores.clear()


@pytest.fixture(params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_home: Path
) -> StoreEnv:
    """A fresh artifact store on each tier, as the manifest in force (run records go there too)."""
    return make_env(request.param, tmp_path, monkeypatch, request)


@pytest.fixture
def local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, local_home: Path
) -> StoreEnv:
    return make_env("local", tmp_path, monkeypatch, request)


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a pipeline module (``from mlstack.pipeline import Pipeline, step`` prepended)."""

    def _write(body: str, folder: str = "pipe") -> Path:
        d = tmp_path / folder
        d.mkdir(exist_ok=True)
        path = d / "pipeline.py"
        path.write_text("from mlstack.pipeline import Pipeline, step\n" + textwrap.dedent(body))
        from mlstack.pipeline import spec

        spec._modules.pop(str(path.resolve()), None)  # a rewritten file is loaded afresh
        return path

    return _write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``mlstack ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from mlstack.cli.main import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


def cli_json(cli: Callable[..., tuple[int, str, str]], *args: str) -> Any:
    code, out, err = cli(*args, "--json")
    assert code == 0, (code, out, err)
    return json.loads(out)

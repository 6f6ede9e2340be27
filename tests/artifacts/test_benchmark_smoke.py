"""A tiny run of benchmarks/artifacts.py's code path (the real run is not part of the suite)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "artifacts.py"


@pytest.mark.seaweedfs
def test_benchmark_code_path_on_tiny_sizes(
    seaweedfs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("bench_artifacts", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    args = bench.parse_args(
        [
            "--small-count",
            "5",
            "--small-kib",
            "4",
            "--large-mib",
            "2",
            "--repeat",
            "1",
            "--workdir",
            str(tmp_path),
        ]
    )
    results = bench.run(args, server=seaweedfs)
    t = results["seconds"]
    for key in (
        "small_put_mlstack",
        "small_get_boto3",
        "large_get_mlstack",
        "large_put_boto3",
        "local_put_mlstack",
    ):
        assert t[key] > 0
    text = bench.table(results)
    assert "5 x 4 KiB put" in text and "SHA-256 alone" in text

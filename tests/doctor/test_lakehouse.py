"""Lakehouse data checks (Glue database, Athena workgroup) against moto."""

from __future__ import annotations

import boto3
import pytest

from mlstack import manifest
from mlstack.doctor import data
from mlstack.doctor.core import Sink

SECTION = manifest.LakehouseData(
    database="ml_lake", workgroup="ml", location="s3://ml-lake-bucket/tables", region="us-east-1"
)


def _run() -> dict[str, tuple[str, str, str | None]]:
    sink = Sink()
    data.lakehouse_findings(SECTION, 30, sink)
    return {f.check: (f.status, f.detail, f.fix) for f in sink.close()}


def test_lakehouse(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)
    got = _run()
    assert got["data.connection"][0] == "fail" and "mlstack up" in (got["data.connection"][2] or "")
    boto3.client("glue", region_name="us-east-1").create_database(DatabaseInput={"Name": "ml_lake"})
    got = _run()
    assert got["data.connection"][0] == "ok" and got["data.warehouse"][0] == "fail"
    athena = boto3.client("athena", region_name="us-east-1")
    athena.create_work_group(Name="ml", Configuration={"EnforceWorkGroupConfiguration": True})
    got = _run()
    assert got["data.warehouse"][0] == "ok", got

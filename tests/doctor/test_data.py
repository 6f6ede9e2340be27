"""Data checks: local DuckDB, Snowflake against fakesnow's server, Databricks against the FAKE Statement
Execution server (tests/support/databricks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack import manifest
from mlstack.doctor import data
from mlstack.doctor.core import Check, Sink, run_checks


def _sink_run(fn, *args) -> dict[str, tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
    sink = Sink()
    fn(*args, sink)
    return {f.check: (f.status, f.detail, f.fix) for f in sink.close()}


def test_local_duckdb(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    db = tmp_path / "data" / "w.duckdb"
    section = manifest.LocalData(path=str(db), lake_root=str(tmp_path / "data" / "lake"))
    got = {f.check: f.status for f in data.local_findings(section)}
    assert got == {"data.connection": "warn", "data.lake": "warn"}  # nothing initialised yet
    db.parent.mkdir()
    con = duckdb.connect(str(db))
    con.execute("create table t as select 1 as x")
    con.close()
    (tmp_path / "data" / "lake").mkdir()
    got2 = {f.check: (f.status, f.detail) for f in data.local_findings(section)}
    assert got2["data.connection"][0] == "ok"
    assert got2["data.select"] == ("ok", "SELECT 1 returned 1; 1 tables")
    assert got2["data.lake"][0] == "ok"


def test_local_duckdb_corrupt_file(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    db = tmp_path / "w.duckdb"
    db.write_bytes(b"this is not a duckdb file" * 100)
    (f,) = data.local_findings(manifest.LocalData(path=str(db)))
    assert f.status == "fail" and f.check == "data.connection" and "mv" in (f.fix or "")


@pytest.mark.fakesnow
def test_snowflake_against_fakesnow(snowflake_connection) -> None:  # type: ignore[no-untyped-def]
    import snowflake.connector

    sc = snowflake_connection
    setup = snowflake.connector.connect(**sc.server.connect_kwargs())
    setup.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {sc.database}")
    setup.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {sc.database}.{sc.schema}")
    setup.cursor().execute(f"CREATE TABLE {sc.database}.{sc.schema}.features (id INT)")
    setup.close()
    section = manifest.SnowflakeData.model_validate(sc.manifest_section())
    got = _sink_run(data.snowflake_findings, section, 30)
    assert got["data.connection"][0] == "ok"
    assert got["data.select"][0] == "ok"
    assert got["data.read"][0] == "ok" and "(1 tables)" in got["data.read"][1]
    assert "data.warehouse" in got and "data.role" in got
    # fakesnow creates a missing database/schema on connect, so the denied case is tested on a stub below


class _Cursor:
    """A connector cursor that sees no schema (what a role without USAGE on it sees)."""

    def __init__(self) -> None:
        self.sql = ""

    def execute(self, sql: str, params: object = None) -> None:
        self.sql = sql

    def fetchone(self) -> tuple:
        if "CURRENT_ROLE" in self.sql:
            return ("ML_JOBS",)
        if "CURRENT_WAREHOUSE" in self.sql:
            return (None,)
        if "COUNT(*)" in self.sql:
            return (0,)
        return (1,)


class _Conn:
    def cursor(self) -> _Cursor:
        return _Cursor()

    def close(self) -> None:
        pass


def test_snowflake_no_warehouse_and_schema_not_visible() -> None:
    pytest.importorskip("snowflake.connector")
    section = manifest.SnowflakeData(
        account="acme", warehouse="ML_WH", database="ML", schema="FEATURES", role="ML_JOBS", user="SVC"
    )
    sink = Sink()
    data.snowflake_findings(section, 5, sink, connect=lambda **kw: _Conn())
    got = {f.check: f for f in sink.close()}
    assert got["data.warehouse"].status == "fail"
    assert got["data.warehouse"].fix == "GRANT USAGE ON WAREHOUSE ML_WH TO ROLE ML_JOBS"
    assert got["data.read"].status == "fail" and "not visible" in got["data.read"].detail
    assert "GRANT USAGE ON SCHEMA ML.FEATURES TO ROLE ML_JOBS" in (got["data.read"].fix or "")


def test_snowflake_connection_refused_is_a_finding(closed_port: int, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("snowflake.connector")
    home = tmp_path / "sf"
    home.mkdir()
    toml = home / "connections.toml"
    toml.write_text(
        f'[dead]\naccount = "acme"\nuser = "u"\npassword = "p"\nhost = "127.0.0.1"\nport = {closed_port}\n'
        'protocol = "http"\n'
    )
    toml.chmod(0o600)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    section = manifest.SnowflakeData(
        account="acme", warehouse="wh", database="db", schema="s", role="r", user="u", connection_name="dead"
    )
    import snowflake.connector

    asked: list[dict] = []

    def connect(**kw):  # type: ignore[no-untyped-def]
        asked.append(kw)
        return snowflake.connector.connect(**kw)

    report = run_checks(
        [Check("data.connection", lambda s, t: data.snowflake_findings(section, t, s, connect=connect))],
        timeout=3,
    )
    # bounded by the doctor's timeout, said to the connector (behaviour, not seconds: the machine may be loaded)
    (kw,) = asked
    assert kw["login_timeout"] == 3
    assert all(v == 3 for k, v in kw.items() if k.endswith("_timeout"))
    (f,) = report.findings
    assert f.status == "fail" and f.check == "data.connection" and f.fix


def test_databricks_against_the_fake_server(fake_databricks) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("databricks.sdk")
    fake_databricks.server.sql("CREATE TABLE features AS SELECT 1 AS id")
    section = manifest.DatabricksData.model_validate(fake_databricks.manifest_section())
    got = _sink_run(data.databricks_findings, section, 30)
    assert got["data.connection"][0] == "ok", got
    assert got["data.select"] == ("ok", "SELECT 1 on SQL warehouse fake-warehouse-1 returned 1", None)
    assert got["data.role"][0] == "ok" and "fake-user@example.com" in got["data.role"][1]
    assert got["data.read"][0] == "ok", got


def test_databricks_bad_token_names_the_profile(fake_databricks) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("databricks.sdk")
    fake_databricks.server.write_config(fake_databricks.config_file, token="dapi-wrong")
    section = manifest.DatabricksData.model_validate(fake_databricks.manifest_section())
    got = _sink_run(data.databricks_findings, section, 30)
    status, _detail, fix = got["data.connection"]
    assert status == "fail" and "[fake] profile of ~/.databrickscfg" in (fix or "")


def test_databricks_wrong_warehouse(fake_databricks) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("databricks.sdk")
    section = manifest.DatabricksData.model_validate(
        {**fake_databricks.manifest_section(), "warehouse_id": "no-such-warehouse"}
    )
    got = _sink_run(data.databricks_findings, section, 30)
    assert got["data.connection"][0] == "fail" and "warehouses list" in (got["data.connection"][2] or "")

"""Read means read (issue 12, finding 5): `mlstack data query` and `mlstack.data.read()` run one query.

Local: DuckDB's parser decides what a statement is, and queries run with file and network access off (so
COPY/ATTACH/INSTALL/LOAD/EXPORT and read_text() fail even inside a SELECT), while the adapter's own reads
of its Delta tables and DuckDB file still work. Warehouses: the text is checked before it is sent
(Snowflake through fakesnow's server, Databricks through the FAKE Statement Execution server).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

import mlstack.data
from mlstack.cli.main import main
from mlstack.data.readonly import LEXIS, statement_kind
from mlstack.errors import DataError, UsageError
from tests.support.databricks import FakeDatabricks
from tests.support.snowflake import SnowflakeConnection


@pytest.fixture
def local(local_home: Path) -> Path:
    mlstack.data.reset()
    mlstack.data.write("sales", {"id": [1, 2, 3], "amount": [10.0, 20.0, 30.0]})
    db = local_home / "data" / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table regions as select 1 as id, 'north' as name")
    con.close()
    yield local_home
    mlstack.data.reset()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out + cap.err


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1) TO '{out}'",
        "select 1; COPY (SELECT 1) TO '{out}'",
        "select 1;\n-- two\nCOPY (SELECT * FROM sales) TO '{out}' (FORMAT csv)",
        "EXPORT DATABASE '{dir}'",
        "ATTACH '{dir}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "CREATE TABLE t AS SELECT 1",
        "WITH a AS (SELECT 1 AS x) INSERT INTO sales SELECT * FROM a",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
        "CALL pragma_version()",
    ],
)
def test_cli_query_refuses_what_is_not_one_read(
    local: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str
) -> None:
    out, folder = tmp_path / "leak.csv", tmp_path / "export"
    code, text = cli(capsys, "data", "query", sql.format(out=out, dir=folder))
    assert code == 2, text
    assert "Traceback" not in text and "fix:" in text
    assert not out.exists() and not folder.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_text('/etc/hostname')",
        "select * from read_csv('{csv}')",
        "select * from read_parquet('{lake}/sales/*.parquet')",
        "select * from glob('/etc/*')",
        "select * from query('select content from read_text(''/etc/hostname'')')",
    ],
)
def test_sql_cannot_reach_the_machines_files(
    local: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str
) -> None:
    csv = tmp_path / "secret.csv"
    csv.write_text("token\nhunter2\n", encoding="utf-8")
    code, text = cli(capsys, "data", "query", sql.format(csv=csv, lake=local / "data" / "lake"))
    assert code == 1, text
    assert "hunter2" not in text and "disabled" in text and "Traceback" not in text
    with pytest.raises(DataError, match="disabled"):
        mlstack.data.read_arrow(sql.format(csv=csv, lake=local / "data" / "lake"))


def test_library_read_refuses_copy_and_writes_nothing(local: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    for sql in (f"COPY sales TO '{out}'", f"select 1; copy sales to '{out}'"):
        with pytest.raises(UsageError):
            mlstack.data.read(sql)
        with pytest.raises(UsageError):
            mlstack.data.shards(sql)
    assert not out.exists()


def test_reads_still_work_lake_tables_versions_and_the_duckdb_file(
    local: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlstack.data.write("sales", {"id": [4], "amount": [40.0]})
    assert mlstack.data.read_arrow("sales", version=0).num_rows == 3
    assert mlstack.data.read_arrow("select count(*) n from sales").column("n").to_pylist() == [4]
    q = "with s as (select * from sales) select r.name, sum(s.amount) t from s join regions r using (id) group by 1"
    assert mlstack.data.read_arrow(q).to_pylist() == [{"name": "north", "t": 10.0}]
    assert mlstack.data.read_arrow("regions").num_rows == 1  # a native DuckDB table, read-only connection
    for sql in (
        "describe sales",
        "show tables",
        "summarize sales",
        "from sales",
        "explain select * from sales",
    ):
        assert mlstack.data.read_arrow(sql).num_rows > 0, sql
    code, text = cli(capsys, "data", "query", "select sum(amount) as s from sales; ", "--json")
    assert code == 0 and json.loads(text)["rows"] == [{"s": 100.0}]


# ---------------------------------------------------------------- the warehouse check (no server needed)
@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("select 1", "SELECT"),
        ("  -- note\n SELECT 1 -- tail", "SELECT"),
        ("with a as (select 1), b(x) as (select 2) select * from a, b", "SELECT"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "INSERT"),
        ("(select 1) union all (select 2)", "SELECT"),
        ("select 'a;b', \"c;d\" from t;", "SELECT"),
        ("select 'it\\'s; drop table t' from t", "SELECT"),
        ("show tables", "SHOW"),
        ("describe table t", "DESCRIBE"),
        ("explain select 1", "SELECT"),
        ("explain insert into t values (1)", "EXPLAIN INSERT"),
        ("copy into @stage from t", "COPY"),
        ("put file:///etc/passwd @stage", "PUT"),
        ("call system$wait(1)", "CALL"),
        ("merge into t using s on t.a = s.a when matched then delete", "MERGE"),
        ("/* a */ use role accountadmin", "USE"),
        ("select $$;$$", "SELECT"),
    ],
)
def test_statement_kind_snowflake(sql: str, kind: str) -> None:
    assert statement_kind(sql, LEXIS["snowflake"]) == kind


@pytest.mark.parametrize(
    "sql",
    [
        "select 1; drop table t",
        "select 1; -- c\n select 2",
        "select 'x\\'; drop table t; --'",  # backslash escape: one string... then nothing is left open
        "select 'unterminated",
        "select 1 /* never closed",
    ],
)
def test_more_than_one_statement_or_unclosed_text_is_refused(sql: str) -> None:
    if sql.startswith("select 'x\\'"):
        assert statement_kind(sql, LEXIS["snowflake"]) == "SELECT"  # the string swallows the rest
        # where backslashes do not escape (Athena), the same text is two statements: refused
        with pytest.raises(UsageError):
            statement_kind(sql, LEXIS["athena"])
        return
    with pytest.raises(UsageError):
        statement_kind(sql, LEXIS["snowflake"])


@pytest.mark.fakesnow
def test_fakesnow_reads_refuse_writes_and_second_statements(
    snowflake_connection: SnowflakeConnection,
) -> None:
    from mlstack.data.snowflake import SnowflakeSource
    from mlstack.manifest import SnowflakeData

    src = SnowflakeSource(SnowflakeData.model_validate(snowflake_connection.manifest_section()))
    try:
        src.write("keep", {"a": [1, 2]})
        for sql in (
            "select 1; drop table keep",
            "drop table keep",
            "insert into keep values (3)",
            "delete from keep",
            "create table other as select * from keep",
        ):
            with pytest.raises(UsageError):
                src.read_arrow(sql)
            with pytest.raises(UsageError):
                src.shards(sql)
        assert src.read_arrow("select count(*) as n from keep").column(0).to_pylist() == [2]
        assert src.read_arrow("with k as (select a from keep) select sum(a) as s from k").column(
            0
        ).to_pylist() == [3]
    finally:
        src.close()


def test_fake_databricks_reads_refuse_writes_before_sending_them(fake_databricks: FakeDatabricks) -> None:
    from mlstack.data.databricks import DatabricksSource
    from mlstack.manifest import DatabricksData

    src = DatabricksSource(DatabricksData.model_validate(fake_databricks.manifest_section()))
    src.write("keep", {"a": [1, 2]})
    sent_before = len(fake_databricks.server.requests)
    for sql in (
        "with a as (select 3 as a) insert into keep select * from a",
        "select 1; drop table keep",
        "truncate table keep",
        "copy into keep from '/Volumes/x'",
    ):
        with pytest.raises(UsageError):
            src.read_arrow(sql)
        with pytest.raises(UsageError):
            src.shards(sql)
    assert len(fake_databricks.server.requests) == sent_before  # refused before anything was sent
    assert src.read_arrow("select count(*) as n from keep").column(0).to_pylist() == [2]


def test_fake_databricks_cli_query_refuses_a_write(
    fake_databricks: FakeDatabricks, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.data.conftest import manifest_dict

    mlstack.data.reset()
    m = tmp_path / "dbx.json"
    m.write_text(json.dumps(manifest_dict(fake_databricks.manifest_section(), tmp_path)), encoding="utf-8")
    code, text = cli(capsys, "data", "query", "drop table anything", "-m", str(m))
    assert code == 2 and "type DROP" in text and "Traceback" not in text
    mlstack.data.reset()


def test_lakehouse_reads_refuse_writes_without_calling_aws() -> None:
    from mlstack.data.lakehouse import LakehouseSource
    from mlstack.manifest import LakehouseData

    src = LakehouseSource(
        LakehouseData(database="ml", workgroup="wg", location="s3://lake-bucket/tables", region="us-east-1")
    )
    for sql in (
        "create table t as select 1",
        "unload (select 1) to 's3://elsewhere/' with (format = 'PARQUET')",
        "select 1; drop table t",
        "select '\\'; drop table t; --'",  # Athena has no backslash escapes: that is two statements
    ):
        with pytest.raises(UsageError):
            src.read(sql)
    assert src._clients == {}  # refused before any client was made

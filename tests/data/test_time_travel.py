"""Time-travel versions are parsed, never spliced (issue 12, finding 11).

A version string used to be quoted into ``AT(TIMESTAMP => '...')`` / ``TIMESTAMP AS OF '...'`` by doubling
its quotes, which a backslash defeats on Snowflake and Databricks (``2024-01-01\\' UNION ALL SELECT ...``).
Now a version is a number, a timestamp (rendered from the parsed datetime) or, on Snowflake, a query id;
anything else is a UsageError before a byte is sent.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import mlstack.data
from mlstack.cli.main import main
from mlstack.data.base import parse_version
from mlstack.data.databricks import DatabricksSource
from mlstack.data.databricks import version_clause as dbx_clause
from mlstack.data.snowflake import version_clause as sf_clause
from mlstack.errors import UsageError
from mlstack.manifest import DatabricksData
from tests.support.databricks import FakeDatabricks
from tests.support.snowflake import SnowflakeConnection

EVIL = [
    "2024-01-01\\' UNION ALL SELECT * FROM secrets --",
    "2024-01-01' UNION ALL SELECT * FROM secrets --",
    "2024-01-01 00:00:00'::TIMESTAMP_LTZ) UNION ALL SELECT 1 --",
    "1; DROP TABLE sales",
    "3 OR 1=1",
    "01b2c3d4-0000-1111-2222-333344445555' --",
    "2024-01-01\n' UNION SELECT 1",
    "²",  # str.isdigit() says yes, int() says no: once an "unexpected error"
    "x" * 10_000,
]


@pytest.mark.parametrize("evil", EVIL)
def test_nothing_but_a_number_a_timestamp_or_a_query_id_becomes_sql(evil: str) -> None:
    for clause in (sf_clause, dbx_clause):
        with pytest.raises(UsageError) as err:
            clause(evil)
        assert len(str(err.value)) < 400  # a 10 kB value is previewed, not echoed


@pytest.mark.parametrize(
    ("version", "snowflake", "databricks"),
    [
        (3, None, " VERSION AS OF 3"),
        ("3", None, " VERSION AS OF 3"),
        (-60, " AT(OFFSET => -60)", None),
        (
            "2024-01-01",
            " AT(TIMESTAMP => '2024-01-01 00:00:00'::TIMESTAMP_LTZ)",
            " TIMESTAMP AS OF '2024-01-01 00:00:00'",
        ),
        (
            "2024-01-01T12:30:00Z",
            " AT(TIMESTAMP => '2024-01-01 12:30:00+00:00'::TIMESTAMP_TZ)",
            " TIMESTAMP AS OF '2024-01-01 12:30:00+00:00'",
        ),
        (
            dt.datetime(2024, 1, 1, 12, 0, 0, 500, tzinfo=dt.timezone(dt.timedelta(hours=-8))),
            " AT(TIMESTAMP => '2024-01-01 12:00:00.000500-08:00'::TIMESTAMP_TZ)",
            " TIMESTAMP AS OF '2024-01-01 12:00:00.000500-08:00'",
        ),
    ],
)
def test_good_versions_render_from_their_parsed_value(
    version: object, snowflake: str | None, databricks: str | None
) -> None:
    if snowflake is None:
        with pytest.raises(UsageError):
            sf_clause(version)  # type: ignore[arg-type]
    else:
        assert sf_clause(version) == snowflake  # type: ignore[arg-type]
    if databricks is None:
        with pytest.raises(UsageError):
            dbx_clause(version)  # type: ignore[arg-type]
    else:
        assert dbx_clause(version) == databricks  # type: ignore[arg-type]


def test_parse_version_types() -> None:
    assert parse_version(" 7 ") == 7 and parse_version(dt.date(2024, 2, 1)) == dt.datetime(2024, 2, 1)
    with pytest.raises(UsageError):
        parse_version(True)
    with pytest.raises(UsageError):
        parse_version(3.5)


def test_lakehouse_time_travel_is_parsed_too() -> None:
    from mlstack.data.lakehouse import LakehouseSource
    from mlstack.manifest import LakehouseData

    src = LakehouseSource(
        LakehouseData(database="ml", workgroup="wg", location="s3://lake-bucket/tables", region="us-east-1")
    )
    assert src.version_clause("2024-01-01T00:00:00+02:00") == (
        " FOR TIMESTAMP AS OF TIMESTAMP '2024-01-01 00:00:00 +02:00'"
    )
    assert src.version_clause(5) == " FOR VERSION AS OF 5"
    for evil in EVIL:
        with pytest.raises(UsageError):
            src.version_clause(evil)


@pytest.mark.fakesnow
def test_fakesnow_the_backslash_trick_fails_before_the_query(
    snowflake_connection: SnowflakeConnection,
) -> None:
    from mlstack.data.snowflake import SnowflakeSource
    from mlstack.manifest import SnowflakeData

    src = SnowflakeSource(SnowflakeData.model_validate(snowflake_connection.manifest_section()))
    try:
        src.write("sales", {"id": [1]})
        src.write("secrets", {"password": ["hunter2"]})
        for evil in EVIL[:3]:
            with pytest.raises(UsageError, match="neither a version number nor a timestamp"):
                src.read_arrow("sales", version=evil)
            with pytest.raises(UsageError):
                src.shards("sales", version=evil)
    finally:
        src.close()


def test_fake_databricks_the_backslash_trick_never_reaches_the_warehouse(
    fake_databricks: FakeDatabricks,
) -> None:
    src = DatabricksSource(DatabricksData.model_validate(fake_databricks.manifest_section()))
    src.write("sales", {"id": [1]})
    for evil in EVIL:
        with pytest.raises(UsageError):
            src.read_arrow("sales", version=evil)
        with pytest.raises(UsageError):
            src.shards("sales", version=evil)
    sent = [r.body.get("statement", "") for r in fake_databricks.server.requests if r.body]
    assert not any("UNION" in s or "DROP" in s for s in sent), sent


def test_cli_version_option_refuses_the_trick(local_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mlstack.data.reset()
    mlstack.data.write("sales", {"id": [1]})
    capsys.readouterr()
    for evil in (EVIL[0], "²"):
        code = main(["data", "query", "sales", "--version", evil])
        err = capsys.readouterr().err
        assert code == 2 and "neither a version number nor a timestamp" in err and "Traceback" not in err
    mlstack.data.reset()

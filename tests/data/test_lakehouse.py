"""The lakehouse adapter (S3 Parquet + Glue + Athena) against a moto server.

moto stores S3 objects and Glue tables for real, so writes, table reads (pyarrow straight from S3),
shards and listings run end to end. moto does not execute Athena SQL: queries succeed and return the
results queued through its API, which proves the request (database, workgroup) and the typed decoding of
result pages, not the SQL. Real Athena, IAM and Iceberg time travel are not exercised here.
"""

from __future__ import annotations

import json
import pickle
import urllib.request
from collections.abc import Iterator

import boto3
import pyarrow as pa
import pytest

import mlstack.run
from mlstack.data.lakehouse import LakehouseSource
from mlstack.errors import DataError, NotFoundError, UsageError
from mlstack.manifest import LakehouseData

REGION = "us-east-1"


@pytest.fixture
def lake(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LakehouseSource]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="ml-lake")
    boto3.client("glue", region_name=REGION).create_database(DatabaseInput={"Name": "ml"})
    boto3.client("athena", region_name=REGION).create_work_group(
        Name="ml", Configuration={"ResultConfiguration": {"OutputLocation": "s3://ml-lake/athena/"}}
    )
    section = LakehouseData(database="ml", workgroup="ml", location="s3://ml-lake/tables", region=REGION)
    yield LakehouseSource(section)


def t(*ids: int) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "amount": [i * 1.5 for i in ids]})


def test_write_registers_a_glue_parquet_table_and_table_reads_come_from_s3(lake: LakehouseSource) -> None:
    assert lake.write("sales", t(1, 2)).rows == 2
    lake.write("sales", t(3))
    glue = boto3.client("glue", region_name=REGION).get_table(DatabaseName="ml", Name="sales")["Table"]
    sd = glue["StorageDescriptor"]
    assert sd["Location"] == "s3://ml-lake/tables/sales/"
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [("id", "bigint"), ("amount", "double")]
    assert "parquet" in sd["SerdeInfo"]["SerializationLibrary"].lower()
    got = lake.read_arrow("sales").sort_by("id")
    assert got.column("id").to_pylist() == [1, 2, 3]
    assert lake.read_arrow("sales", columns=["amount"]).column_names == ["amount"]
    assert [i.name for i in lake.tables()] == ["sales"]


def test_overwrite_replaces_rows_and_schema_and_append_checks_columns(lake: LakehouseSource) -> None:
    lake.write("sales", t(1, 2))
    with pytest.raises(DataError) as err:
        lake.write("sales", {"other": ["x"]})
    assert "overwrite" in (err.value.fix or "")
    lake.write("sales", {"other": ["x"]}, mode="overwrite")
    assert lake.read_arrow("sales").to_pylist() == [{"other": "x"}]


def test_shards_are_the_tables_objects(lake: LakehouseSource) -> None:
    lake.write("sales", t(1, 2))
    lake.write("sales", t(3))
    shards = lake.shards("sales", columns=["id"])
    assert len(shards) == 2
    ids = sorted(i for s in shards for i in pickle.loads(pickle.dumps(s)).read().column("id").to_pylist())
    assert ids == [1, 2, 3]


def test_table_reads_are_recorded_with_the_database(lake: LakehouseSource) -> None:
    lake.write("sales", t(1))
    mlstack.run.start()
    lake.read_arrow("sales")
    assert [(i.name, i.source) for i in mlstack.run.current().inputs()] == [("ml.sales", "lakehouse")]


def test_missing_table_and_bad_names(lake: LakehouseSource) -> None:
    with pytest.raises(NotFoundError):
        lake.read_arrow("nope")
    with pytest.raises(UsageError):
        lake.write("a.b.c", t(1))


def test_sql_runs_in_the_workgroup_and_pages_are_typed(lake: LakehouseSource, moto_s3: str) -> None:
    queued = {
        "region": REGION,
        "results": [
            {
                "rows": [
                    {"Data": [{"VarCharValue": "n"}, {"VarCharValue": "s"}, {"VarCharValue": "ok"}]},
                    {"Data": [{"VarCharValue": "3"}, {"VarCharValue": "4.5"}, {"VarCharValue": "true"}]},
                ],
                "column_info": [
                    {"Name": "n", "Type": "bigint"},
                    {"Name": "s", "Type": "double"},
                    {"Name": "ok", "Type": "boolean"},
                ],
            }
        ],
    }
    req = urllib.request.Request(
        f"{moto_s3}/moto-api/static/athena/query-results",
        data=json.dumps(queued).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=10)
    got = lake.read_arrow("select count(*) as n, sum(amount) as s, true as ok from sales")
    assert got.to_pylist() == [{"n": 3, "s": 4.5, "ok": True}]
    assert got.schema.field("n").type == pa.int64()
    athena = boto3.client("athena", region_name=REGION)
    qid = athena.list_query_executions(WorkGroup="ml")["QueryExecutionIds"][-1]
    ex = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    assert ex["QueryExecutionContext"]["Database"] == "ml" and ex["WorkGroup"] == "ml"


def test_version_goes_through_athena_time_travel_sql(lake: LakehouseSource) -> None:
    assert lake.select_sql("sales", ["id"], 3) == 'SELECT "id" FROM "ml"."sales" FOR VERSION AS OF 3'


def test_ping(lake: LakehouseSource) -> None:
    facts = lake.ping()
    assert facts["kind"] == "lakehouse" and facts["workgroup"] == "ml" and facts["account"]

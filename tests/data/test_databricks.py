"""The Databricks adapter against the FAKE Statement Execution server (tests/support/databricks.py).

What this proves: the unmodified databricks-sdk request/response shapes, chunked EXTERNAL_LINKS downloads
(in parallel, in order, without the workspace token, with the link's headers), INLINE for small results,
error mapping. What it cannot: real auth flows, presigned-URL expiry, Delta time travel on a warehouse.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from mlstack.data.databricks import DatabricksSource, _literal, version_clause
from mlstack.errors import CredentialsError, DataError, NotFoundError
from mlstack.manifest import DatabricksData
from tests.support.databricks import FAKE_USER, REQUIRED_LINK_HEADER, FakeDatabricks


def source(fake: FakeDatabricks, **over: object) -> DatabricksSource:
    return DatabricksSource(DatabricksData.model_validate({**fake.manifest_section(), **over}))


def statements(fake: FakeDatabricks) -> list[dict]:
    return [
        r.body for r in fake.server.requests if r.path.rstrip("/") == "/api/2.0/sql/statements" and r.body
    ]


def test_fake_databricks_big_reads_stream_every_chunk_in_order(fake_databricks: FakeDatabricks) -> None:
    fake_databricks.server.sql("create table big as select range as id, range * 2.0 as x from range(5200)")
    src = source(fake_databricks)
    reader = src.read("select id, x from big order by id")
    got = reader.read_all()
    assert got.column("id").to_pylist() == list(range(5200))
    assert fake_databricks.server.download_count() == 11  # 500-row chunks
    last = statements(fake_databricks)[-1]
    assert last["disposition"] == "EXTERNAL_LINKS" and last["format"] == "ARROW_STREAM"
    downloads = [r for r in fake_databricks.server.requests if r.path.startswith("/fake-cloud-storage/")]
    assert all(r.authorization is None for r in downloads)  # presigned: no workspace token
    assert all(r.headers.get(REQUIRED_LINK_HEADER) for r in downloads)  # the link's own headers are sent


def test_fake_databricks_small_limit_queries_go_inline(fake_databricks: FakeDatabricks) -> None:
    fake_databricks.server.sql("create table t as select range as id from range(50)")
    got = source(fake_databricks).read_arrow("select id from t order by id limit 5")
    assert got.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert got.schema.field("id").type == pa.int64()  # typed from the manifest, not left as strings
    assert statements(fake_databricks)[-1]["disposition"] == "INLINE"
    assert fake_databricks.server.download_count() == 0


def test_fake_databricks_types_round_trip_through_write_and_both_dispositions(
    fake_databricks: FakeDatabricks,
) -> None:
    data = pa.table(
        {
            "flag": [True, None],
            "day": [dt.date(2024, 1, 31), None],
            "label": ["it's", None],
            "n": pa.array([1, None], pa.int32()),
        }
    )
    src = source(fake_databricks)
    assert src.write("typed", data).rows == 2
    for sql in (
        "select * from typed order by n nulls last",
        "select * from typed order by n nulls last limit 10",
    ):
        got = src.read_arrow(sql)
        assert got.column("flag").to_pylist() == [True, None]
        assert got.column("day").to_pylist() == [dt.date(2024, 1, 31), None]
        assert got.column("label").to_pylist() == ["it's", None]
        assert got.column("n").to_pylist() == [1, None]


def test_fake_databricks_shards_are_chunk_links(fake_databricks: FakeDatabricks) -> None:
    fake_databricks.server.sql("create table big as select range as id from range(1200)")
    shards = source(fake_databricks).shards("big", columns=["id"])
    assert len(shards) == 3 and [s.rows for s in shards] == [500, 500, 200]
    blob = pickle.dumps(shards)
    assert fake_databricks.server.token.encode() not in blob  # no credentials travel with a shard
    ids = [i for s in pickle.loads(blob) for i in s.read().column("id").to_pylist()]
    assert sorted(ids) == list(range(1200))


def test_fake_databricks_bad_token_is_a_credentials_error(
    fake_databricks: FakeDatabricks, tmp_path: Path
) -> None:
    fake_databricks.server.write_config(fake_databricks.config_file, token="dapi-wrong")
    src = source(fake_databricks)
    with pytest.raises(CredentialsError) as err:
        src.read_arrow("select 1")
    assert "fake" in (err.value.fix or "")  # names the profile to fix


def test_fake_databricks_missing_profile_is_a_credentials_error(fake_databricks: FakeDatabricks) -> None:
    with pytest.raises(CredentialsError):
        source(fake_databricks, profile="nope").ping()


def test_fake_databricks_unknown_warehouse(fake_databricks: FakeDatabricks) -> None:
    with pytest.raises(NotFoundError, match="warehouse"):
        source(fake_databricks, warehouse_id="other").read_arrow("select 1")


def test_fake_databricks_ping_reports_user_and_warehouse(fake_databricks: FakeDatabricks) -> None:
    facts = source(fake_databricks).ping()
    assert facts["user"] == FAKE_USER and facts["warehouse_state"] == "RUNNING"


def test_fake_databricks_time_travel_sql_and_the_fake_refusing_it(fake_databricks: FakeDatabricks) -> None:
    src = source(fake_databricks)
    assert src.select_sql("t", ["a"], 3) == "SELECT `a` FROM `workspace`.`default`.`t` VERSION AS OF 3"
    assert version_clause("2024-01-01") == " TIMESTAMP AS OF '2024-01-01 00:00:00'"
    src.write("t", {"a": [1]})
    with pytest.raises(DataError):  # the fake has no Delta history; a real warehouse answers this
        src.read_arrow("t", version=0)
    assert "VERSION AS OF 0" in statements(fake_databricks)[-1]["statement"]


def test_fake_databricks_lineage_names_catalog_schema_table(fake_databricks: FakeDatabricks) -> None:
    import mlstack.run

    src = source(fake_databricks)
    src.write("t", {"a": [1]})
    mlstack.run.start()
    src.read_arrow("t", version=None)
    assert [(i.name, i.source) for i in mlstack.run.current().inputs()] == [
        ("workspace.default.t", "databricks")
    ]


def test_literals_escape_and_type() -> None:
    assert _literal("it's \\ ok") == "'it\\'s \\\\ ok'"
    assert _literal(None) == "NULL" and _literal(True) == "TRUE" and _literal(3) == "3"
    assert _literal(decimal.Decimal("1.50")) == "1.50"
    assert _literal(dt.date(2024, 2, 1)) == "DATE '2024-02-01'"
    assert _literal(float("nan")) == "CAST('NaN' AS DOUBLE)"
    assert json.dumps(_literal(1.25)) == '"1.25"'

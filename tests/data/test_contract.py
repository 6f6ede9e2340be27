"""The data contract, run against every adapter: the local lake (real DuckDB + Delta), Snowflake through
fakesnow's server (the real connector over HTTP) and Databricks through a FAKE Statement Execution server.

Snowflake upper-cases unquoted identifiers, so column names are compared case-insensitively.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import mlstack.data
import mlstack.run
from mlstack.errors import DataError, NotFoundError, UsageError
from tests.data.conftest import ADAPTERS

pytestmark = pytest.mark.parametrize("data_section", ADAPTERS, indirect=True)


def lower(t: pa.Table) -> pa.Table:
    return t.rename_columns([c.lower() for c in t.column_names])


def sales(n: int = 6, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "region": pa.array(["north" if i % 2 else "south" for i in ids]),
            "amount": pa.array([i * 1.5 for i in ids], pa.float64()),
        }
    )


def table_names() -> set[str]:
    return {t.name.lower() for t in mlstack.data.tables()}


def test_write_then_read_round_trips_values(stack: Path) -> None:
    res = mlstack.data.write("sales", sales())
    assert res.rows == 6 and res.mode == "append" and res.table == "sales"
    got = lower(mlstack.data.read_arrow("sales")).sort_by("id")
    assert got.column("id").to_pylist() == list(range(6))
    assert got.column("region").to_pylist() == ["south", "north"] * 3
    assert got.column("amount").to_pylist() == [i * 1.5 for i in range(6)]


def test_read_streams_a_record_batch_reader(stack: Path) -> None:
    mlstack.data.write("sales", sales(3000))
    reader = mlstack.data.read("sales")
    assert isinstance(reader, pa.RecordBatchReader)
    assert [n.lower() for n in reader.schema.names] == ["id", "region", "amount"]
    assert sum(b.num_rows for b in reader) == 3000


def test_append_adds_rows_and_overwrite_replaces(stack: Path) -> None:
    mlstack.data.write("sales", sales(4))
    mlstack.data.write("sales", sales(3, start=4), mode="append")
    assert mlstack.data.read_arrow("sales").num_rows == 7
    res = mlstack.data.write("sales", sales(2, start=100), mode="overwrite")
    assert res.mode == "overwrite"
    got = lower(mlstack.data.read_arrow("sales")).sort_by("id")
    assert got.column("id").to_pylist() == [100, 101]


def test_columns_projects(stack: Path) -> None:
    mlstack.data.write("sales", sales())
    got = mlstack.data.read_arrow("sales", columns=["amount", "id"])
    assert [c.lower() for c in got.column_names] == ["amount", "id"]


def test_sql_aggregates(stack: Path) -> None:
    mlstack.data.write("sales", sales(10))
    got = lower(mlstack.data.read_arrow("select count(*) as n, sum(amount) as s from sales"))
    assert got.column("n").to_pylist() == [10]
    assert got.column("s").to_pylist()[0] == pytest.approx(sum(i * 1.5 for i in range(10)))


def test_read_pandas_and_write_pandas(stack: Path) -> None:
    df = pd.DataFrame({"k": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]})
    assert mlstack.data.write("frame", df).rows == 3
    out = mlstack.data.read_pandas("select k, v from frame order by k")
    out.columns = [c.lower() for c in out.columns]
    assert out["k"].tolist() == ["a", "b", "c"] and out["v"].tolist() == [1.0, 2.0, 3.0]


def test_tables_lists_what_was_written(stack: Path) -> None:
    mlstack.data.write("sales", sales())
    mlstack.data.write("customers", {"id": [1, 2]})
    assert {"sales", "customers"} <= table_names()


def test_empty_result_keeps_its_schema(stack: Path) -> None:
    mlstack.data.write("sales", sales())
    got = mlstack.data.read_arrow("select id, amount from sales where id < 0")
    assert got.num_rows == 0
    assert [c.lower() for c in got.column_names] == ["id", "amount"]


def test_missing_table_is_not_found(stack: Path) -> None:
    mlstack.data.write("sales", sales())
    with pytest.raises(NotFoundError) as err:
        mlstack.data.read_arrow("no_such_table")
    assert "no_such_table" in str(err.value).lower()
    with pytest.raises(NotFoundError):
        mlstack.data.read_arrow("select * from no_such_table")


def test_bad_sql_is_a_data_error(stack: Path) -> None:
    with pytest.raises(DataError):
        mlstack.data.read_arrow("select from where")


def test_reads_are_recorded_as_run_inputs(stack: Path) -> None:
    mlstack.data.write("sales", sales())
    mlstack.data.write("customers", {"id": [1, 2]})
    mlstack.run.start()
    mlstack.data.read_arrow("sales")
    mlstack.data.read_arrow("select c.id from customers c join sales s on s.id = c.id")
    inputs = mlstack.run.current().inputs()
    names = {i.name.lower().split(".")[-1] for i in inputs if i.type == "table"}
    assert names == {"sales", "customers"}
    kind = mlstack.data.source().kind
    assert {i.source for i in inputs} == {kind}


def test_shards_are_picklable_and_cover_the_table(stack: Path) -> None:
    mlstack.data.write("sales", sales(5))
    mlstack.data.write("sales", sales(5, start=5))
    shards = mlstack.data.shards("sales", columns=["id"])
    assert shards
    parts = [pickle.loads(pickle.dumps(s)).read() for s in shards]
    ids = sorted(i for p in parts for i in lower(p).column("id").to_pylist())
    assert ids == list(range(10))


def test_sql_shards(stack: Path) -> None:
    mlstack.data.write("sales", sales(10))
    shards = mlstack.data.shards("select id from sales where id >= 4")
    parts = [pickle.loads(pickle.dumps(s)).read() for s in shards]
    assert sorted(i for p in parts for i in lower(p).column("id").to_pylist()) == list(range(4, 10))


def test_ping_returns_facts(stack: Path) -> None:
    facts = mlstack.data.source().ping()
    assert isinstance(facts, dict)
    assert facts["kind"] == mlstack.data.source().kind


def test_columns_with_sql_is_a_usage_error(stack: Path) -> None:
    with pytest.raises(UsageError):
        mlstack.data.read("select 1 as x", columns=["x"])


def test_write_rejects_a_bad_mode(stack: Path) -> None:
    with pytest.raises(UsageError):
        mlstack.data.write("sales", sales(), mode="upsert")

"""The local adapter beyond the contract: Delta versions (time travel), native DuckDB tables, schemas, names."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import mlstack.data
import mlstack.run
from mlstack.errors import DataError, NotFoundError, UsageError


@pytest.fixture
def local(local_home: Path) -> Path:
    mlstack.data.reset()
    yield local_home
    mlstack.data.reset()


def t(*ids: int) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "x": pa.array([float(i) for i in ids])})


def test_every_write_is_a_delta_version_and_version_reads_it(local: Path) -> None:
    assert mlstack.data.write("s", t(1, 2)).version == 0
    assert mlstack.data.write("s", t(3)).version == 1
    assert mlstack.data.write("s", t(9), mode="overwrite").version == 2
    assert sorted(mlstack.data.read_arrow("s", version=0).column("id").to_pylist()) == [1, 2]
    assert sorted(mlstack.data.read_arrow("s", version=1).column("id").to_pylist()) == [1, 2, 3]
    assert mlstack.data.read_arrow("s").column("id").to_pylist() == [9]
    # the streaming path agrees with the bulk path
    assert sum(b.num_rows for b in mlstack.data.read("s", version=1)) == 3
    assert (local / "data" / "lake" / "s" / "_delta_log").is_dir()


def test_lineage_pins_the_version_actually_read(local: Path) -> None:
    mlstack.data.write("s", t(1))
    mlstack.data.write("s", t(2))
    mlstack.run.start()
    mlstack.data.read_arrow("s")  # latest: recorded as the concrete version, so it is reproducible
    mlstack.data.read_arrow("s", version=0)
    got = {(i.name, i.version, i.source) for i in mlstack.run.current().inputs()}
    assert got == {("s", "1", "local"), ("s", "0", "local")}


def test_lineage_goes_to_the_run_inputs_file(local: Path, tmp_path: Path) -> None:
    mlstack.data.write("s", t(1))
    inputs = tmp_path / "inputs.jsonl"
    mlstack.run.start(inputs_file=str(inputs))
    mlstack.data.read_arrow("select count(*) from s")
    assert '"name": "s"' in inputs.read_text() and '"version": "0"' in inputs.read_text()


def test_a_version_that_does_not_exist_names_the_range(local: Path) -> None:
    mlstack.data.write("s", t(1))
    with pytest.raises(NotFoundError, match="table 's' has only version 0; there is no version 5") as err:
        mlstack.data.read_arrow("s", version=5)
    assert "version=" not in (err.value.fix or "") and "between 0 and 0" not in (err.value.fix or "")
    mlstack.data.write("s", t(2))
    with pytest.raises(NotFoundError, match="versions 0 to 1; there is no version 5"):
        mlstack.data.read_arrow("s", version=5)
    with pytest.raises(UsageError, match="neither a version number nor a timestamp"):
        mlstack.data.read_arrow("s", version="yesterday")


def test_a_timestamp_reads_the_version_current_then(local: Path) -> None:
    import datetime as dt
    import time

    mlstack.data.write("s", t(1))
    time.sleep(0.05)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    mlstack.data.write("s", t(2))
    assert mlstack.data.read_arrow("s", version=between.isoformat()).column("id").to_pylist() == [1]
    assert sorted(mlstack.data.read_arrow("s", version=dt.datetime.now(dt.UTC)).column("id").to_pylist()) == [1, 2]
    with pytest.raises(NotFoundError, match="did not exist yet"):
        mlstack.data.read_arrow("s", version="2001-01-01")


def test_version_in_sql_pins_one_or_each_table(local: Path) -> None:
    mlstack.data.write("a", t(1))
    mlstack.data.write("a", t(2))
    mlstack.data.write("b", t(1, 2))
    assert mlstack.data.read_arrow("select count(*) as n from a", version=0).column("n").to_pylist() == [1]
    q = "select count(*) as n from a join b using (id)"
    assert mlstack.data.read_arrow(q, version={"a": 0, "b": 0}).column("n").to_pylist() == [1]
    with pytest.raises(UsageError, match="ambiguous"):
        mlstack.data.read_arrow(q, version=0)
    with pytest.raises(UsageError):
        mlstack.data.read_arrow(q, version={"zzz": 1})


def test_native_duckdb_tables_are_readable_alongside_the_lake(local: Path) -> None:
    db = local / "data" / "warehouse.duckdb"
    db.parent.mkdir(parents=True)
    with duckdb.connect(str(db)) as con:
        con.execute("create table regions as select * from (values (1, 'north'), (2, 'south')) v(id, name)")
    mlstack.data.write("s", t(1, 2))
    kinds = {i.name: i.kind for i in mlstack.data.tables()}
    assert kinds == {"regions": "duckdb", "s": "delta"}
    got = mlstack.data.read_arrow("select r.name, s.x from s join regions r using (id) order by r.name")
    assert got.column("name").to_pylist() == ["north", "south"]
    assert mlstack.data.read_arrow("regions", columns=["name"]).num_rows == 2
    with pytest.raises(UsageError, match="no versions"):
        mlstack.data.read_arrow("regions", version=0)


def test_append_with_other_columns_fails_clearly_and_overwrite_replaces_the_schema(local: Path) -> None:
    mlstack.data.write("s", t(1))
    with pytest.raises(DataError) as err:
        mlstack.data.write("s", {"other": ["a"]})
    assert err.value.fix and "overwrite" in err.value.fix and "id, x" in err.value.fix
    mlstack.data.write("s", {"other": ["a"]}, mode="overwrite")
    assert mlstack.data.read_arrow("s").column_names == ["other"]


def test_write_streams_a_reader_and_counts_its_rows(local: Path) -> None:
    batches = [pa.record_batch({"id": pa.array(range(i * 100, i * 100 + 100))}) for i in range(5)]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, iter(batches))
    assert mlstack.data.write("big", reader).rows == 500
    assert mlstack.data.read_arrow("big").num_rows == 500


def test_names_are_case_insensitive_and_validated(local: Path) -> None:
    mlstack.data.write("Sales", t(1))
    assert mlstack.data.read_arrow("SALES").num_rows == 1
    assert [i.name for i in mlstack.data.tables()] == ["sales"]
    for bad in ("../x", "a b", "db.schema.t"):
        with pytest.raises(UsageError):
            mlstack.data.write(bad, t(1))


def test_missing_column_lists_the_columns(local: Path) -> None:
    mlstack.data.write("s", t(1))
    with pytest.raises(DataError) as err:
        mlstack.data.read_arrow("s", columns=["nope"])
    assert "id, x" in (err.value.fix or "")


def test_missing_table_on_an_empty_stack_says_how_to_load(local: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        mlstack.data.read("sales")
    assert "mlstack data load" in (err.value.fix or "")


def test_write_rejects_unknown_data(local: Path) -> None:
    with pytest.raises(UsageError):
        mlstack.data.write("s", 42)


def test_source_is_cached_per_manifest_and_reset_forgets_it(local: Path) -> None:
    a = mlstack.data.source()
    assert mlstack.data.source() is a
    mlstack.data.reset()
    assert mlstack.data.source() is not a


def test_ping_and_check_read(local: Path) -> None:
    assert mlstack.data.source().check_read() == {"tables": 0, "read": None}
    mlstack.data.write("s", t(1, 2))
    facts = mlstack.data.source().ping()
    assert facts["kind"] == "local" and facts["lake_tables"] == 1
    check = mlstack.data.source().check_read()
    assert check["read"] == "s" and check["columns"] == ["id", "x"] and check["rows_seen"] == 2


def test_history_lists_versions_newest_first(local: Path) -> None:
    mlstack.data.write("s", t(1))
    mlstack.data.write("s", t(2, 3))
    hist = mlstack.data.source().history("s")  # type: ignore[attr-defined]
    assert [h["version"] for h in hist] == [1, 0]
    assert hist[0]["rows_added"] == 2


def test_import_mlstack_data_stays_light() -> None:
    code = (
        "import sys, mlstack, mlstack.data; mlstack.data.read; "
        "heavy = [m for m in ('pyarrow', 'duckdb', 'deltalake', 'pandas', 'snowflake', 'databricks') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sql_errors_carry_a_specific_fix(local: Path) -> None:
    db = local / "data" / "warehouse.duckdb"
    db.parent.mkdir(parents=True)
    duckdb.connect(str(db)).close()
    mlstack.data.write("s", t(1))
    with pytest.raises(UsageError, match="type CREATE") as uerr:
        mlstack.data.read_arrow("create table x as select 1")
    assert "mlstack.data.write()" in (uerr.value.fix or "") and str(db) in (uerr.value.fix or "")
    with pytest.raises(DataError) as err:
        mlstack.data.read_arrow("select nope from s")
    assert "column names" in (err.value.fix or "")


def test_partitioned_delta_tables_read_and_shard_with_their_partition_values(local: Path) -> None:
    from deltalake import write_deltalake

    lake = local / "data" / "lake"
    data = pa.table({"id": [1, 2, 3, 4], "region": ["n", "s", "n", "s"]})
    write_deltalake(str(lake / "parted"), data, partition_by=["region"])
    got = mlstack.data.read_arrow("parted").sort_by("id")
    assert got.column("region").to_pylist() == ["n", "s", "n", "s"]
    shards = mlstack.data.shards("parted", columns=["region", "id"])
    assert len(shards) == 2
    parts = [pickle.loads(pickle.dumps(s)).read() for s in shards]
    assert all(p.column_names == ["region", "id"] for p in parts)
    rows = sorted((r["id"], r["region"]) for p in parts for r in p.to_pylist())
    assert rows == [(1, "n"), (2, "s"), (3, "n"), (4, "s")]

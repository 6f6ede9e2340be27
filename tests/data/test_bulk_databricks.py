"""Bulk writes to Databricks through a Unity Catalog volume, against the FAKE Statement Execution + Files API
server (tests/support/databricks.py): uploads, COPY INTO / CREATE ... AS read_files, atomic, cleaned up.

Requests are counted by the fake (every HTTP request it serves), never timed; failures are injected there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import mlstack.data
from mlstack.cli.main import main
from mlstack.data import bulk
from mlstack.data.databricks import DatabricksSource
from mlstack.errors import BackendError, DataError, MlstackError, NotFoundError
from mlstack.manifest import DatabricksData
from tests.support.databricks import FakeDatabricks, FakeDatabricksSql

VOLUME = "/Volumes/workspace/default/files"


def features(n: int, start: int = 0) -> pa.Table:
    """n rows x 5 columns: the shape of a feature table."""
    ids = pa.array(range(start, start + n), pa.int64())
    return pa.table(
        {
            "id": ids,
            "amount": pc.multiply(ids.cast(pa.float64()), 0.5),
            "region": pa.array(
                ["north", "south", "east", "west"] * (n // 4) + ["north"] * (n % 4), pa.string()
            ),
            "active": pc.equal(pc.bit_wise_and(ids, 1), 0),
            "day": pc.bit_wise_and(ids, 1023).cast(pa.int32()),
        }
    )


@pytest.fixture
def fake(fake_databricks: FakeDatabricks) -> FakeDatabricksSql:
    return fake_databricks.server


@pytest.fixture
def src(fake_databricks: FakeDatabricks) -> Iterator[DatabricksSource]:
    """A source whose manifest names the layer's volume (as the DatabricksDataLayer's manifest does)."""
    s = DatabricksSource(
        DatabricksData.model_validate({**fake_databricks.manifest_section(), "volume": "files"})
    )
    yield s
    s.close()


@pytest.fixture
def small_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send even a few rows through the volume, so failure tests stay small."""
    monkeypatch.setattr(bulk, "SMALL_WRITE_ROWS", 5)


def statements(fake: FakeDatabricksSql) -> list[str]:
    return [str(r.body["statement"]) for r in fake.requests if r.body and "statement" in r.body]


def file_calls(fake: FakeDatabricksSql) -> list[tuple[str, str]]:
    return [(r.method, r.path.split("/api/2.0/fs/")[1]) for r in fake.requests if "/api/2.0/fs/" in r.path]


def rows(fake: FakeDatabricksSql, table: str) -> list[dict[str, Any]]:
    return fake.sql(f"select * from {table} order by id").to_pylist()


def tables(fake: FakeDatabricksSql) -> list[str]:
    return [r["table_name"] for r in fake.sql("select table_name from information_schema.tables").to_pylist()]


def leftovers(fake: FakeDatabricksSql) -> dict[str, list[str]]:
    """Files still in the volume, and load tables still around."""
    out = {
        "files": fake.volume_files(VOLUME),
        "load tables": [t for t in tables(fake) if "__mlstack_load_" in t],
    }
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------- request counts


def test_a_million_rows_by_five_columns_take_a_handful_of_requests(
    src: DatabricksSource, fake: FakeDatabricksSql
) -> None:
    fake.sql("create table features (id bigint, amount double, region varchar, active boolean, day integer)")
    fake.requests.clear()
    res = src.write("features", features(1_000_000))
    assert res.rows == 1_000_000
    assert len(fake.requests) <= 20, [
        (r.method, r.path) for r in fake.requests
    ]  # O(files), not O(rows/batch)
    sql = statements(fake)
    assert sum(s.startswith("COPY INTO") for s in sql) == 1 and not any("INSERT" in s for s in sql)
    assert [m for m, p in file_calls(fake) if p.startswith("files/")] == ["PUT", "DELETE"]
    got = fake.sql(
        "select count(*) n, sum(id) s, sum(amount) a, count_if(active) t from features"
    ).to_pylist()
    assert got == [{"n": 1_000_000, "s": 499999500000, "a": 249999750000.0, "t": 500_000}]
    assert leftovers(fake) == {}


def test_requests_grow_with_files_not_rows(
    src: DatabricksSource, fake: FakeDatabricksSql, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "FILE_BYTES", 2 << 20)
    res = src.write("features", features(300_000))
    uploads = [p for m, p in file_calls(fake) if m == "PUT" and p.startswith("files/")]
    assert res.rows == 300_000 and len(uploads) >= 3
    assert all(p.startswith(f"files{VOLUME}/mlstack_loads/") for p in uploads)
    # probe, lookup (+poll), mkdir, CREATE ... AS read_files (+poll), rmdir; per file: upload and delete
    assert len(fake.requests) <= 7 + 2 * len(uploads)
    assert fake.sql("select count(*) n from features").to_pylist() == [{"n": 300_000}]
    assert leftovers(fake) == {}


def test_small_writes_are_one_statement_each(src: DatabricksSource, fake: FakeDatabricksSql) -> None:
    src.write("sales", features(3))
    src.write("sales", features(2, start=3))
    src.write("other", features(4), mode="overwrite")
    src.write("other", features(2, start=10), mode="overwrite")
    writes = [s.split(" AS SELECT")[0].split(" (")[0] for s in statements(fake) if not s.startswith("SELECT")]
    assert writes == [
        "CREATE TABLE `workspace`.`default`.`sales`",
        "INSERT INTO `workspace`.`default`.`sales`",
        "CREATE OR REPLACE TABLE `workspace`.`default`.`other`",
        "CREATE OR REPLACE TABLE `workspace`.`default`.`other`",
    ]
    assert [r["id"] for r in rows(fake, "sales")] == list(range(5))
    assert [r["id"] for r in rows(fake, "other")] == [10, 11]
    assert file_calls(fake) == []


def test_an_empty_overwrite_empties_the_table_in_one_statement(
    src: DatabricksSource, fake: FakeDatabricksSql
) -> None:
    src.write("sales", features(3))
    fake.requests.clear()
    res = src.write("sales", features(0), mode="overwrite")
    assert res.rows == 0 and [s.split(" (")[0] for s in statements(fake)][1:] == [
        "CREATE OR REPLACE TABLE `workspace`.`default`.`sales`"
    ]
    assert rows(fake, "sales") == []


def test_big_new_tables_and_overwrites_are_one_create_as_read_files(
    src: DatabricksSource, fake: FakeDatabricksSql, small_bulk: None
) -> None:
    src.write("sales", features(10))
    src.write("sales", features(7, start=100), mode="overwrite")
    creates = [s for s in statements(fake) if s.startswith("CREATE")]
    assert [s.split(" `")[0] for s in creates] == ["CREATE TABLE", "CREATE OR REPLACE TABLE"]
    assert all(
        f"FROM read_files('{VOLUME}/mlstack_loads/" in s and "format => 'parquet'" in s for s in creates
    )
    assert "CAST(`day` AS INT) AS `day`" in creates[0]  # the types the Arrow columns map to
    assert [r["id"] for r in rows(fake, "sales")] == list(range(100, 107))
    assert leftovers(fake) == {}


def test_timestamps_are_written_as_microseconds(
    src: DatabricksSource, fake: FakeDatabricksSql, small_bulk: None
) -> None:
    t = pa.table(
        {
            "id": list(range(6)),
            "ts": pa.array([1_700_000_000_123_456_789 + i for i in range(6)], pa.timestamp("ns", tz="UTC")),
        }
    )
    src.write("events", t)
    got = fake.sql("select ts from events order by id").column(0).cast(pa.int64()).to_pylist()
    assert got[0] == 1_700_000_000_123_456  # Spark reads no nanosecond Parquet timestamps: us it is


# ---------------------------------------------------------------- failures leave the table as it was

# (fault: statement prefix to fail, or an upload status; mode; the table exists before)
FAULTS = [
    ("COPY INTO", "append", True),
    ("CREATE OR REPLACE", "overwrite", True),
    ("CREATE TABLE", "append", False),
    (403, "append", True),
    (403, "overwrite", False),
    (500, "overwrite", True),
]


@pytest.mark.parametrize(("fault", "mode", "exists"), FAULTS)
def test_a_failed_load_leaves_the_table_as_it_was_and_no_uploaded_file(
    src: DatabricksSource,
    fake: FakeDatabricksSql,
    small_bulk: None,
    fault: str | int,
    mode: str,
    exists: bool,
) -> None:
    if exists:
        src.write("sales", features(10))
    before = rows(fake, "sales") if exists else None
    if isinstance(fault, str):
        fake.statement_fault = lambda sql: f"[INJECTED] {fault} failed" if sql.startswith(fault) else None
    else:
        body = {
            "error_code": "PERMISSION_DENIED" if fault == 403 else "INTERNAL_ERROR",
            "message": "injected",
        }
        fake.upload_fault = lambda method, path: (
            (fault, body) if method == "PUT" and "/files/" in path else None
        )
    with pytest.raises(MlstackError) as err:
        src.write("sales", features(8, start=50), mode=mode)
    assert isinstance(err.value, DataError | BackendError)
    if fault == 403:
        assert "WRITE VOLUME on workspace.default.files" in (err.value.fix or "")
        assert "nothing was written" in (err.value.fix or "")
    if exists:
        assert rows(fake, "sales") == before
    else:
        assert "sales" not in tables(fake)
    assert leftovers(fake) == {}


def test_an_upload_failing_on_a_later_file_removes_the_files_already_uploaded(
    src: DatabricksSource, fake: FakeDatabricksSql, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "FILE_BYTES", 2 << 20)
    monkeypatch.setattr("mlstack.data.databricks.PARALLEL_UPLOADS", 1)  # in order: part 0 lands, part 2 fails
    fake.upload_fault = lambda method, path: (
        (403, {"error_code": "PERMISSION_DENIED", "message": "no"})
        if method == "PUT" and "part-00002" in path
        else None
    )
    with pytest.raises(BackendError):
        src.write("features", features(300_000))
    landed = {
        r.path
        for r in fake.requests
        if r.method == "PUT" and "/fs/files/" in r.path and "part-00002" not in r.path
    }
    deleted = {r.path for r in fake.requests if r.method == "DELETE" and "/fs/files/" in r.path}
    assert len(landed) >= 2 and deleted == landed  # every file that landed is deleted again
    assert leftovers(fake) == {} and "features" not in tables(fake)


def test_a_volume_that_does_not_exist_says_which(fake_databricks: FakeDatabricks, small_bulk: None) -> None:
    s = DatabricksSource(
        DatabricksData.model_validate({**fake_databricks.manifest_section(), "volume": "nope"})
    )
    with pytest.raises(NotFoundError) as err:
        s.write("sales", features(10))
    assert "workspace.default.nope does not exist" in (err.value.fix or "") and "data.volume" in (
        err.value.fix or ""
    )
    assert "sales" not in tables(fake_databricks.server)


def test_an_input_that_fails_half_way_sends_nothing(
    src: DatabricksSource, fake: FakeDatabricksSql, small_bulk: None
) -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        yield from features(100).to_batches()
        raise DataError("sales.csv line 101, column amount: 'abc' is not a double")

    with pytest.raises(DataError, match="line 101"):
        src.write("sales", pa.RecordBatchReader.from_batches(features(1).schema, batches()))
    assert fake.requests == []


def test_appending_a_column_the_table_lacks_is_refused_before_any_upload(
    src: DatabricksSource, fake: FakeDatabricksSql, small_bulk: None
) -> None:
    src.write("sales", features(10))
    fake.requests.clear()
    with pytest.raises(DataError, match="has no column 'bonus'"):
        src.write("sales", features(10).append_column("bonus", pa.array([1] * 10)))
    assert file_calls(fake) == [] and [s.split(" ")[0] for s in statements(fake)] == ["SELECT"]


# ---------------------------------------------------------------- no volume in the manifest


def test_without_a_volume_big_writes_still_land_all_or_nothing(
    fake_databricks: FakeDatabricksSql,
    small_bulk: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 100 rows a statement (1,000 in use): the fake parses each with sqlglot, slow on a loaded machine
    monkeypatch.setattr("mlstack.data.databricks.INSERT_BATCH", 100)
    fake = fake_databricks.server
    s = DatabricksSource(DatabricksData.model_validate(fake_databricks.manifest_section()))
    s.write("sales", features(250))
    assert "set data.volume" in caplog.text
    inserts = [
        x for x in statements(fake) if x.startswith("INSERT INTO `workspace`.`default`.`sales__mlstack_load_")
    ]
    assert len(inserts) == 3  # INSERT_BATCH rows a statement, into a table beside the target
    assert fake.sql("select count(*) n from sales").to_pylist() == [{"n": 250}]
    fake.statement_fault = lambda sql: (
        "[INJECTED] failed" if sql.startswith("INSERT INTO `workspace`.`default`.`sales` ") else None
    )
    with pytest.raises(DataError):
        s.write("sales", features(250, start=5000))
    assert fake.sql("select count(*) n from sales").to_pylist() == [{"n": 250}]
    assert leftovers(fake) == {}


# ---------------------------------------------------------------- the CLI


def test_data_load_goes_through_the_volume(
    fake_databricks: FakeDatabricks, tmp_path: Path, small_bulk: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.data.conftest import manifest_dict

    csv = tmp_path / "sales.csv"
    csv.write_text("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(40)), encoding="utf-8")
    m = tmp_path / "remote.json"
    section = {**fake_databricks.manifest_section(), "volume": "files"}
    m.write_text(json.dumps(manifest_dict(section, tmp_path)), encoding="utf-8")
    mlstack.data.reset()
    try:
        capsys.readouterr()
        assert main(["data", "load", str(csv), "sales", "-m", str(m), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["rows"] == 40
        assert main(["data", "load", str(csv), "sales", "-m", str(m), "--json"]) == 0
    finally:
        mlstack.data.reset()
    fake = fake_databricks.server
    assert [s.split(" ")[0] for s in statements(fake) if not s.startswith("SELECT")] == ["CREATE", "COPY"]
    assert fake.sql("select count(*) n, sum(amount) s from sales").to_pylist() == [{"n": 80, "s": 2340.0}]
    assert leftovers(fake) == {}


# ---------------------------------------------------------------- the fake itself behaves like Databricks


def test_fake_copy_into_skips_files_it_loaded_before_unless_forced(
    src: DatabricksSource, fake: FakeDatabricksSql, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq
    from databricks.sdk.errors import DatabricksError
    from databricks.sdk.service.files import FilesAPI

    fake.sql("create table t (id bigint)")
    files = FilesAPI(src.client.api_client)
    local = tmp_path / "x.parquet"
    pq.write_table(pa.table({"id": [1, 2]}), local)
    with open(local, "rb") as fh:
        files.upload(f"{VOLUME}/in/x.parquet", fh, overwrite=False)
    copy = f"COPY INTO t FROM '{VOLUME}/in' FILEFORMAT = PARQUET"
    for expected in (2, 0):  # Databricks' COPY INTO is idempotent: loaded files are skipped
        resp = src.execute(copy, inline=True)
        assert src._inline_table(resp).column("num_inserted_rows").to_pylist() == [expected]
    resp = src.execute(copy + " COPY_OPTIONS ('force' = 'true')", inline=True)
    assert src._inline_table(resp).column("num_inserted_rows").to_pylist() == [2]
    with pytest.raises(DatabricksError, match="already exists"), open(local, "rb") as fh:
        files.upload(f"{VOLUME}/in/x.parquet", fh, overwrite=False)
    with pytest.raises(DatabricksError, match="not empty"):
        files.delete_directory(f"{VOLUME}/in")
    with pytest.raises(DatabricksError, match="does not exist"), open(local, "rb") as fh:
        files.upload("/Volumes/workspace/default/nope/x.parquet", fh)

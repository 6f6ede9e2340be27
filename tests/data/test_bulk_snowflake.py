"""Bulk writes to Snowflake (fakesnow server, the real 5.x connector): PUT + COPY INTO, atomic, cleaned up.

Requests are counted on the fake server's side (tests/support/snowflake.py logs every HTTP request it
serves), never timed. Failures are injected there too: a statement answered with an error, an upload refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from mlstack.data import bulk
from mlstack.data.snowflake import SnowflakeSource
from mlstack.errors import BackendError, DataError, MlstackError
from mlstack.manifest import SnowflakeData
from tests.support.snowflake import FakesnowServer, SnowflakeConnection

pytestmark = pytest.mark.fakesnow

STAGE = "MLSTACK_STAGE"


def features(n: int, start: int = 0) -> pa.Table:
    """n rows x 5 columns: the shape of a feature table."""
    ids = pa.array(range(start, start + n), pa.int64())
    return pa.table(
        {
            "id": ids,
            "amount": pa.compute.multiply(ids.cast(pa.float64()), 0.5),
            "region": pa.array(
                ["north", "south", "east", "west"] * (n // 4) + ["north"] * (n % 4), pa.string()
            ),
            "active": pa.compute.equal(pa.compute.bit_wise_and(ids, 1), 0),
            "day": pa.compute.bit_wise_and(ids, 1023).cast(pa.int32()),
        }
    )


@pytest.fixture
def server(snowflake_connection: SnowflakeConnection) -> FakesnowServer:
    return snowflake_connection.server


@pytest.fixture
def src(snowflake_connection: SnowflakeConnection) -> Iterator[SnowflakeSource]:
    """A source writing through the layer's named stage (as the SnowflakeDataLayer's manifest says)."""
    s = SnowflakeSource(
        SnowflakeData.model_validate({**snowflake_connection.manifest_section(), "stage": STAGE})
    )
    run(s, f"CREATE STAGE IF NOT EXISTS {STAGE}")
    snowflake_connection.server.reset()
    yield s
    s.close()


@pytest.fixture
def table_stage_src(snowflake_connection: SnowflakeConnection) -> Iterator[SnowflakeSource]:
    """A source with no stage in the manifest: bulk writes use each table's own stage."""
    s = SnowflakeSource(SnowflakeData.model_validate(snowflake_connection.manifest_section()))
    yield s
    s.close()


@pytest.fixture
def small_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send even a few rows through the stage, so failure tests stay small."""
    monkeypatch.setattr(bulk, "SMALL_WRITE_ROWS", 5)


def run(s: SnowflakeSource, sql: str) -> list[tuple[Any, ...]]:
    cur = s.connection().cursor()
    try:
        cur.execute(sql)
        try:
            return list(cur.fetchall())
        except Exception:  # statements without a result set
            return []
    finally:
        cur.close()


def statements(server: FakesnowServer) -> list[str]:
    return [str(r["sql"]) for r in server.requests() if r.get("sql")]


def query_id(server: FakesnowServer, prefix: str) -> str:
    """The query id the fake gave the last successful statement starting with ``prefix``."""
    ids = [
        r["query_id"]
        for r in server.requests()
        if str(r.get("sql", "")).startswith(prefix) and r.get("success")
    ]
    assert ids, f"no successful {prefix} statement"
    return str(ids[-1])


def table_rows(s: SnowflakeSource, table: str) -> list[dict[str, Any]]:
    return s.read_arrow(f"select * from {table} order by id").to_pylist()


def leftovers(s: SnowflakeSource, *tables: str) -> dict[str, list[Any]]:
    """Staged files in the layer's stage and the tables' own stages, and load tables still around."""
    out: dict[str, list[Any]] = {"stage": run(s, f"LIST @{STAGE}") if s.section.stage else []}
    for t in tables:
        if run(s, f"SELECT 1 FROM information_schema.tables WHERE table_name = '{t.upper()}'"):
            out[f"@%{t}"] = run(s, f"LIST @%{t.upper()}")
    out["load tables"] = run(
        s, "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%MLSTACK_LOAD%'"
    )
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------- request counts


def test_a_million_rows_by_five_columns_take_a_handful_of_requests(
    src: SnowflakeSource, server: FakesnowServer
) -> None:
    data = features(1_000_000)
    run(
        src,
        "CREATE TABLE features (id NUMBER(38,0), amount FLOAT, region VARCHAR, active BOOLEAN, day NUMBER)",
    )
    server.reset()
    res = src.write("features", data)
    served = server.requests()
    assert res.rows == 1_000_000
    assert len(served) <= 20, [r["path"] for r in served]  # O(files), not O(rows / batch)
    sql = [str(r["sql"]) for r in served if r.get("sql")]
    assert sum(s.startswith("PUT ") for s in sql) == 1 and sum(s.startswith("COPY INTO") for s in sql) == 1
    assert not any(s.startswith("INSERT") for s in sql)
    assert all(
        f"@{src.section.database}.public.{STAGE}/mlstack/loads/".lower() in s.lower()
        for s in sql
        if s.startswith("PUT")
    )
    got = src.read_arrow("select count(*) n, sum(id) s, sum(amount) a, count_if(active) t from features")
    assert got.to_pylist() == [{"N": 1_000_000, "S": 499999500000, "A": 249999750000.0, "T": 500_000}]
    assert leftovers(src, "features") == {}


def test_requests_grow_with_files_not_rows(
    table_stage_src: SnowflakeSource, server: FakesnowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "FILE_BYTES", 2 << 20)  # ~2 MiB of Arrow data a file: several files
    server.reset()
    res = table_stage_src.write("features", features(300_000))
    sql = statements(server)
    puts = [s for s in sql if s.startswith("PUT ")]
    assert res.rows == 300_000 and len(puts) >= 3
    assert all(".%FEATURES__MLSTACK_LOAD_" in s.upper() for s in puts)  # the new table's own stage
    # login, lookup, CREATE, COPY, REMOVE, RENAME, plus per file: PUT, the existence probe, the upload
    assert len(server.requests()) <= 6 + 3 * len(puts)
    assert table_stage_src.read_arrow("select count(*) n from features").to_pylist() == [{"N": 300_000}]
    assert leftovers(table_stage_src, "features") == {}


def test_a_small_append_is_one_insert(src: SnowflakeSource, server: FakesnowServer) -> None:
    src.write("sales", features(20))
    server.reset()
    res = src.write("sales", features(10, start=20))
    assert [s.split(" ")[0] for s in statements(server)] == ["SELECT", "INSERT"]
    assert res.version == query_id(server, "INSERT")
    assert [r["ID"] for r in table_rows(src, "sales")] == list(range(30))


# ---------------------------------------------------------------- how rows reach the table, and the version


def test_append_to_a_table_is_one_copy_and_its_query_id_is_the_version(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None
) -> None:
    src.write("sales", features(10))
    server.reset()
    res = src.write("sales", features(10, start=10))
    kinds = [s.split(" ")[0] for s in statements(server)]
    assert kinds == ["SELECT", "PUT", "COPY", "REMOVE"]
    assert res.version == query_id(server, "COPY INTO")  # AT(STATEMENT => it) includes the COPY
    assert len(table_rows(src, "sales")) == 20 and leftovers(src, "sales") == {}


def test_overwrite_with_the_same_columns_is_one_transaction_and_the_commit_is_the_version(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None
) -> None:
    src.write("sales", features(10))
    server.reset()
    res = src.write("sales", features(7, start=100), mode="overwrite")
    kinds = [s.split(" ")[0] for s in statements(server)]
    # the upload comes first, so the transaction holds the table only while it loads
    assert kinds == ["SELECT", "PUT", "BEGIN", "DELETE", "COPY", "COMMIT", "REMOVE"]
    assert res.version == query_id(server, "COMMIT")
    assert [r["ID"] for r in table_rows(src, "sales")] == list(range(100, 107))


def test_a_new_table_is_loaded_beside_and_renamed_into_place(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None
) -> None:
    res = src.write("fresh", features(12))
    sql = statements(server)
    assert [s.split(" ")[0] for s in sql] == ["SELECT", "CREATE", "PUT", "COPY", "REMOVE", "ALTER"]
    assert "__MLSTACK_LOAD_" in sql[1] and " RENAME TO " in sql[-1]
    assert res.version == query_id(server, "COPY INTO")  # the renamed table is the one the COPY loaded
    assert len(table_rows(src, "fresh")) == 12 and leftovers(src, "fresh") == {}


def test_overwrite_with_new_columns_swaps_the_loaded_table_in(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None
) -> None:
    src.write("sales", features(10))
    server.reset()
    res = src.write(
        "sales",
        features(6).drop_columns(["region"]).append_column("extra", pa.array([1.5] * 6)),
        mode="overwrite",
    )
    sql = statements(server)
    assert any(" SWAP WITH " in s for s in sql) and sql[-1].startswith("DROP TABLE IF EXISTS")
    assert res.version == query_id(server, "COPY INTO")
    rows = table_rows(src, "sales")
    assert len(rows) == 6 and set(rows[0]) == {"ID", "AMOUNT", "ACTIVE", "DAY", "EXTRA"}
    assert leftovers(src, "sales") == {}


def test_a_small_new_table_is_renamed_into_place_too(src: SnowflakeSource, server: FakesnowServer) -> None:
    res = src.write("tiny", features(3))
    assert [s.split(" ")[0] for s in statements(server)] == ["SELECT", "CREATE", "INSERT", "ALTER"]
    assert res.version == query_id(server, "INSERT") and len(table_rows(src, "tiny")) == 3


def test_another_writer_creating_the_table_first_gets_our_rows_appended(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    src.write("sales", features(10))
    real = SnowflakeSource._table_columns
    calls = {"n": 0}

    def stale_lookup(self: SnowflakeSource, *a: Any) -> Any:
        calls["n"] += 1
        return [] if calls["n"] == 1 else real(self, *a)  # the table "appears" after our lookup

    monkeypatch.setattr(SnowflakeSource, "_table_columns", stale_lookup)
    server.reset()
    res = src.write("sales", features(5, start=10))
    sql = statements(server)
    assert any(s.startswith('INSERT INTO "') and "SELECT" in s for s in sql)
    assert res.version == query_id(server, "INSERT INTO")
    assert [r["ID"] for r in table_rows(src, "sales")] == list(range(15))
    assert leftovers(src, "sales") == {}


# ---------------------------------------------------------------- failures leave the table as it was

# (fault, where it strikes, mode, the table exists before)
FAULTS = [
    ("copy", r"^COPY INTO", "append", True),
    ("copy", r"^COPY INTO", "overwrite", True),
    ("commit", r"^COMMIT", "overwrite", True),
    ("copy", r"^COPY INTO", "append", False),
    ("swap", r"SWAP WITH", "overwrite", "new columns"),
    ("upload", "", "append", True),
    ("upload", "", "overwrite", False),
]


@pytest.mark.parametrize(("fault", "pattern", "mode", "exists"), FAULTS)
@pytest.mark.parametrize("stage", ["named", "table"])
def test_a_failed_load_leaves_the_table_as_it_was_and_no_staged_file(
    snowflake_connection: SnowflakeConnection,
    server: FakesnowServer,
    small_bulk: None,
    fault: str,
    pattern: str,
    mode: str,
    exists: bool | str,
    stage: str,
) -> None:
    section = snowflake_connection.manifest_section()
    s = SnowflakeSource(
        SnowflakeData.model_validate({**section, **({"stage": STAGE} if stage == "named" else {})})
    )
    try:
        if stage == "named":
            run(s, f"CREATE STAGE IF NOT EXISTS {STAGE}")
        if exists:
            s.write("sales", features(10))
        before = table_rows(s, "sales") if exists else None
        data = features(8, start=50)
        if exists == "new columns":
            data = data.drop_columns(["region"])
        if fault == "upload":
            server.fail_upload(times=10)
        else:
            server.fail_sql(pattern, message=f"injected {fault} failure")
        with pytest.raises(MlstackError) as err:
            s.write("sales", data, mode=mode)
        assert isinstance(err.value, DataError | BackendError)
        assert "nothing was written" in (err.value.fix or "")
        if exists:
            assert table_rows(s, "sales") == before
        else:
            assert not run(s, "SELECT 1 FROM information_schema.tables WHERE table_name = 'SALES'")
        assert leftovers(s, "sales") == {}
        if fault in ("copy", "commit") and mode == "overwrite":
            assert "ROLLBACK" in statements(server)
    finally:
        s.close()


def test_an_input_that_fails_half_way_sends_nothing(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None
) -> None:
    src.write("sales", features(10))

    def batches() -> Iterator[pa.RecordBatch]:
        yield from features(100, start=10).to_batches()
        raise DataError("sales.csv line 111, column amount: 'abc' is not a double")

    server.reset()
    with pytest.raises(DataError, match="line 111"):
        src.write("sales", pa.RecordBatchReader.from_batches(features(1).schema, batches()))
    assert statements(server) == []
    assert len(table_rows(src, "sales")) == 10


def test_appending_a_column_the_table_lacks_is_refused_before_any_upload(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None
) -> None:
    src.write("sales", features(10))
    server.reset()
    with pytest.raises(DataError, match="has no column 'bonus'") as err:
        src.write("sales", features(10).append_column("bonus", pa.array([1] * 10)))
    assert "overwrite" in (err.value.fix or "")
    assert [s.split(" ")[0] for s in statements(server)] == ["SELECT"]


def test_a_read_at_the_version_of_a_bulk_write_time_travels_to_it_and_records_it(
    src: SnowflakeSource, server: FakesnowServer, small_bulk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlstack.run

    res = src.write("sales", features(10))
    assert res.version == query_id(server, "COPY INTO")
    # fakesnow has no Time Travel: check the SQL the read sends and the lineage it records
    sent: list[str] = []
    monkeypatch.setattr(src, "_execute", lambda sql, *a, **k: sent.append(sql))
    monkeypatch.setattr(
        src, "_stream", lambda cur: pa.RecordBatchReader.from_batches(pa.schema([]), iter(()))
    )
    mlstack.run.start()
    src.read("sales", version=res.version)
    assert sent == [f"SELECT * FROM \"SALES\" AT(STATEMENT => '{res.version}')"]
    db = src.section.database.upper()
    assert [(i.name, i.version) for i in mlstack.run.current().inputs()] == [
        (f"{db}.PUBLIC.SALES", res.version)
    ]


def test_an_insert_names_the_columns_as_the_table_spells_them() -> None:
    from mlstack.data.snowflake import _Table

    class Cursor:
        sfqid = "q"

        def executemany(self, sql: str, params: list[Any]) -> None:
            self.sql, self.params = sql, params

    cur = Cursor()
    s = SnowflakeSource(SnowflakeData.model_validate({**SECTION}))
    data = pa.table({"id": [1], "Amount": [2.5], "new": ["x"]})
    have = [("id", "NUMBER(38,0)"), ("amount", "FLOAT"), ("NEW", "VARCHAR")]
    s._insert(cur, _Table("DB", "S", "T"), data, "t", have)
    # quoted lower-case columns made by another tool keep their spelling; the rest fold as Snowflake folds them
    assert cur.sql == 'INSERT INTO "DB"."S"."T" ("id", "amount", "NEW") VALUES (%s, %s, %s)'
    assert cur.params == [(1, 2.5, "x")]


SECTION = {
    "kind": "snowflake",
    "account": "acme-ml",
    "warehouse": "ML_WH",
    "database": "ML",
    "schema": "ML",
    "role": "ML_WRITER",
    "user": "ML_SVC",
}


# ---------------------------------------------------------------- the CLI


def test_data_load_goes_through_the_stage(
    src: SnowflakeSource,
    snowflake_connection: SnowflakeConnection,
    server: FakesnowServer,
    small_bulk: None,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`mlstack data load` takes the same bulk path as mlstack.data.write: PUT to the layer's stage, COPY INTO."""
    import json

    import mlstack.data
    from mlstack.cli.main import main
    from tests.data.conftest import manifest_dict

    csv = tmp_path / "sales.csv"
    csv.write_text("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(40)), encoding="utf-8")
    m = tmp_path / "remote.json"
    section = {**snowflake_connection.manifest_section(), "stage": STAGE}
    m.write_text(json.dumps(manifest_dict(section, tmp_path)), encoding="utf-8")
    mlstack.data.reset()
    try:
        capsys.readouterr()
        assert main(["data", "load", str(csv), "sales", "-m", str(m), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["rows"] == 40
        assert main(["data", "load", str(csv), "sales", "-m", str(m), "--json"]) == 0
    finally:
        mlstack.data.reset()
    sent = [s.split(" ")[0].upper() for s in statements(server)]
    assert sent.count("PUT") == 2 and sent.count("COPY") == 2 and "INSERT" not in sent
    got = src.read_arrow("select count(*) n, sum(amount) s from sales").to_pylist()
    assert got == [{"N": 80, "S": 2340.0}]
    assert leftovers(src, "sales") == {}

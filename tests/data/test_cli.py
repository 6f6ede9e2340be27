"""`mlstack data query|tables|load|history` on the local stack, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mlstack.data
from mlstack.cli.main import main


@pytest.fixture
def stack(local_home: Path, tmp_path: Path) -> Path:
    mlstack.data.reset()
    assert main(["init"]) == 0
    csv = tmp_path / "sales.csv"
    csv.write_text("id,region,amount\n1,north,10.5\n2,south,20\n3,north,30.25\n", encoding="utf-8")
    yield csv
    mlstack.data.reset()


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_acceptance_load_then_query_returns_the_right_numbers(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, loaded = run_json(capsys, "data", "load", str(stack), "sales")
    assert code == 0 and loaded == {"table": "sales", "rows": 3, "mode": "append", "version": 0}
    code, out = run_json(capsys, "data", "query", "select count(*) as n, sum(amount) as s from sales")
    assert code == 0
    assert out["rows"] == [{"n": 3, "s": 60.75}] and out["columns"] == ["n", "s"]


def test_missing_table_fails_cleanly(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "load", str(stack), "sales"])
    capsys.readouterr()
    assert main(["data", "query", "select * from nope"]) == 1
    err = capsys.readouterr().err
    assert "table 'nope' does not exist" in err and "existing tables: sales" in err
    assert "Traceback" not in err
    code, out = run_json(capsys, "data", "query", "select * from nope")
    assert code == 1 and out["error"] == "NotFoundError"


def test_bad_sql_fails_cleanly(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "load", str(stack), "sales"])
    capsys.readouterr()
    assert main(["data", "query", "select amount from sales where"]) == 1
    err = capsys.readouterr().err
    assert "query failed" in err and "Traceback" not in err


def test_query_prints_a_table_with_a_row_limit(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "load", str(stack), "sales"])
    capsys.readouterr()
    assert main(["data", "query", "select * from sales order by id", "--limit", "2"]) == 0
    cap = capsys.readouterr()
    assert "north" in cap.out and "30.25" not in cap.out
    assert "3 rows (1 not shown" in cap.err


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_query_out_writes_every_row(
    stack: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["data", "load", str(stack), "sales"])
    out = tmp_path / "out" / f"result{suffix}"
    code, res = run_json(capsys, "data", "query", "sales", "--out", str(out))
    assert code == 0 and res["rows"] == 3
    if suffix == ".parquet":
        assert pq.read_table(out).num_rows == 3
    else:
        assert out.read_text().count("\n") == 4
    assert not list(out.parent.glob("*.partial"))


def test_load_parquet_overwrite_and_history(
    stack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["data", "load", str(stack), "sales"])
    main(["data", "query", "select * from sales where amount > 15", "--out", str(tmp_path / "big.parquet")])
    code, res = run_json(
        capsys, "data", "load", str(tmp_path / "big.parquet"), "sales", "--mode", "overwrite"
    )
    assert code == 0 and res["rows"] == 2 and res["version"] == 1
    code, hist = run_json(capsys, "data", "history", "sales")
    assert [v["version"] for v in hist["versions"]] == [1, 0]
    code, old = run_json(capsys, "data", "query", "sales", "--version", "0")
    assert len(old["rows"]) == 3


def test_tables_json(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "load", str(stack), "sales"])
    code, out = run_json(capsys, "data", "tables")
    assert code == 0 and out["kind"] == "local"
    assert [(t["name"], t["kind"], t["rows"]) for t in out["tables"]] == [("sales", "delta", 3)]


@pytest.mark.parametrize(
    "args",
    [
        ["data", "load", "missing.csv", "t"],
        ["data", "load", "{csv}", "t", "--mode", "merge"],
        ["data", "query", "select 1", "--out", "x.json"],
    ],
)
def test_usage_errors_exit_2(stack: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{csv}", str(stack)) for a in args]
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_load_of_an_unknown_format(stack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "data.xlsx"
    f.write_bytes(b"x")
    assert main(["data", "load", str(f), "t"]) == 2
    assert ".csv or .parquet" in capsys.readouterr().err


def _manifest_file(tmp_path: Path, section: dict) -> Path:
    from tests.data.conftest import manifest_dict

    path = tmp_path / "remote.json"
    path.write_text(json.dumps(manifest_dict(section, tmp_path)), encoding="utf-8")
    return path


def test_fake_databricks_query_and_bad_credentials_through_the_cli(
    fake_databricks, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlstack.data.reset()
    m = _manifest_file(tmp_path, fake_databricks.manifest_section())
    fake_databricks.server.sql(
        "create table sales as select range as id, range * 1.5 as amount from range(10)"
    )
    code, out = run_json(
        capsys, "data", "query", "select count(*) as n, sum(amount) as s from sales", "-m", str(m)
    )
    assert code == 0 and out["rows"] == [{"n": 10, "s": 67.5}]
    mlstack.data.reset()
    fake_databricks.server.write_config(fake_databricks.config_file, token="dapi-revoked")
    assert main(["data", "tables", "-m", str(m)]) == 1
    err = capsys.readouterr().err
    assert "refused the credentials" in err and "fix:" in err and "Traceback" not in err
    mlstack.data.reset()


@pytest.mark.fakesnow
def test_fakesnow_load_and_query_through_the_cli(
    snowflake_connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlstack.data.reset()
    csv = tmp_path / "sales.csv"
    csv.write_text("id,amount\n1,10.5\n2,20\n", encoding="utf-8")
    m = _manifest_file(tmp_path, snowflake_connection.manifest_section())
    code, res = run_json(capsys, "data", "load", str(csv), "sales", "-m", str(m))
    assert code == 0 and res["rows"] == 2
    code, out = run_json(
        capsys, "data", "query", "select count(*) as n, sum(amount) as s from sales", "-m", str(m)
    )
    assert code == 0 and out["rows"] == [{"N": 2, "S": 30.5}]
    assert main(["data", "query", "select * from nope", "-m", str(m)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    mlstack.data.reset()
    bad = _manifest_file(tmp_path, {**snowflake_connection.manifest_section(), "connection_name": "gone"})
    assert main(["data", "tables", "-m", str(bad)]) == 1
    assert "connections.toml" in capsys.readouterr().err
    mlstack.data.reset()

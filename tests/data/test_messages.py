"""What the first hour reads (issue 15, items 3 and 12).

- DuckDB's own hints survive: ``Candidate bindings: "amount"`` and the caret under the culprit.
- A version that does not exist says what does, in words that read right in the CLI (no ``version=``, no
  "between 0 and 0").
- The Snowflake connector's FutureWarning about ``enable_server_session_keep_alive_auto_detection`` is not
  raised by any connection mlstack opens (the option is set; pyproject turns the warning into an error too).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import mlstack.data
from mlstack.cli.main import main
from tests.support.snowflake import SnowflakeConnection


@pytest.fixture
def sales(local_home: Path, tmp_path: Path) -> Path:
    mlstack.data.reset()
    csv = tmp_path / "sales.csv"
    csv.write_text("id,region,amount\n1,north,10.5\n2,south,20\n", encoding="utf-8")
    assert main(["data", "load", str(csv), "sales"]) == 0
    yield csv
    mlstack.data.reset()


def err_of(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def _caret_under(err: str, word: str) -> bool:
    lines = err.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("LINE 1:") and word in line:
            return lines[i + 1].index("^") == line.index(word)
    return False


def test_duckdb_candidate_bindings_and_caret_are_kept(
    sales: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = err_of(capsys, "data", "query", "select amout from sales")
    assert code == 1
    assert 'Candidate bindings: "amount"' in err
    assert _caret_under(err, "amout"), err


def test_a_syntax_error_keeps_its_caret(sales: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = err_of(capsys, "data", "query", "select amount form sales")
    assert code == 1 and _caret_under(err, "sales"), err


def test_a_missing_version_names_what_exists_in_cli_words(
    sales: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = err_of(capsys, "data", "query", "sales", "--version", "7")
    assert code == 1
    assert "table 'sales' has only version 0; there is no version 7" in err
    assert "version=" not in err and "between 0 and 0" not in err
    assert "mlstack data history sales" in err
    assert main(["data", "load", str(sales), "sales"]) == 0
    code, err = err_of(capsys, "data", "query", "sales", "--version", "7")
    assert "versions 0 to 1" in err and "read a version from 0 to 1" in err


def test_snowflake_connections_say_how_their_session_ends() -> None:
    from mlstack.data.snowflake import SnowflakeSource
    from mlstack.manifest import SnowflakeData

    src = SnowflakeSource(
        SnowflakeData(
            account="a", warehouse="w", database="d", schema="s", role="r", user="u", connection_name="prod"
        )
    )
    assert src.connect_kwargs()["enable_server_session_keep_alive_auto_detection"] is False


@pytest.mark.fakesnow
def test_fakesnow_connections_raise_no_future_warning(snowflake_connection: SnowflakeConnection) -> None:
    from mlstack.data.snowflake import SnowflakeSource
    from mlstack.doctor import data as doctor_data
    from mlstack.doctor.core import Sink
    from mlstack.manifest import SnowflakeData

    section = SnowflakeData.model_validate(snowflake_connection.manifest_section())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        src = SnowflakeSource(section)
        try:
            src.write("t", {"a": [1]})
            assert src.read_arrow("t").num_rows == 1
        finally:
            src.close()
        sink = Sink()
        doctor_data.snowflake_findings(section, 30, sink)
        assert sink.close()
    future = [w for w in seen if issubclass(w.category, FutureWarning)]
    assert not future, [str(w.message)[:120] for w in future]


def test_an_error_half_way_through_a_query_is_a_data_error(
    local_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB runs a query as the stream is read: a cast failing on the last row used to surface from the
    Arrow stream as an OSError, an "unexpected error"."""
    import pyarrow as pa

    mlstack.data.reset()
    rows = 3_000_000
    mlstack.data.write("big", pa.table({"id": pa.array(range(rows), pa.int64())}))
    sql = f"select case when id = {rows - 1} then 'x'::varchar::int else id end as v from big"
    code, err = err_of(capsys, "data", "query", sql)
    assert code == 1 and "Could not convert string 'x'" in err
    assert "unexpected error" not in err and "TRY_CAST" in err
    mlstack.data.reset()

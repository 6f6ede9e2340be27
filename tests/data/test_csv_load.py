"""`mlstack data load` of CSV files that go wrong (issue 12, finding 12), through the real entry point.

Invalid UTF-8, a value that does not fit the column's type (inferred, or the table's own on append), a row
with a field too many: each is one error naming the file, the line and the column, never "unexpected error"
or a traceback, and the table is left as it was (no version, no empty folder). Non-regular files are refused.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pyarrow as pa
import pytest

import mlstack.data
from mlstack.cli.main import main
from mlstack.data.files import CSV_BLOCK_BYTES


@pytest.fixture
def lake(local_home: Path) -> Path:
    mlstack.data.reset()
    assert main(["init"]) == 0
    yield local_home / "data" / "lake"
    mlstack.data.reset()


def load(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["data", "load", *args])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def clean(text: str) -> None:
    assert "unexpected error" not in text and "Traceback" not in text and 'File "' not in text, text


def big_csv(path: Path, tail: bytes, header: bytes = b"id,region,amount\n") -> int:
    """A CSV larger than one read block (types are inferred from the first), then ``tail``; returns its line."""
    rows = CSV_BLOCK_BYTES // 18 + 1000
    with path.open("wb") as fh:
        fh.write(header)
        step = 50_000
        for start in range(0, rows, step):
            fh.write(b"".join(b"%d,north,%d.5\n" % (i, i) for i in range(start, min(rows, start + step))))
        fh.write(tail)
    assert path.stat().st_size > CSV_BLOCK_BYTES
    return rows + 2


def test_invalid_utf8_names_line_and_column(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(b"id,region,amount\n1,north,10.5\n2,s\xffouth,20\n")
    code, text = load(capsys, str(f), "sales")
    assert code == 1, text
    clean(text)
    assert "line 3" in text and "column 'region'" in text and "0xff" in text and "--encoding" in text
    assert not (lake / "sales").exists()
    code, text = load(capsys, str(f), "sales", "--encoding", "latin-1")
    assert code == 0, text
    assert mlstack.data.read_arrow("select region from sales where id = 2").column(0).to_pylist() == [
        "s\xffouth"
    ]


def test_invalid_utf8_after_the_first_block(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "big.csv"
    line = big_csv(f, b"9,s\xffouth,1.0\n")
    code, text = load(capsys, str(f), "big")
    assert code == 1, text
    clean(text)
    assert f"line {line}" in text and "column 'region'" in text
    assert not (lake / "big").exists()


def test_a_bad_value_after_the_first_block_leaves_no_table(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "big.csv"
    line = big_csv(f, b"x,south,1.0\n")
    code, text = load(capsys, str(f), "big")
    assert code == 1, text
    clean(text)
    assert f"line {line}" in text and "column 'id'" in text and "'x'" in text and "int64" in text
    assert "--type id=string" in text
    assert not (lake / "big").exists()
    code, text = load(capsys, str(f), "big", "--type", "id=string")
    assert code == 0, text


def test_a_type_change_on_append_names_line_and_column_and_keeps_the_table(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "sales.csv"
    first.write_text("id,region,amount\n1,north,10.5\n2,south,20\n", encoding="utf-8")
    assert load(capsys, str(first), "sales")[0] == 0
    more = tmp_path / "more.csv"
    more.write_text("id,region,amount\n3,east,1.5\n4,west,n/a?\n", encoding="utf-8")
    code, text = load(capsys, str(more), "sales")
    assert code == 1, text
    clean(text)
    assert "line 3" in text and "column 'amount'" in text and "the table has 'amount' as double" in text
    assert "--mode overwrite" in text
    assert [h["version"] for h in mlstack.data.source().history("sales")] == [0]
    assert mlstack.data.read_arrow("sales").num_rows == 2


def test_a_row_with_too_many_fields(lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "f.csv"
    f.write_text("id,region\n1,north\n2,south,extra\n", encoding="utf-8")
    code, text = load(capsys, str(f), "t")
    assert code == 1, text
    clean(text)
    assert "line 3 has 3 fields, the header has 2" in text
    assert not (lake / "t").exists()


def test_a_type_option_reads_a_column_as_text(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "z.csv"
    f.write_text("zip,n\n01234,1\n00501,2\n", encoding="utf-8")
    code, text = load(capsys, str(f), "zips", "--type", "zip=string", "--json")
    assert code == 0, text
    assert json.loads(text)["rows"] == 2
    assert mlstack.data.read_arrow("zips").column("zip").to_pylist() == ["01234", "00501"]
    code, text = load(capsys, str(f), "zips2", "--type", "zip=varchar2")
    assert code == 2 and "unknown type 'varchar2'" in text


@pytest.mark.timeout(60)
def test_non_regular_files_are_refused(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = load(capsys, "/dev/zero", "t")
    assert code == 2 and "a device" in text
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    done: list[tuple[int, str]] = []
    t = threading.Thread(target=lambda: done.append(load(capsys, str(fifo), "t")), daemon=True)
    t.start()
    t.join(20)
    if not done:
        with open(fifo, "w") as fh:  # unblock the reader, then fail
            fh.write("a\n1\n")
        t.join(5)
        pytest.fail("loading from a FIFO blocked")
    assert done[0][0] == 2 and "FIFO" in done[0][1]


def test_a_failing_stream_writes_no_version(lake: Path) -> None:
    """The library path: a reader that fails half-way commits nothing, new table or old."""

    class Boom(Exception):
        pass

    schema = pa.schema([("id", pa.int64())])

    def batches(fail: bool):  # type: ignore[no-untyped-def]
        yield pa.record_batch([pa.array([1, 2])], schema=schema)
        if fail:
            raise Boom("the source went away")

    with pytest.raises(Exception, match="the source went away") as err:
        mlstack.data.write("fresh", pa.RecordBatchReader.from_batches(schema, batches(True)))
    assert "Traceback" not in str(err.value)
    assert not (lake / "fresh").exists()
    mlstack.data.write("old", pa.RecordBatchReader.from_batches(schema, batches(False)))
    with pytest.raises(Exception, match="the source went away"):
        mlstack.data.write("old", pa.RecordBatchReader.from_batches(schema, batches(True)))
    assert [h["version"] for h in mlstack.data.source().history("old")] == [0]
    assert mlstack.data.read_arrow("old").num_rows == 2

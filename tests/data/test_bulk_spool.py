"""The spool of a bulk write: small data stays in memory, the rest becomes Parquet files, nothing is left over."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlstack.data import bulk


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Spool folders go under this test's tmp_path, so leftovers are visible."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()), "v": [f"r{i}" for i in range(n)]})


def test_small_data_stays_in_memory(private_tmp: Path) -> None:
    with bulk.spool(rows(10), small_rows=10) as sp:
        assert sp.small and sp.rows == 10 and sp.files == [] and sp.table is not None
        assert sp.table.equals(rows(10))
    assert list(private_tmp.iterdir()) == []


def test_data_over_the_row_limit_becomes_parquet_files_that_hold_every_row(private_tmp: Path) -> None:
    with bulk.spool(rows(11), small_rows=10) as sp:
        assert not sp.small and sp.rows == 11 and len(sp.files) == 1
        assert pq.read_table(sp.files[0]).equals(rows(11))
        assert pq.ParquetFile(sp.files[0]).metadata.row_group(0).column(0).compression == "SNAPPY"
    assert list(private_tmp.iterdir()) == []  # the folder went with the spool


def test_data_over_the_byte_limit_becomes_files_too() -> None:
    with bulk.spool(rows(100), small_rows=1000, small_bytes=64) as sp:
        assert not sp.small and pq.read_table(sp.files[0]).num_rows == 100


def test_files_rotate_at_the_byte_target_and_keep_order() -> None:
    reader = pa.RecordBatchReader.from_batches(
        rows(1).schema, (b for i in range(20) for b in rows(1000, i * 1000).to_batches())
    )
    with bulk.spool(reader, small_rows=0, file_bytes=20_000) as sp:
        assert len(sp.files) > 3
        back = pa.concat_tables(pq.read_table(f) for f in sp.files)
        assert back.column("id").to_pylist() == list(range(20_000))


def test_empty_data_is_small_and_keeps_the_schema() -> None:
    with bulk.spool(rows(0)) as sp:
        assert sp.small and sp.rows == 0 and sp.table is not None and sp.table.schema == rows(0).schema


def test_a_stream_that_fails_half_way_raises_its_error_and_leaves_no_file(private_tmp: Path) -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        yield from rows(500).to_batches()
        raise ValueError("line 501: bad value")

    reader = pa.RecordBatchReader.from_batches(rows(1).schema, batches())
    with pytest.raises(ValueError, match="line 501"):
        bulk.spool(reader, small_rows=10)
    assert list(private_tmp.iterdir()) == []


def test_parquet_options_reach_the_writer() -> None:
    t = pa.table({"ts": pa.array([1_000_000_123], pa.timestamp("ns"))})
    with bulk.spool(
        t, small_rows=0, parquet_options={"coerce_timestamps": "us", "allow_truncated_timestamps": True}
    ) as sp:
        assert pq.read_table(sp.files[0]).schema.field("ts").type == pa.timestamp("us")

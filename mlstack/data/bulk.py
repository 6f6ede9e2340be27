"""Bulk writes to the warehouses: spool the data to Parquet files, load them in one statement.

A write to Snowflake or Databricks reads the whole input once, before it touches the warehouse:

- a *small* write (at most ``SMALL_WRITE_ROWS`` rows and ``SMALL_WRITE_BYTES`` of Arrow data) stays in memory
  and goes as one ``INSERT`` statement: one round trip, less than staging a file costs;
- anything bigger is written to Parquet files (``FILE_BYTES`` of Arrow data each, Snappy-compressed) in a
  private temporary folder, then uploaded to a stage (Snowflake) or a Unity Catalog volume (Databricks) and
  loaded with one ``COPY INTO``. The number of requests grows with the number of files, not of rows.

Because the input is read to the end first, an input that fails half-way (a bad row in a CSV file) fails
before anything was sent: the table stays as it was. The temporary files are removed on every outcome.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: writes of at most this many rows (and SMALL_WRITE_BYTES) go as one INSERT statement instead of a stage
SMALL_WRITE_ROWS = 10_000
#: ... and at most this much Arrow data: an INSERT this size is one request of a few MiB of SQL text
SMALL_WRITE_BYTES = 2 << 20
#: Arrow data per Parquet file (Snappy shrinks it 2-5x: ~25-60 MiB files, in the 10-250 MiB Snowflake and
#: Databricks recommend for parallel loading, and far under the Files API's 5 GiB per request)
FILE_BYTES = 128 << 20
#: rows per Parquet row group
ROW_GROUP_ROWS = 1 << 20


def load_id() -> str:
    """A unique name for one load's staged files (and its staging table)."""
    return uuid.uuid4().hex


@dataclass
class Spool:
    """The data of one write: in memory (``table``) when small, else Parquet files in a temporary folder.

    Use as a context manager: the folder is removed on exit, whatever happened.
    """

    schema: pa.Schema
    rows: int = 0
    table: pa.Table | None = None
    files: list[Path] = field(default_factory=list)
    folder: Path | None = None

    @property
    def small(self) -> bool:
        """True when the data stayed in memory (an INSERT carries it)."""
        return self.table is not None

    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _batches(data: pa.Table | pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    if isinstance(data, pa.Table):
        yield from data.to_batches()
    else:
        yield from data


def spool(
    data: pa.Table | pa.RecordBatchReader,
    *,
    small_rows: int | None = None,
    small_bytes: int | None = None,
    file_bytes: int | None = None,
    parquet_options: dict[str, Any] | None = None,
) -> Spool:
    """Read ``data`` to the end: keep it in memory when small, else write it to Parquet files.

    Raises whatever reading the data raises (after removing the files written so far). ``parquet_options``
    go to ``pyarrow.parquet.ParquetWriter`` (e.g. ``coerce_timestamps="us"`` where the warehouse reads
    microseconds only). Limits default to the module's constants, read at call time.
    """
    small_rows = SMALL_WRITE_ROWS if small_rows is None else small_rows
    small_bytes = SMALL_WRITE_BYTES if small_bytes is None else small_bytes
    file_bytes = FILE_BYTES if file_bytes is None else file_bytes
    schema = data.schema
    out = Spool(schema=schema)
    held: list[pa.RecordBatch] = []
    held_bytes = 0
    writer: pq.ParquetWriter | None = None
    in_file = 0
    options = {"compression": "snappy", **(parquet_options or {})}

    def new_file() -> pq.ParquetWriter:
        if out.folder is None:
            out.folder = Path(tempfile.mkdtemp(prefix="mlstack-load-"))
        path = out.folder / f"part-{len(out.files):05d}.parquet"
        out.files.append(path)
        return pq.ParquetWriter(str(path), schema, **options)

    try:
        for batch in _batches(data):
            if batch.num_rows == 0:
                continue
            out.rows += batch.num_rows
            if writer is None and out.folder is None:
                held.append(batch)
                held_bytes += batch.nbytes
                if out.rows <= small_rows and held_bytes <= small_bytes:
                    continue
                pending, held = held, []
            else:
                pending = [batch]
            for b in pending:
                # a big batch goes in slices of about a quarter file, so files end near their target size
                step = max(1, b.num_rows * max(file_bytes // 4, 1) // max(b.nbytes, 1))
                for offset in range(0, b.num_rows, step):
                    piece = b.slice(offset, step)
                    if writer is not None and in_file >= file_bytes:
                        writer.close()
                        writer = None
                    if writer is None:
                        writer, in_file = new_file(), 0
                    writer.write_batch(piece, row_group_size=ROW_GROUP_ROWS)
                    in_file += piece.nbytes
        if writer is not None:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # the folder goes anyway
                pass
        out.close()
        raise
    if out.folder is None:
        out.table = pa.Table.from_batches(held, schema=schema)
    return out

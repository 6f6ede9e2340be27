"""mlstack.data: one interface for every warehouse, Arrow as the contract, streaming by default.

    import mlstack.data as data
    reader = data.read("sales", columns=["region", "amount"])      # pyarrow.RecordBatchReader
    df = data.read_pandas("select region, sum(amount) s from sales group by 1")
    data.write("sales", df, mode="append")                           # -> WriteResult(version=...)
    shards = data.shards("sales")                                   # picklable; shard.read() -> Arrow

The source comes from the stack manifest in force (``mlstack.manifest.current()``) on first use: the local
DuckDB + Delta lake, Snowflake, Databricks or an Athena lakehouse. Every read is recorded in the current
run's inputs (``mlstack.run``), so artifacts written later name the tables and versions they came from.

This module stays light: pyarrow and the warehouse clients load with the adapter, on the first call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from mlstack.data.base import DataSource, Shard, TableInfo, WriteResult
    from mlstack.manifest import Manifest

__all__ = [
    "DataSource",
    "Shard",
    "TableInfo",
    "WriteResult",
    "read",
    "read_arrow",
    "read_pandas",
    "reset",
    "shards",
    "source",
    "tables",
    "write",
]

_sources: dict[str, Any] = {}
_lock = threading.Lock()


def source(manifest: Manifest | str | None = None) -> DataSource:
    """The data source of ``manifest`` (a Manifest, a manifest file path, or None for the one in force).

    Sources are cached per data section, so repeated calls reuse one connection.
    """
    import json

    from mlstack import manifest as _manifest
    from mlstack import registry

    if manifest is None:
        m = _manifest.current()
    elif isinstance(manifest, str) or hasattr(manifest, "__fspath__"):
        m = _manifest.load_file(manifest)
    else:
        m = manifest
    section = m.data
    key = json.dumps(section.model_dump(mode="json", by_alias=True), sort_keys=True)
    with _lock:
        src = _sources.get(key)
        if src is None:
            cls = registry.load_backend("data", section.kind)
            src = cls(section)
            _sources[key] = src
        return src  # type: ignore[no-any-return]


def reset() -> None:
    """Close and forget every cached source (tests, or after changing credentials)."""
    with _lock:
        for src in _sources.values():
            try:
                src.close()
            except Exception:  # closing is best effort; a dead connection must not block a reset
                pass
        _sources.clear()


def read(
    sql_or_table: str,
    *,
    columns: Sequence[str] | None = None,
    version: int | str | Mapping[str, int | str] | None = None,
) -> pa.RecordBatchReader:
    """Stream a table (some ``columns``, at a ``version``) or the result of a SQL query as Arrow batches."""
    return source().read(sql_or_table, columns=columns, version=version)


def read_arrow(
    sql_or_table: str,
    *,
    columns: Sequence[str] | None = None,
    version: int | str | Mapping[str, int | str] | None = None,
) -> pa.Table:
    """Like :func:`read`, collected into one ``pyarrow.Table``."""
    return source().read_arrow(sql_or_table, columns=columns, version=version)


def read_pandas(
    sql_or_table: str,
    *,
    columns: Sequence[str] | None = None,
    version: int | str | Mapping[str, int | str] | None = None,
) -> pd.DataFrame:
    """Like :func:`read`, as a pandas DataFrame."""
    return source().read_pandas(sql_or_table, columns=columns, version=version)


def write(table: str, data: Any, mode: str = "append") -> WriteResult:
    """Write Arrow or pandas ``data`` to ``table`` (created if missing); ``mode`` is append or overwrite."""
    res = source().write(table, data, mode=mode)
    from mlstack import run as _run

    _run.record_output("table", res.table, res.version, rows=res.rows, mode=res.mode)  # for the run record
    return res


def tables() -> list[TableInfo]:
    """The tables the source in force can read."""
    return source().tables()


def shards(
    sql_or_table: str,
    *,
    columns: Sequence[str] | None = None,
    version: int | str | Mapping[str, int | str] | None = None,
) -> list[Shard]:
    """Split a read into picklable units for distributed loaders (``shard.read()`` returns Arrow)."""
    return source().shards(sql_or_table, columns=columns, version=version)


def __getattr__(name: str) -> Any:
    if name in ("DataSource", "Shard", "TableInfo", "WriteResult"):
        from mlstack.data import base as _base

        return getattr(_base, name)
    raise AttributeError(f"module 'mlstack.data' has no attribute {name!r}")

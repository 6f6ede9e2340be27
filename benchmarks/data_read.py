"""Benchmark: read a 10M-row x 5-numeric-column table into memory through mlstack.data (local stack).

Compares, on the same Delta table's Parquet files:
  - pyarrow.parquet.read_table            the ceiling (no table format, no lineage, just Parquet -> Arrow)
  - mlstack.data.read_arrow("bench")       what a training job calls
  - mlstack.data.read("bench").read_all()  the streaming reader, drained
  - duckdb ... .df()                       DuckDB straight to pandas
  - pandas.read_sql                        the common DB-API path (DuckDB as the connection)

One run of the benchmark times each contender ``--repeat`` times (default 3), round-robin so that load from
other processes hits every contender alike, and keeps each one's best; a warm-up read first puts the files
in the OS page cache, as on a training node re-reading its data. Prints a ratio table.
Targets: mlstack >= 0.8x the ceiling and >= 1.5x DuckDB .df().

    .venv/bin/python benchmarks/data_read.py [--rows 10000000] [--repeat 3] [--home DIR] [--skip-read-sql] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_CEILING = 0.8
TARGET_DUCKDB = 1.5


def build(home: Path, rows: int) -> Path:
    """Write the benchmark table through mlstack (once; reused when it already has ``rows`` rows)."""
    import numpy as np
    import pyarrow as pa

    import mlstack.data

    table_dir = home / "data" / "lake" / "bench"
    if table_dir.is_dir():
        have = sum(t.rows or 0 for t in mlstack.data.tables() if t.name == "bench")
        if have == rows:
            return table_dir
    rng = np.random.default_rng(7)
    data = pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "x1": pa.array(rng.random(rows)),
            "x2": pa.array(rng.random(rows)),
            "x3": pa.array(rng.standard_normal(rows)),
            "label": pa.array(rng.integers(0, 2, rows, dtype=np.int32)),
        }
    )
    mlstack.data.write("bench", data, mode="overwrite")
    return table_dir


def timed(fn: Callable[[], Any]) -> tuple[float, int]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    n = out.num_rows if hasattr(out, "num_rows") else len(out)
    del out
    return elapsed, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--home", type=Path, default=None, help="MLSTACK_HOME to use (default: a temp folder)")
    p.add_argument("--repeat", type=int, default=3, help="timings per contender (best kept); 1 = single shot")
    p.add_argument("--skip-read-sql", action="store_true", help="skip pandas.read_sql (slowest by far)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)

    tmp = None
    if args.home is None:
        tmp = tempfile.TemporaryDirectory(prefix="mlstack-bench-")
        args.home = Path(tmp.name)
    os.environ["MLSTACK_HOME"] = str(args.home.resolve())
    os.environ.pop("MLSTACK_MANIFEST", None)

    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq

    import mlstack.data

    table_dir = build(args.home, args.rows)
    files = str(table_dir / "*.parquet")
    con = duckdb.connect()
    # one warm-up read so every contender finds the files in the page cache
    pq.read_table(table_dir)

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("pyarrow.parquet.read_table (ceiling)", lambda: pq.read_table(table_dir)),
        ("mlstack.data.read_arrow", lambda: mlstack.data.read_arrow("bench")),
        ("mlstack.data.read(...).read_all()", lambda: mlstack.data.read("bench").read_all()),
        ("duckdb .df()", lambda: con.sql(f"select * from read_parquet('{files}')").df()),
    ]
    if not args.skip_read_sql:

        def read_sql() -> Any:
            with warnings.catch_warnings():  # pandas warns that DuckDB is not SQLAlchemy; it works via DB-API
                warnings.simplefilter("ignore")
                return pd.read_sql(f"select * from read_parquet('{files}')", con)

        cases.append(("pandas.read_sql (DuckDB DB-API)", read_sql))

    results: dict[str, float] = {}
    for round_ in range(max(1, args.repeat)):
        for name, fn in cases:
            if name.startswith("pandas.read_sql") and round_ > 0:
                continue  # tens of seconds a shot, and far from the others either way: time it once
            secs, n = timed(fn)
            if n != args.rows:
                raise SystemExit(f"{name} returned {n} rows, expected {args.rows}")
            results[name] = min(secs, results.get(name, secs))

    ceiling = results["pyarrow.parquet.read_table (ceiling)"]
    ours = results["mlstack.data.read_arrow"]
    duck = results["duckdb .df()"]
    summary = {
        "rows": args.rows,
        "columns": 5,
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "seconds": results,
        "mlstack_vs_ceiling": ceiling / ours,
        "mlstack_vs_duckdb_df": duck / ours,
        "targets": {"vs_ceiling": TARGET_CEILING, "vs_duckdb_df": TARGET_DUCKDB},
    }
    summary["meets_targets"] = (
        summary["mlstack_vs_ceiling"] >= TARGET_CEILING and summary["mlstack_vs_duckdb_df"] >= TARGET_DUCKDB
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.rows:,} rows x 5 numeric columns, local Delta table, {os.cpu_count()} CPUs, "
            f"best of {args.repeat} (pandas.read_sql: 1)\n"
        )
        print("| reader | seconds | speed vs mlstack.data.read_arrow |")
        print("|---|---:|---:|")
        for name, secs in results.items():
            print(f"| {name} | {secs:.3f} | {ours / secs:.2f}x |")
        print(
            f"\nmlstack.data.read_arrow = {summary['mlstack_vs_ceiling']:.2f}x the ceiling "
            f"(target >= {TARGET_CEILING}), {summary['mlstack_vs_duckdb_df']:.2f}x DuckDB .df() "
            f"(target >= {TARGET_DUCKDB})"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0 if summary["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""``mlstack data``: query the warehouse in force, list its tables, load a CSV or Parquet file into it.

Heavy imports (pyarrow, the warehouse clients) happen inside the commands, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlstack.cli._common import (
    JsonOpt,
    ManifestOpt,
    console,
    emit_json,
    err_console,
    load,
    parse_kv,
    print_table,
)

data_app = typer.Typer(
    name="data",
    help="Query the stack's warehouse, list its tables, load files into it.",
    no_args_is_help=True,
)

_PREVIEW_ROWS = 50


def _source(manifest: Path | None) -> Any:
    from mlstack import data

    return data.source(load(manifest).manifest)


def _version(value: str | None) -> str | None:
    """``--version`` as given: the adapter parses it (a number, a timestamp), never the CLI's str.isdigit,
    which takes '²' for a digit."""
    return value


@data_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="SQL text, or a table name to read the whole table.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the full result to FILE (.parquet or .csv) instead of printing it."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Read the table at this version: a number (Delta version; seconds ago on Snowflake, "
            "negative) or an ISO timestamp (2026-01-01 12:00:00).",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, help="Rows to print (0 = all); --out and --json get every row."),
    ] = _PREVIEW_ROWS,
    json_out: JsonOpt = False,
    manifest: ManifestOpt = None,
) -> None:
    """Run a query (or read a table) on the stack's warehouse and print or save the result."""
    from mlstack.errors import UsageError

    if out is not None and out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise UsageError(f"--out must end in .parquet or .csv, got {str(out)!r}", fix="--out result.parquet")
    src = _source(manifest)
    reader = src.read(sql, version=_version(version))
    if out is not None:
        rows = _write_file(reader, out)
        if json_out:
            emit_json({"out": str(out), "rows": rows, "columns": reader.schema.names})
        else:
            console.print(f"wrote {rows} row{'s' if rows != 1 else ''} to {out}")
        return
    if json_out:
        table = reader.read_all()
        emit_json({"columns": table.column_names, "rows": _json_rows(table), "row_count": table.num_rows})
        return
    # keep only the rows to print; the rest is counted as it streams past (a big table never sits in memory)
    import pyarrow as pa

    kept: list[Any] = []
    held = total = 0
    for batch in reader:
        total += batch.num_rows
        if limit == 0 or held < limit:
            part = batch if limit == 0 else batch.slice(0, limit - held)
            kept.append(part)
            held += part.num_rows
    shown = pa.Table.from_batches(kept, schema=reader.schema)
    names = shown.column_names
    print_table(None, names, ([r[c] for c in names] for r in shown.to_pylist()))
    more = total - shown.num_rows
    tail = f" ({more} not shown; --limit 0 prints all, --out saves all)" if more else ""
    err_console.print(f"{total} row{'s' if total != 1 else ''}{tail}")


def _json_rows(table: Any) -> list[dict[str, Any]]:
    """Rows for JSON: decimals become numbers (warehouses return NUMBER/DECIMAL for sums and money)."""
    import decimal

    def conv(v: Any) -> Any:
        if isinstance(v, decimal.Decimal):
            exponent = v.as_tuple().exponent
            return int(v) if isinstance(exponent, int) and exponent >= 0 else float(v)
        return v

    return [{k: conv(v) for k, v in row.items()} for row in table.to_pylist()]


def _write_file(reader: Any, out: Path) -> int:
    """Stream batches to a Parquet or CSV file (written to a temp name, renamed when complete)."""
    import os

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    rows = 0
    try:
        if out.suffix.lower() == ".csv":
            with pacsv.CSVWriter(str(tmp), reader.schema) as w:
                for batch in reader:
                    w.write_batch(batch)
                    rows += batch.num_rows
        else:
            with pq.ParquetWriter(str(tmp), reader.schema) as pw:
                for batch in reader:
                    pw.write_batch(batch)
                    rows += batch.num_rows
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


@data_app.command("tables")
def tables(json_out: JsonOpt = False, manifest: ManifestOpt = None) -> None:
    """List the tables the stack's warehouse holds."""
    src = _source(manifest)
    infos = src.tables()
    if json_out:
        emit_json({"kind": src.kind, "tables": [t.to_dict() for t in infos]})
        return
    if not infos:
        err_console.print(
            f"no tables in the {src.kind} data source; load one with `mlstack data load FILE TABLE`"
        )
        return
    print_table(
        f"{src.kind} tables",
        ["name", "kind", "version", "rows", "location"],
        ((t.name, t.kind, t.version, t.rows, t.location) for t in infos),
    )


@data_app.command("load")
def load_file(
    file: Annotated[
        Path,
        typer.Argument(help="A .csv/.tsv (optionally .gz) or .parquet file, or a folder of Parquet files."),
    ],
    table: Annotated[str, typer.Argument(help="Table to create or append to.")],
    mode: Annotated[str, typer.Option("--mode", help="append (default) or overwrite the table.")] = "append",
    encoding: Annotated[
        str, typer.Option("--encoding", help="Text encoding of a CSV file (utf-8, latin-1, cp1252, ...).")
    ] = "utf-8",
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Read a CSV column as this type, e.g. --type zip=string (string, int64, double, bool, date, "
            "timestamp). Default: inferred from the first rows, or the table's own types when appending.",
        ),
    ] = None,
    json_out: JsonOpt = False,
    manifest: ManifestOpt = None,
) -> None:
    """Load a CSV or Parquet file into a table of the stack's warehouse (created if missing).

    A bad value, a row with too many fields or bytes that are not text stop the load with the line and
    column; the table is left as it was.
    """
    from mlstack.data.files import column_types, open_table_file, regular_file
    from mlstack.errors import UsageError

    if mode not in ("append", "overwrite"):
        raise UsageError(f"--mode must be append or overwrite, got {mode!r}", fix="--mode overwrite")
    given = column_types(parse_kv(types, "--type"))
    regular_file(file)
    src = _source(manifest)
    # appending: read the file's columns as the table's types, so a value that does not fit names its line
    have = src.table_schema(table) if mode == "append" else None
    reader = open_table_file(file, types=given or None, table_types=have, encoding=encoding)
    result = src.write(table, reader, mode=mode)
    if json_out:
        emit_json(result.to_dict())
        return
    v = f", version {result.version}" if result.version is not None else ""
    console.print(
        f"loaded {result.rows} row{'s' if result.rows != 1 else ''} into {result.table} ({mode}{v})"
    )


@data_app.command("history")
def history(
    table: Annotated[str, typer.Argument(help="A table with versions (a local Delta table).")],
    json_out: JsonOpt = False,
    manifest: ManifestOpt = None,
) -> None:
    """The versions of a table, newest first (what `--version` / version= can read)."""
    from mlstack.errors import UsageError

    src = _source(manifest)
    if not hasattr(src, "history"):
        raise UsageError(
            f"the {src.kind} data source does not list table versions here",
            fix="use the warehouse's own history (DESCRIBE HISTORY on Databricks, Time Travel on Snowflake)",
        )
    rows = src.history(table)
    if json_out:
        emit_json({"table": table, "versions": rows})
        return
    print_table(
        f"{table} versions",
        ["version", "timestamp", "operation", "mode", "rows_added"],
        ((r["version"], _ts(r["timestamp"]), r["operation"], r["mode"], r["rows_added"]) for r in rows),
    )


def _ts(ms: Any) -> str:
    import datetime as dt

    if not isinstance(ms, int | float):
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(data_app, name="data")

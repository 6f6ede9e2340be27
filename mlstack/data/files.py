"""Reading CSV and Parquet files for ``mlstack data load``: streamed, and every error names where it is.

pyarrow reads CSV in blocks and infers each column's type from the first block; what goes wrong later (a
value that does not fit the type, bytes that are not UTF-8, a row with a field too many) comes back as
``In CSV column #2: CSV conversion error to double: invalid value 'abc'`` with no line, or after the first
block, in the middle of a write. Here every such error becomes a DataError naming the file, the line, the
column and the fix; the line is found by scanning the file again, which costs time only when a load fails.

Only regular files are read (a FIFO would block forever, ``/dev/zero`` never ends), and a folder is read
as a Parquet dataset.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from mlstack.data.base import preview
from mlstack.errors import DataError, UsageError

#: pyarrow reads CSV in blocks this big; types are inferred from the first block
CSV_BLOCK_BYTES = 16 << 20
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (.+?): invalid value '(.*)'$", re.S)
_UTF8 = re.compile(r"In CSV column #(\d+): CSV conversion error to (?:string|utf8).*invalid UTF8", re.S)
_FIELDS = re.compile(r"CSV parse error: Expected (\d+) columns, got (\d+)")

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class CsvFile:
    """A CSV file and how it is read (what the error locators need to read it the same way)."""

    path: Path
    delimiter: str
    encoding: str

    def text(self) -> io.TextIOBase:
        """The file as text, decompressed like pyarrow does (``.gz``, ``.bz2``, ...), bad bytes replaced."""
        raw = pa.input_stream(str(self.path), compression="detect")
        return io.TextIOWrapper(raw, encoding=self.encoding, errors="replace", newline="")  # type: ignore[arg-type]


def regular_file(path: Path, what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path``, refusing what is not a regular file (FIFOs, devices, sockets)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(
            f"{what} {str(path)!r} does not exist", fix="pass the path of an existing file"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise UsageError(
            f"{what} {str(path)!r} is {kind}, not a regular file",
            fix="pass a regular file (copy a stream to a file first)",
        )
    return st


TYPE_NAMES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "double": pa.float64(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}


def column_types(pairs: dict[str, str]) -> pa.Schema:
    """``{"id": "string"}`` (from ``--type id=string``) as a schema; unknown type names are a UsageError."""
    fields = []
    for column, name in pairs.items():
        t = TYPE_NAMES.get(name.strip().lower())
        if t is None:
            raise UsageError(
                f"--type {column}={name}: unknown type {name!r}",
                fix=f"use one of: {', '.join(sorted(TYPE_NAMES))}",
            )
        fields.append(pa.field(column, t))
    return pa.schema(fields)


def open_table_file(
    path: Path,
    *,
    types: pa.Schema | None = None,
    table_types: pa.Schema | None = None,
    encoding: str = "utf-8",
) -> pa.RecordBatchReader:
    """A streaming Arrow reader over a CSV file, a Parquet file or a folder of Parquet files.

    ``types`` (``--type``) and ``table_types`` (those of the table a load appends to; ``types`` win): column
    types to read CSV columns as, so a value that does not fit fails here with its line rather than inside
    the write. ``encoding``: the CSV's text encoding.
    """
    st = regular_file(path)
    name = path.name.lower()
    suffix = path.suffix.lower()
    is_csv = suffix in CSV_SUFFIXES or any(
        name.endswith(s + ".gz") or name.endswith(s + ".bz2") for s in CSV_SUFFIXES
    )
    if is_csv and not stat.S_ISDIR(st.st_mode):
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UsageError(
                f"unknown text encoding {encoding!r}", fix="--encoding utf-8 (or latin-1, cp1252, ...)"
            ) from None
        return _open_csv(CsvFile(path, "\t" if suffix == ".tsv" else ",", encoding), types, table_types)
    if suffix in PARQUET_SUFFIXES or stat.S_ISDIR(st.st_mode):
        try:
            return pads.dataset(str(path), format="parquet").scanner().to_reader()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(
                f"cannot read {str(path)!r} as Parquet: {exc}", fix="check that the file is valid Parquet"
            ) from None
    raise UsageError(
        f"cannot tell the format of {str(path)!r} (suffix {suffix or 'none'})",
        fix="name the file .csv or .parquet (.tsv for tab-separated values)",
    )


def _open_csv(f: CsvFile, types: pa.Schema | None, table_types: pa.Schema | None) -> pa.RecordBatchReader:
    wanted = {t.name: t.type for t in table_types or []} | {t.name: t.type for t in types or []}
    column_types: dict[str, pa.DataType] = {}
    if wanted:
        header = _header(f)
        column_types = {n: t for n, t in wanted.items() if n in header and _csv_convertible(t)}
    given = {t.name for t in types or []}
    from_table = {t.name for t in table_types or []} - given
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=f.encoding)
    parse = pacsv.ParseOptions(delimiter=f.delimiter)
    convert = pacsv.ConvertOptions(column_types=column_types or None)
    try:
        reader = pacsv.open_csv(str(f.path), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise csv_error(f, exc, from_table, given) from None
    except OSError as exc:
        raise DataError(
            f"cannot read {str(f.path)!r}: {exc}", fix="check that the file is readable CSV"
        ) from None
    # a column whose first block holds bytes that are not text is inferred as binary: that is a text problem
    for i, field in enumerate(reader.schema):
        if pa.types.is_binary(field.type) and field.name not in column_types:
            raise _utf8_error(f, i)
    schema = reader.schema

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise csv_error(f, exc, from_table, given) from None

    return pa.RecordBatchReader.from_batches(schema, batches())


def _csv_convertible(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_decimal(t)
    )


def _header(f: CsvFile) -> list[str]:
    with f.text() as fh:
        row = next(csv.reader(fh, delimiter=f.delimiter), None)
    return row or []


def _column(header: list[str], index: int) -> str:
    name = header[index] if 0 <= index < len(header) else f"#{index + 1}"
    return f"column {name!r} (field {index + 1})"


def csv_error(
    f: CsvFile,
    exc: BaseException,
    from_table: set[str] | frozenset[str] = frozenset(),
    given: set[str] | frozenset[str] = frozenset(),
) -> DataError:
    """A DataError naming the line and column of what pyarrow could not read in ``f``."""
    text = str(exc)
    where = str(f.path)
    m = _UTF8.search(text)
    if m or isinstance(exc, UnicodeDecodeError):
        return _utf8_error(f, int(m.group(1)) if m else None)
    m = _CONVERSION.search(text)
    if m:
        index, target, value = int(m.group(1)), m.group(2), m.group(3)
        header = _header(f)
        line = _find_row(f, lambda row: len(row) > index and row[index] == value)
        at = f"line {line}, " if line else ""
        column = header[index] if index < len(header) else None
        in_table = column in from_table
        why = (
            f"the table has {column!r} as {target}"
            if in_table
            else f"the file's first rows made {column!r} a column of {target}"
            if column not in given
            else f"--type reads {column!r} as {target}"
        )
        fix = (
            "correct the value on that line, or load with --mode overwrite to replace the table and its types"
            if in_table
            else f"correct the value on that line, or read the column as text: --type {column}=string"
        )
        return DataError(
            f"cannot load {where}: {at}{_column(header, index)}: {preview(value, 40)} is not a valid {target} "
            f"({why})",
            fix=fix,
        )
    m = _FIELDS.search(text)
    if m:
        expected = int(m.group(1))
        line = _find_row(f, lambda row: len(row) != expected)
        at = f"line {line}" if line else "a row"
        return DataError(
            f"cannot load {where}: {at} has {m.group(2)} fields, the header has {expected}",
            fix="make every row have as many fields as the header (quote values that contain the delimiter)",
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return DataError(f"cannot load {where}: {first}", fix="check that the file is valid CSV")


def _find_row(f: CsvFile, bad: object) -> int | None:
    """The line (1-based, as an editor counts) where the first data row for which ``bad(row)`` holds ends."""
    with f.text() as fh:
        reader = csv.reader(fh, delimiter=f.delimiter)
        next(reader, None)
        for row in reader:
            if bad(row):  # type: ignore[operator]
                return reader.line_num
    return None


def _utf8_error(f: CsvFile, index: int | None) -> DataError:
    """Where the first byte that is not valid text in ``f.encoding`` is (line, column, byte offset)."""
    decoder = codecs.getincrementaldecoder(f.encoding)()
    offset = line = 0
    line_start = b""
    found: tuple[int, int, bytes, int] | None = None
    with pa.input_stream(str(f.path), compression="detect") as raw:
        while found is None:
            chunk = raw.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                # positions count from the decoder's buffer: the bytes it held back from the last chunk (the
                # start of a character split across chunks), then this chunk
                held = len(err.object) - len(chunk)
                pos = max(0, err.start - held)
                head = chunk[:pos]
                nl = head.rfind(b"\n")
                row_bytes = head[nl + 1 :] if nl >= 0 else line_start + head
                found = (offset + pos, line + head.count(b"\n"), row_bytes, err.object[err.start])
                break
            if not chunk:
                break
            nl = chunk.rfind(b"\n")
            line_start = chunk[nl + 1 :] if nl >= 0 else line_start + chunk
            line += chunk.count(b"\n")
            offset += len(chunk)
    header = _header(f)
    if found is None:
        col = _column(header, index) if index is not None else "a column"
        return DataError(
            f"cannot load {f.path!s}: {col} holds bytes that are not {f.encoding} text",
            fix="save the file as UTF-8, or pass --encoding with the file's encoding (latin-1, cp1252, ...)",
        )
    at, lineno, row_bytes, byte = found
    field = _field_index(row_bytes.decode(f.encoding, errors="replace"), f.delimiter)
    col = _column(header, field if index is None else index)
    return DataError(
        f"cannot load {f.path!s}: line {lineno + 1}, {col}: byte 0x{byte:02x} (offset {at}) is not "
        f"{f.encoding} text",
        fix="save the file as UTF-8, or pass --encoding with the file's encoding (latin-1, cp1252, ...)",
    )


def _field_index(line_prefix: str, delimiter: str) -> int:
    """How many delimiters precede the end of ``line_prefix`` outside quotes."""
    quoted = False
    count = 0
    for ch in line_prefix:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            count += 1
    return count

"""What every CLI verb shares: options, output (rich table or --json), manifest loading, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        "-m",
        help="Stack manifest file. Default: $MLSTACK_MANIFEST, else ./mlstack.json, else the local stack.",
        dir_okay=False,
    ),
]


def load(manifest_path: Path | None):
    """Resolve the manifest in force for a command (raises ManifestError, handled by main)."""
    from mlstack import manifest

    return manifest.resolve(manifest_path)


def emit_json(obj: Any) -> None:
    """JSON on stdout, nothing else: machines parse it."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        # cells are data, not markup: "[prod]" in a name must print as is
        t.add_row(*[v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in r])
    return t


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    console.print(table(title, columns, rows))


def parse_kv(pairs: Sequence[str] | None, option: str) -> dict[str, str]:
    """Parse ``k=v`` pairs; a pair without '=' is a usage error naming the option and the value."""
    from mlstack.errors import UsageError

    out: dict[str, str] = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects key=value, got {p!r}", fix=f"write it as {option} name=value")
        out[key.strip()] = value
    return out

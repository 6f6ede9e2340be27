"""``mlstack init``, ``mlstack manifest schema|show|validate`` and ``mlstack demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli._common import JsonOpt, ManifestOpt, console, emit_json, load, print_table

manifest_app = typer.Typer(help="Show, validate and describe the stack manifest.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(manifest_app, name="manifest")
    app.command("demo")(demo)


def init(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Folder of the local stack. Default: $MLSTACK_HOME, else the .mlstack/ in this folder or "
            "the nearest parent holding one (or an mlstack.json), else ./.mlstack.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create the local stack (artifacts folder, DuckDB warehouse, Delta lake) and write its manifest."""
    from mlstack import localstack

    res = localstack.init(home)
    if json_out:
        emit_json(
            {
                "home": str(res.home),
                "manifest_path": str(res.manifest_path),
                "created": res.created,
                "origin": res.origin,
                "manifest": res.manifest.to_dict(),
            }
        )
        return
    if res.changed:
        console.print(f"Initialised the local stack {res.describe()}", markup=False)
        for c in res.created:
            console.print(f"  created {c}", markup=False)
    else:
        console.print(
            f"The local stack {res.describe()} is already initialised; nothing changed.", markup=False
        )
    console.print(f"Manifest: {res.manifest_path} (jobs find it with MLSTACK_MANIFEST={res.manifest_path})")


@manifest_app.command("schema")
def manifest_schema() -> None:
    """Print the manifest's JSON Schema (always JSON)."""
    from mlstack import manifest

    emit_json(manifest.json_schema())


@manifest_app.command("show")
def manifest_show(manifest_path: ManifestOpt = None, json_out: JsonOpt = False) -> None:
    """Show the manifest in force and where it came from.

    First match wins: --manifest > $MLSTACK_MANIFEST > the nearest mlstack.json or .mlstack/ in this folder
    or a parent (found the way git finds a repository) > $MLSTACK_HOME > a new local stack in ./.mlstack.
    """
    from mlstack import localstack

    loaded = load(manifest_path)
    if json_out:
        emit_json(
            {"source": loaded.source_kind, "location": loaded.source, "manifest": loaded.manifest.to_dict()}
        )
        return
    m = loaded.manifest
    console.print(f"Manifest from {loaded.describe()}")
    console.print(f"project [bold]{m.project}[/], stack [bold]{m.stack}[/], schema version {m.version}")
    print_table(None, ["layer", "kind", "where"], localstack.describe_layers(m))


@manifest_app.command("validate")
def manifest_validate(
    file: Annotated[Path, typer.Argument(help="Manifest file to check.", dir_okay=False)],
    json_out: JsonOpt = False,
) -> None:
    """Validate a manifest file: exit 0 when valid, 2 with every problem named when not."""
    from mlstack import manifest

    m = manifest.load_file(file)
    if json_out:
        emit_json({"valid": True, "file": str(file), "manifest": m.to_dict()})
    else:
        console.print(f"{file}: valid (project {m.project}, stack {m.stack})")


def demo(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Folder of the local stack. Default: $MLSTACK_HOME, else the .mlstack/ in this folder or "
            "the nearest parent holding one (or an mlstack.json), else ./.mlstack.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """The main job on the local default: set up the local stack and run the example pipeline end to end."""
    from mlstack.demo import run_demo

    run_demo(home, json_out=json_out)

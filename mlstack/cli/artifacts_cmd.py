"""``mlstack artifacts``: put, get, ls, show, alias and verify versioned artifacts in the stack's store.

References: NAME (latest), NAME@3 or NAME@v3 (a version), NAME@<hex> or NAME@sha256:<hex> (a digest prefix
of 4+ characters, when unambiguous), NAME:ALIAS. The store (a folder or an S3 bucket) is the manifest's
``artifacts`` section; boto3 loads only when the manifest asks for S3.
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

artifacts_app = typer.Typer(
    name="artifacts",
    help="Versioned, content-addressed artifacts with aliases and lineage (NAME, NAME@3, NAME@<digest>, NAME:ALIAS).",
    no_args_is_help=True,
)

RefArg = Annotated[
    str,
    typer.Argument(
        help="NAME (latest), NAME@VERSION, NAME@<digest prefix> or NAME:ALIAS.", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(artifacts_app, name="artifacts")


def _store(manifest: Path | None) -> Any:
    from mlstack import artifacts

    return artifacts.store(load(manifest).manifest)


def _warn(problems: list[Any]) -> None:
    """Skipped records and aliases, on stderr: stdout stays the listing (and valid JSON with --json)."""
    for p in problems:
        err_console.print(f"warning: skipped {p.ref} ({p.key}): {p.message}\n  fix: {p.fix}", markup=False)


def _when(created: str) -> str:
    return created[:19].replace("T", " ")


def _size(n: int) -> str:
    from mlstack.artifacts._model import human_size

    return human_size(n)


@artifacts_app.command("put")
def put(
    name: Annotated[str, typer.Argument(help="Artifact name, e.g. churn-model.", show_default=False)],
    path: Annotated[Path, typer.Argument(help="File or folder to store.", show_default=False)],
    alias: Annotated[
        str | None, typer.Option("--alias", "-a", help="Also point this alias (e.g. staging) at the version.")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="Metadata key=value (repeatable), e.g. --meta auc=0.91."),
    ] = None,
    manifest: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Store a file or folder as the next version of NAME and print the version (unchanged content: no new one)."""
    from mlstack.errors import UsageError

    if not path.exists():
        raise UsageError(
            f"cannot put {str(path)!r}: no such file or directory", fix="pass an existing file or folder"
        )
    metadata = parse_kv(meta, "--meta") if meta else None
    v = _store(manifest).put(name, path, alias=alias, metadata=metadata)
    if json_out:
        emit_json({**v.to_dict(), "unchanged": v.unchanged})
        return
    note = " (unchanged: same content as the latest version, no new version)" if v.unchanged else ""
    aliases = f" [{', '.join(v.aliases)}]" if v.aliases else ""
    console.print(f"{v.ref}  sha256:{v.short_digest}  {_size(v.size)}{aliases}{note}", markup=False)


@artifacts_app.command("get")
def get(
    ref: RefArg,
    dest: Annotated[
        Path, typer.Argument(help="Where to write: a file path, or a folder.", show_default=False)
    ],
    manifest: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a version to DEST after verifying its SHA-256 (a folder artifact is written into DEST)."""
    st = _store(manifest)
    v = st.resolve(ref)
    out = st.get(v, dest)
    if json_out:
        emit_json({**v.to_dict(), "path": str(out)})
        return
    console.print(f"{v.ref}  sha256:{v.short_digest}  {_size(v.size)} -> {out}", markup=False)


@artifacts_app.command("ls")
def ls(
    name: Annotated[
        str | None, typer.Argument(help="List this artifact's versions; default: every artifact.")
    ] = None,
    manifest: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List artifacts (latest version of each), or every version of NAME (newest first)."""
    st = _store(manifest)
    problems: list[Any] = []
    versions = st.ls(name, problems=problems)
    _warn(problems)
    if json_out:
        emit_json([v.to_dict() for v in versions])
        return
    if not versions:
        console.print(f"No artifacts in {st.location} yet; add one with `mlstack artifacts put NAME PATH`.")
        return
    if name is None:
        rows = [
            (
                v.name,
                v.version,
                v.kind,
                _size(v.size),
                _when(v.created),
                ", ".join(v.aliases),
                f"{v.short_digest}",
            )
            for v in versions
        ]
        print_table(
            f"artifacts in {st.location}",
            ["name", "latest", "kind", "size", "created", "aliases", "digest"],
            rows,
        )
    else:
        rows = [
            (
                v.version,
                v.kind,
                _size(v.size),
                v.created,
                v.run_id or "",
                ", ".join(v.aliases),
                v.short_digest,
            )
            for v in versions
        ]
        print_table(
            f"{name} in {st.location}",
            ["version", "kind", "size", "created", "run", "aliases", "digest"],
            rows,
        )


@artifacts_app.command("show")
def show(ref: RefArg, manifest: ManifestOpt = None, json_out: JsonOpt = False) -> None:
    """Show a version: digest, size, run, code version, metadata, aliases and lineage (its inputs)."""
    st = _store(manifest)
    problems: list[Any] = []
    v = st.show(ref, problems=problems)
    _warn(problems)
    if json_out:
        emit_json(v.to_dict())
        return
    console.print(st.lineage_text(v), markup=False)
    if v.metadata:
        print_table("metadata", ["key", "value"], sorted((k, str(val)) for k, val in v.metadata.items()))


@artifacts_app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="Artifact name.", show_default=False)],
    version: Annotated[
        str, typer.Argument(help="Version number (3 or v3) or digest prefix.", show_default=False)
    ],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias to move, e.g. production.")],
    manifest: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Point NAME:ALIAS at a version (compare-and-swap: concurrent moves are never lost)."""
    v = _store(manifest).set_alias(name, version, alias_name)
    if json_out:
        emit_json({**v.to_dict(), "alias": alias_name})
        return
    console.print(f"{name}:{alias_name} -> {v.ref}  sha256:{v.short_digest}", markup=False)


@artifacts_app.command("verify")
def verify(
    ref: Annotated[
        str | None,
        typer.Argument(
            help="NAME, NAME@VERSION or NAME:ALIAS to check end to end; with --repair or without REF: "
            "scan that artifact's (or the whole store's) records, aliases and blobs.",
            show_default=False,
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Also repair what the store itself can: aliases moved back to the version holding their "
            "digest; on S3 with bucket versioning, damaged blobs and documents restored from intact copies.",
        ),
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample", min=1, help="Check at most N blobs, chosen at random (records and aliases: all)."
        ),
    ] = None,
    manifest: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check artifacts end to end (every digest, record and alias); exit 1 while anything is broken.

    With REF: read that version and check it against its record (and alias). Without REF, or with --repair:
    scan every record, alias and blob and print each problem with the command that fixes it.
    """
    st = _store(manifest)
    if ref is not None and not repair and sample is None:
        v = st.verify(ref)
        if json_out:
            emit_json({**v.to_dict(), "verified": True})
            return
        console.print(f"{v.ref}: ok (sha256:{v.short_digest}, {_size(v.size)})", markup=False)
        return
    names = None
    if ref is not None:
        from mlstack.artifacts import parse_ref

        names = [parse_ref(ref).name]
    report = st.scan(names, sample=sample, repair=repair)
    if json_out:
        emit_json(report.to_dict())
    else:
        if report.problems:
            cols = ["what", "ref", "problem", "fix"] + (["repaired"] if repair else [])
            rows = [
                (p.what, p.ref, p.message, p.fix) + (("yes" if p.repaired else "no",) if repair else ())
                for p in report.problems
            ]
            print_table("problems", cols, rows)
        console.print(report.summary(), markup=False)
    if not report.ok:
        raise typer.Exit(1)

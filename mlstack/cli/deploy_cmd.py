"""mlstack up|preview|destroy|outputs through the Pulumi Automation API (see ``mlstack.deploy``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlstack.cli._common import JsonOpt, emit_json, err_console, parse_kv, print_table

PathArg = Annotated[
    Path,
    typer.Argument(
        help="The Pulumi project folder (holds Pulumi.yaml), e.g. stacks/aws-lakehouse.", file_okay=False
    ),
]
StackOpt = Annotated[str, typer.Option("--stack", "-s", help="Stack name, e.g. dev or prod.")]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="State backend URL (file://DIR, s3://BUCKET, https://api.pulumi.com). "
        "Default: $PULUMI_BACKEND_URL, else the CLI's `pulumi login`.",
    ),
]
ConfigOpt = Annotated[
    list[str] | None,
    typer.Option("--config", "-c", help="Stack config key=value (repeatable), e.g. aws:region=us-west-2."),
]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option("--secret", help="Secret stack config key=value (repeatable; stored encrypted)."),
]


def _target(path: Path, stack: str, backend: str | None, config: list[str] | None = None, secret=None):
    from mlstack.deploy import Target

    return Target(
        path=path,
        stack=stack,
        backend_url=backend,
        config=parse_kv(config, "--config"),
        secret_config=parse_kv(secret, "--secret"),
    )


def _stream(line: str) -> None:
    # the CLI's progress goes to stderr so `--json` keeps stdout machine-readable
    err_console.out(line, highlight=False)


def _outputs_json(values: list[Any], show_secrets: bool) -> dict[str, Any]:
    return {o.name: o.shown(show_secrets) for o in values}


def _short(value: Any) -> str:
    import json

    from rich.markup import escape  # "[secret]" would otherwise be read as a markup tag and vanish

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return escape(text if len(text) <= 120 else text[:117] + "...")


def _changes_rows(changes: dict[str, int]) -> list[tuple[str, int]]:
    return [(op, n) for op, n in sorted(changes.items()) if n]


def up(
    path: PathArg,
    stack: StackOpt,
    manifest_out: Annotated[
        Path,
        typer.Option("--manifest-out", "-o", help="Where to write the stack manifest.", dir_okay=False),
    ] = Path("mlstack.json"),
    no_manifest: Annotated[
        bool,
        typer.Option("--no-manifest", help="Do not read or write the manifest (stacks without MLStack)."),
    ] = False,
    config: ConfigOpt = None,
    secret: SecretOpt = None,
    backend: BackendOpt = None,
    message: Annotated[
        str | None, typer.Option("--message", help="Message recorded in the stack history.")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Refresh the state from the cloud first.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy the stack (`pulumi up`) and write its manifest to mlstack.json for jobs and `mlstack doctor`."""
    from mlstack import deploy

    res = deploy.up(
        _target(path, stack, backend, config, secret),
        manifest_out=None if no_manifest else manifest_out,
        on_output=_stream,
        message=message,
        refresh=refresh,
    )
    if as_json:
        emit_json(
            {
                "stack": res.stack,
                "summary": res.summary,
                "outputs": _outputs_json(res.outputs, False),
                "manifest_path": str(res.manifest_path) if res.manifest_path else None,
                "manifest": res.manifest.to_dict() if res.manifest else None,
            }
        )
        return
    changes = res.summary.get("resource_changes") or {}
    print_table(
        f"stack {res.stack}: {res.summary.get('result', '?')}",
        ["change", "resources"],
        _changes_rows(changes),
    )
    if res.manifest_path:
        err_console.print(
            f"manifest written to {res.manifest_path} (use it: `mlstack doctor`, or MLSTACK_MANIFEST)"
        )


def preview(
    path: PathArg,
    stack: StackOpt,
    config: ConfigOpt = None,
    secret: SecretOpt = None,
    backend: BackendOpt = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Refresh the state from the cloud first.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show what `mlstack up` would change, without changing anything."""
    from mlstack import deploy

    res = deploy.preview(_target(path, stack, backend, config, secret), on_output=_stream, refresh=refresh)
    if as_json:
        emit_json({"stack": res.stack, "changes": res.changes})
        return
    print_table(f"stack {res.stack}: preview", ["change", "resources"], _changes_rows(res.changes))


def destroy(
    path: PathArg,
    stack: StackOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    remove_stack: Annotated[
        bool, typer.Option("--remove-stack", help="Also delete the stack itself (its history and config).")
    ] = False,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete the stack's resources. Buckets, keys and data marked retain-on-delete stay in the account."""
    from mlstack import deploy
    from mlstack.errors import UsageError

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to destroy stack {stack!r} without confirmation", fix="pass --yes to confirm"
            )
        typer.confirm(f"Destroy every resource of stack {stack!r} ({path})?", abort=True)
    res = deploy.destroy(_target(path, stack, backend), on_output=_stream, remove_stack=remove_stack)
    if as_json:
        emit_json({"stack": res.stack, "summary": res.summary, "removed_stack": res.removed_stack})
        return
    changes = res.summary.get("resource_changes") or {}
    print_table(f"stack {res.stack}: destroyed", ["change", "resources"], _changes_rows(changes))
    err_console.print("resources created with retain_on_delete (data buckets, KMS keys) were left in place")


def outputs(
    path: PathArg,
    stack: StackOpt,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print secret outputs in clear.")
    ] = False,
    manifest_out: Annotated[
        Path | None,
        typer.Option(
            "--manifest-out",
            "-o",
            help="Also write the stack's manifest output to this file, e.g. mlstack.json after a plain "
            "`pulumi up`.",
            dir_okay=False,
        ),
    ] = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the stack's outputs; secrets show as [secret] unless --show-secrets."""
    from mlstack import deploy

    values = deploy.outputs(_target(path, stack, backend))
    if manifest_out is not None:
        m = deploy.manifest_from_outputs(values, source=f"stack {stack!r}")
        err_console.print(f"manifest written to {deploy.write_manifest(m, manifest_out)}")
    if as_json:
        emit_json(_outputs_json(values, show_secrets))
        return
    print_table(
        f"stack {stack}: outputs",
        ["output", "value", "secret"],
        [(o.name, _short(o.shown(show_secrets)), "yes" if o.secret else "") for o in values],
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("up")(up)
    app.command("preview")(preview)
    app.command("destroy")(destroy)
    app.command("outputs")(outputs)

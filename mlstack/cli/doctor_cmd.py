"""``mlstack doctor``: check the stack in force (or a plan, or a stuck job) and say the fix for each problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlstack.cli._common import JsonOpt, ManifestOpt, console, emit_json, load, print_table

TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds the whole run may take: checks run concurrently, a dead endpoint costs one timeout.",
    ),
]

DEEP_TIMEOUT = 60.0


def _default(ctx: typer.Context, param: str) -> bool:
    """Whether ``param`` was left at its default (not given on the command line)."""
    source = ctx.get_parameter_source(param)
    return source is None or source.name == "DEFAULT"


doctor_app = typer.Typer(
    help="Check the stack, a plan before deploying, or explain a stuck job; every finding comes with a fix.",
    invoke_without_command=True,
)

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def register(app: typer.Typer) -> None:
    app.add_typer(doctor_app, name="doctor")


def _render(title: str, findings: list[Any]) -> None:
    from rich.text import Text

    print_table(
        title,
        ["status", "check", "detail", "fix"],
        [(Text(f.status, style=_STYLE[f.status]), f.check, f.detail, f.fix or "") for f in findings],
    )


def _finish(report: Any, title: str, json_out: bool, extra: dict[str, Any]) -> None:
    if json_out:
        emit_json({**extra, **report.to_dict()})
    else:
        _render(title, report.findings)
        c = report.counts()
        console.print(
            f"{c['ok']} ok, {c['warn']} warn, {c['fail']} fail in {report.elapsed_s:.1f} s"
            + (" — [bold red]failing checks above[/]" if report.failed else "")
        )
    if report.failed:
        raise typer.Exit(1)


@doctor_app.callback()
def doctor(
    ctx: typer.Context,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 5.0,
    preflight: Annotated[
        Path | None,
        typer.Option(
            "--preflight",
            help="Instead: plan the stack program at PATH offline and check its GPU needs against the "
            "account's EC2 vCPU quotas and the zones offering each GPU instance type.",
        ),
    ] = None,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also scan the artifact store: every version record and alias, and a random sample of "
            f"blobs read and hashed (default timeout {DEEP_TIMEOUT:g} s).",
        ),
    ] = False,
) -> None:
    """Check every layer of the stack in force: environment, artifacts, data, compute, orchestrator.

    Exit 1 when a check fails. `mlstack doctor job NAME` explains a stuck pod or workflow.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"manifest": manifest_path, "json": json_out, "timeout": timeout}
        return
    if preflight is not None:
        from mlstack.errors import require_extras

        # both before anything runs: the plan needs Pulumi, the checks need boto3
        require_extras("mlstack doctor --preflight", {"pulumi": "components", "boto3": "aws"})
        from mlstack.doctor import preflight as pf

        report, meta = pf.preflight_path(preflight, timeout=timeout)
        _finish(report, f"Preflight of {preflight}", json_out, {"preflight": str(preflight), **meta})
        return
    from mlstack.doctor.runner import diagnose

    loaded = load(manifest_path)
    if deep and _default(ctx, "timeout"):
        timeout = DEEP_TIMEOUT  # reading blobs takes longer than probing endpoints
    report = diagnose(loaded.manifest, timeout=timeout, deep=deep)
    m = loaded.manifest
    _finish(
        report,
        f"mlstack doctor: {m.project}/{m.stack} (manifest from {loaded.describe()})",
        json_out,
        {
            "manifest": {
                "source": loaded.source_kind,
                "location": loaded.source,
                "project": m.project,
                "stack": m.stack,
            }
        },
    )


@doctor_app.command("job")
def job(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A pod, or an Argo workflow (its pods are explained).")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Default: the manifest's jobs namespace.")
    ] = None,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Explain why a pod or an Argo workflow is stuck (Pending, image pulls, quotas), with the fix."""
    from mlstack.doctor import explain

    parent = ctx.obj or {}
    manifest_path = manifest_path or parent.get("manifest")
    json_out = json_out or bool(parent.get("json"))
    loaded = load(manifest_path)
    report = explain.explain_job(loaded.manifest, name, namespace=namespace, timeout=timeout)
    _finish(report, f"Why is {name} stuck?", json_out, {"job": name})

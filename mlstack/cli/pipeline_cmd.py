"""``mlstack run PATH [--local|--argo] [-p k=v ...]`` and ``mlstack render PATH --argo``.

PATH is a Python file or a folder holding ``pipeline.py``. Heavy imports (hera) stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli._common import JsonOpt, ManifestOpt, console, emit_json, err_console, parse_kv

PathArg = Annotated[Path, typer.Argument(help="A pipeline file, or a folder holding pipeline.py.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Set a pipeline param: -p key=value (repeatable; lists as JSON)."),
]
ImageOpt = Annotated[
    str | None, typer.Option("--image", help="Container image for steps that name none (Argo only).")
]


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("render")(render)


def run(
    path: PathArg,
    local: Annotated[bool, typer.Option("--local", help="Run the steps as local subprocesses.")] = False,
    argo: Annotated[bool, typer.Option("--argo", help="Submit to the stack's Argo server.")] = False,
    param: ParamOpt = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            help="Reuse what succeeded in RUN (an id or `latest`) with the same code and inputs; "
            "run the rest.",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Run @step(cache=True) steps even when a cached result matches."),
    ] = False,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", min=1, help="Local: steps at once. Default: the cores.")
    ] = None,
    image: ImageOpt = None,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a pipeline: locally (default on the local stack) or on Argo (default when the stack has Argo).

    Every run is recorded in the stack's artifact store: `mlstack runs ls`, `mlstack runs show latest`.
    """
    from mlstack.errors import UsageError
    from mlstack.pipeline import load

    if local and argo:
        raise UsageError("--local and --argo exclude each other", fix="pick one")
    params = parse_kv(param, "--param")
    loaded = load_manifest(manifest_path)
    pipe = load(path)
    pipe.resolve_params(params)  # a bad -p is a usage error before anything starts
    where = "argo" if argo else "local" if local else loaded.manifest.orchestrator.kind
    if where == "argo":
        from mlstack.pipeline.argo import ArgoRunner

        info = ArgoRunner(loaded.manifest).submit(pipe, params, image=image)
        if json_out:
            emit_json(info)
        else:
            console.print(f"Submitted [bold]{info['workflow']}[/] from WorkflowTemplate {info['template']}")
            console.print(f"  {info['url']}")
            if pipe.schedule is not None:
                console.print(
                    f"  its schedule ({pipe.schedule.describe()}) is applied by `mlstack schedule {path}`",
                    markup=False,
                )
        return
    from mlstack.cli._runview import RunView, print_summary
    from mlstack.pipeline.local import LocalRunner

    if not json_out and pipe.schedule is not None:
        console.print(
            f"schedule {pipe.schedule.describe()}: not applied here, the local stack has no scheduler "
            f"(`mlstack schedule {path}` on a stack with Argo)",
            markup=False,
        )
    runner = LocalRunner(loaded.manifest, max_parallel=max_parallel)
    if json_out:
        result = runner.run(pipe, params, resume=resume, cache=not no_cache)
        # one JSON document on stdout, failed or not: the error rides in it
        from mlstack.errors import MlstackError

        doc = result.to_dict()
        try:
            result.raise_for_status()
        except MlstackError as exc:
            doc.update(error=type(exc).__name__, message=exc.message, fix=exc.fix, exit_code=exc.exit_code)
            emit_json(doc)
            err_console.print(f"error: {exc.message}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        emit_json(doc)
        return
    title = f"pipeline {pipe.name}: {len(pipe.steps)} steps, local" + (
        f", resuming {resume}" if resume else ""
    )
    view = RunView(title)
    with view:
        result = runner.run(pipe, params, resume=resume, cache=not no_cache, on_event=view)
    print_summary(
        run_id=result.run_id,
        status=result.status,
        seconds=result.seconds,
        steps=result.steps,
        outputs=result.outputs,
        resumed_from=result.resumed_from,
        table=not view.live,
        errors=result.record_errors,
    )
    result.raise_for_status()  # a failed step: message with its log tail, exit 1


def render(
    path: PathArg,
    argo: Annotated[
        bool, typer.Option("--argo", help="Render an Argo WorkflowTemplate (the only target).")
    ] = False,
    param: ParamOpt = None,
    image: ImageOpt = None,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the pipeline as an Argo WorkflowTemplate, plus its CronWorkflow when it has a schedule (YAML on
    stdout; defaults used are noted on stderr)."""
    from mlstack.errors import UsageError
    from mlstack.pipeline import load

    if not argo:
        raise UsageError("render needs a target", fix="add --argo")
    from mlstack.pipeline.argo import to_workflow_template

    loaded = load_manifest(manifest_path)
    pipe = load(path)
    rendered = to_workflow_template(
        pipe, manifest=loaded.manifest, params=parse_kv(param, "--param"), image=image
    )
    cron = None
    if pipe.schedule is not None:  # a scheduled pipeline: its CronWorkflow too, running the template
        from mlstack.pipeline.argo import to_cron_workflow

        cron = to_cron_workflow(pipe, manifest=loaded.manifest)
    if json_out:
        if cron is None:
            emit_json(rendered.to_dict())
        else:  # both objects as one document kubectl applies
            emit_json({"apiVersion": "v1", "kind": "List", "items": [rendered.to_dict(), cron.to_dict()]})
    else:
        typer.echo(rendered.to_yaml(), nl=False)
        if cron is not None:
            typer.echo("---")
            typer.echo(cron.to_yaml(), nl=False)
    for note in rendered.notes:
        err_console.print(f"note: {note}", markup=False)
    if cron is not None:
        err_console.print(
            f"note: CronWorkflow {cron.cron_workflow.name}: {cron.schedule.describe()}, runs WorkflowTemplate "
            f"{rendered.template.name}; `mlstack schedule {path}` applies both",
            markup=False,
        )


def load_manifest(path: Path | None):
    from mlstack.cli._common import load

    return load(path)

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
    detach: Annotated[
        bool, typer.Option("--detach", help="Argo: submit and return, without following the workflow.")
    ] = False,
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
        _run_argo(
            pipe,
            params,
            loaded.manifest,
            image=image,
            resume=resume,
            no_cache=no_cache,
            detach=detach,
            json_out=json_out,
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


def _run_argo(
    pipe,
    params,
    manifest,
    *,
    image: str | None,
    resume: str | None,
    no_cache: bool,
    detach: bool,
    json_out: bool,
) -> None:
    """Submit, record the run, then follow it from the Argo server API until it ends (Ctrl-C: stop following)."""
    from mlstack.pipeline import argo_follow
    from mlstack.pipeline.argo import ArgoRunner

    runner = ArgoRunner(manifest)
    if resume:
        from mlstack.runs._client import get_run

        resume = get_run(resume, pipe.name if resume == "latest" else None, manifest=manifest).id
    info = runner.submit(pipe, params, image=image, resume=resume, no_cache=no_cache)
    problem = _record_submitted(pipe, params, manifest, info, resume)
    if not json_out:
        console.print(f"Submitted {info['workflow']} from WorkflowTemplate {info['template']}", markup=False)
        console.print(f"  {info['url']}", markup=False)
        if problem:
            err_console.print(f"warning: {problem}", markup=False)
        if pipe.schedule is not None:
            console.print(
                f"  its schedule ({pipe.schedule.describe()}) is applied by `mlstack schedule {pipe.source}`",
                markup=False,
            )
    if detach:
        if json_out:
            emit_json(info)
        else:
            console.print(
                f"Follow it: mlstack runs show {info['workflow']}; mlstack runs logs {info['workflow']} -f",
                markup=False,
            )
        return
    from mlstack.cli._runview import RunView, print_summary

    view = (
        None
        if json_out
        else RunView(f"pipeline {pipe.name}: {len(pipe.steps)} steps, argo {info['workflow']}")
    )
    if view is not None:
        with view:
            wf, steps, finished = argo_follow.follow(runner, pipe, info["namespace"], info["workflow"], view)
    else:
        wf, steps, finished = argo_follow.follow(
            runner, pipe, info["namespace"], info["workflow"], lambda *_: None
        )
    phase = (wf.get("status") or {}).get("phase") or "Running"
    if not finished:
        err_console.print(
            f"stopped following; workflow {info['workflow']} keeps running ({phase}). "
            f"Later: mlstack runs show {info['workflow']}",
            markup=False,
        )
        if json_out:
            emit_json({**info, "status": "running", "following": False})
        return
    outputs: list = []
    shown = steps
    try:
        from mlstack.runs._client import get_run

        rec = get_run(info["workflow"], manifest=manifest)
        outputs = rec.outputs
        flat = rec.steps.flat()
        recorded = {s.label for s in flat if s.doc}
        # the pods' records carry results and reuse; use them when they cover every step that ran
        if recorded and all(st.label in recorded for st in steps if st.status not in ("pending", "skipped")):
            shown = flat
    except Exception as exc:  # the store may not be reachable from here: the server's view still stands
        err_console.print(
            f"note: the run record could not be read ({exc}); results from the Argo server", markup=False
        )
    status = {"Succeeded": "succeeded"}.get(phase, "failed")
    started, ended = (wf.get("status") or {}).get("startedAt"), (wf.get("status") or {}).get("finishedAt")
    seconds = (argo_follow._ts(ended) or 0) - (argo_follow._ts(started) or 0) if started and ended else 0.0
    if json_out:
        emit_json(
            {
                **info,
                "run_id": info["workflow"],
                "status": status,
                "seconds": round(seconds, 3),
                "steps": [
                    (
                        s.to_dict()
                        if hasattr(s, "to_dict")
                        else {
                            "name": s.name,
                            "branch": s.index,
                            "status": s.status,
                            "attempts": s.attempts,
                            "seconds": s.seconds,
                            "result_preview": s.preview,
                        }
                    )
                    for s in shown
                ],
                "outputs": outputs,
            }
        )
    else:
        print_summary(
            run_id=info["workflow"],
            status=status,
            seconds=seconds,
            steps=shown,
            outputs=outputs,
            resumed_from=resume,
            table=view is None or not view.live,
        )
    if status != "succeeded":
        from mlstack.errors import PipelineError

        failed = [s for s in shown if s.status in ("failed", "timed_out")]
        first = failed[0].label if failed else "a step"
        raise PipelineError(
            f"workflow {info['workflow']} {phase.lower()}: {first} failed",
            fix=f"mlstack runs logs {info['workflow']} {failed[0].label if failed else ''}".rstrip()
            + f"; after a fix: mlstack run PATH --argo --resume {info['workflow']}",
        )


def _record_submitted(pipe, params, manifest, info: dict, resume: str | None) -> str | None:
    """Create the run record at once, so `mlstack runs ls` shows the run before its first pod starts."""
    from mlstack.errors import ConflictError
    from mlstack.runs._client import run_store
    from mlstack.runs._pod import ARGO_LEASE
    from mlstack.runs._recorder import RunRecorder

    try:
        RunRecorder.start(
            run_store(manifest),
            run_id=info["workflow"],
            pipe=pipe,
            order=pipe.validate(),
            params=pipe.resolve_params(params),
            manifest=manifest,
            orchestrator={"kind": "argo", "workflow": info["workflow"], "namespace": info["namespace"]},
            resumed_from=resume,
            started=info.get("created"),
            heartbeat=False,
            lease=ARGO_LEASE,
        )
    except ConflictError:  # a pod was first: the record exists
        return None
    except Exception as exc:  # e.g. no write access to the bucket from this laptop: the pods write it
        return f"the run record could not be written from here ({exc}); the workflow's pods write it"
    return None


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

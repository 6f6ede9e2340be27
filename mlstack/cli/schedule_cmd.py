"""``mlstack schedule PATH``, ``mlstack schedule ls`` and ``mlstack schedule rm``: pipelines that run by
themselves, as Argo CronWorkflows on a stack with Argo.

``schedule PATH`` checks the schedule (cron fields, timezone, concurrency, params) before anything is sent,
then creates or updates the pipeline's WorkflowTemplate and its CronWorkflow through the Argo server's REST
API, as ``run --argo`` does. The local stack has no scheduler: there ``schedule`` says so and shows what is
declared, and ``schedule ls`` lists the schedules declared in the pipelines under the current folder.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

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


class _DefaultApply(TyperGroup):
    """``mlstack schedule PATH`` is ``mlstack schedule apply PATH``: anything that is not a sub-command (or
    --help) goes to ``apply``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["apply", *args]
        return super().parse_args(ctx, args)


schedule_app = typer.Typer(
    name="schedule",
    cls=_DefaultApply,
    help=(
        "Run pipelines on a schedule (Argo CronWorkflows): `mlstack schedule PATH` applies one, "
        "`ls` lists them, `rm NAME` removes one. The local stack has no scheduler."
    ),
    no_args_is_help=True,
    subcommand_metavar="PATH | ls | rm NAME",
)

PathArg = Annotated[Path, typer.Argument(help="A pipeline file, or a folder holding pipeline.py.")]
ArgoOpt = Annotated[
    bool,
    typer.Option(
        "--argo", help="Use the Argo server ($ARGO_SERVER) even when the manifest's orchestrator is local."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")


def _on_argo(loaded: Any, argo: bool) -> bool:
    return argo or loaded.manifest.orchestrator.kind == "argo"


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M %Z") if t is not None else "never"


def _next_run(sched: Any) -> datetime | None:
    runs = sched.next_runs(count=1)
    return runs[0] if runs else None


def _schedule_for(pipe: Any, cron: list[str] | None, timezone: str | None, concurrency: str | None) -> Any:
    """The pipeline's declared schedule with the command line's --cron/--timezone/--concurrency over it."""
    from mlstack.errors import UsageError
    from mlstack.pipeline.schedule import DEFAULT_CONCURRENCY, DEFAULT_TIMEZONE, Schedule

    base = pipe.schedule
    if base is None and not cron:
        raise UsageError(
            f"pipeline {pipe.name!r} declares no schedule",
            fix="declare one (Pipeline(..., schedule='0 3 * * *')) or pass --cron '0 3 * * *'",
        )
    if base is not None and not (cron or timezone or concurrency):
        return base
    return Schedule(
        cron=tuple(cron) if cron else base.crons,
        timezone=timezone or (base.timezone if base else DEFAULT_TIMEZONE),
        concurrency=concurrency or (base.concurrency if base else DEFAULT_CONCURRENCY),
        starting_deadline=base.starting_deadline if base else None,
        params=base.params if base else {},
        suspend=base.suspend if base else False,
    )


def _local_fix(path: Path, sched: Any) -> str:
    where = str(path)
    fix = (
        f"apply it on a stack with Argo: `mlstack schedule {where} -m <that stack's mlstack.json>` "
        f"(or --argo with $ARGO_SERVER); run it now with `mlstack run {where} --local`"
    )
    crons = [c for c in sched.crons if not c.startswith("@every")]
    if len(crons) == 1 and not crons[0].startswith("@"):
        fix += (
            f"; or on this machine, a crontab line (read in this machine's timezone, not {sched.timezone}): "
            f"`{crons[0]} cd {Path.cwd()} && mlstack run {where} --local`"
        )
    return fix


@schedule_app.command("apply")
def apply(
    path: PathArg,
    cron: Annotated[
        list[str] | None,
        typer.Option("--cron", help="Cron expression over the declared one, e.g. '0 3 * * *' (repeatable)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", "--tz", help="IANA timezone of the cron, e.g. Europe/Paris.")
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option("--concurrency", help="Forbid (skip a tick while a run goes on), Allow or Replace."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A param value of the scheduled runs: -p key=value (repeatable)."),
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Container image for steps that name none.")
    ] = None,
    argo: ArgoOpt = False,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create or update the pipeline's WorkflowTemplate and CronWorkflow on the Argo server (the default)."""
    from mlstack.errors import ConfigError
    from mlstack.pipeline import load as load_pipeline

    loaded = load(manifest_path)
    pipe = load_pipeline(path)
    sched = _schedule_for(pipe, cron, timezone, concurrency)  # a bad cron or timezone stops here: exit 2
    params = parse_kv(param, "--param")
    pipe.resolve_params({**sched.params, **params})  # a bad -p too
    if not _on_argo(loaded, argo):
        nxt = _next_run(sched)
        raise ConfigError(
            f"the local stack has no scheduler: pipeline {pipe.name!r} declares {sched.describe()} "
            f"(next {_when(nxt)}), and nothing here runs it",
            fix=_local_fix(path, sched),
        )
    from mlstack.pipeline.argo import ArgoRunner

    info = ArgoRunner(loaded.manifest).schedule(pipe, params, image=image, schedule=sched)
    nxt = _next_run(sched)
    info["next_run"] = nxt.isoformat() if nxt else None
    if json_out:
        emit_json(info)
        return
    verb = "Created" if info["created"] else "Updated"
    console.print(
        f"{verb} CronWorkflow [bold]{info['cron_workflow']}[/] in {info['namespace']}: "
        f"{' | '.join(info['cron'])} ({info['timezone']}), concurrency {info['concurrency']}"
        + (", suspended" if info["suspend"] else "")
    )
    console.print(f"  runs WorkflowTemplate {info['template']}; next run {_when(nxt)}")
    if info["params"]:
        console.print("  params: " + ", ".join(f"{k}={v}" for k, v in info["params"].items()), markup=False)
    console.print(f"  {info['url']}", markup=False)


def _declared(paths: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """The schedules declared by the pipelines at ``paths`` (files or folders), and the files that failed."""
    from mlstack.errors import MlstackError
    from mlstack.pipeline import load as load_pipeline

    rows, problems = [], []
    for p in paths:
        try:
            pipe = load_pipeline(p)
        except (MlstackError, Exception) as exc:  # one broken file must not hide the others
            msg = exc.message if isinstance(exc, MlstackError) else f"{type(exc).__name__}: {exc}"
            problems.append(f"{p}: {msg}")
            continue
        if pipe.schedule is None:
            continue
        nxt = _next_run(pipe.schedule)
        rows.append(
            {
                "pipeline": pipe.name,
                "path": _shown(p),
                **pipe.schedule.to_dict(),
                "next_run": nxt.isoformat() if nxt else None,
                "_next": nxt,
            }
        )
    return rows, problems


def _shown(p: Path) -> str:
    """A path relative to the current folder when inside it (as a user would type it)."""
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(p)


_SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".mlstack",
    "site-packages",
    "build",
    "dist",
}


def _pipeline_files(root: Path, depth: int = 3) -> list[Path]:
    """``pipeline.py`` files under ``root`` (at most ``depth`` folders down, hidden and venv folders skipped)."""
    found: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for e in entries:
            if e.is_file() and e.name == "pipeline.py":
                found.append(e)
            elif e.is_dir() and level < depth and not e.name.startswith(".") and e.name not in _SKIP_DIRS:
                walk(e, level + 1)

    walk(root, 0)
    return found


@schedule_app.command("ls")
def ls(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Pipelines whose declared schedules to show (no server asked).", show_default=False
        ),
    ] = None,
    argo: ArgoOpt = False,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the CronWorkflows on the Argo server, or the schedules pipelines declare (local stack, PATHs)."""
    loaded = load(manifest_path)
    if paths or not _on_argo(loaded, argo):
        local = not _on_argo(loaded, argo)
        files = list(paths) if paths else _pipeline_files(Path.cwd())
        rows, problems = _declared(files)
        if json_out:
            emit_json(
                {
                    "scheduler": None if local else "argo",
                    "declared": [{k: v for k, v in r.items() if k != "_next"} for r in rows],
                    "problems": problems,
                }
            )
            return
        where = "the given pipelines" if paths else f"pipelines under {Path.cwd()}"
        if local:
            console.print(
                "The local stack has no scheduler: these schedules run only once applied to a stack with "
                "Argo (`mlstack schedule PATH`).",
                markup=False,
            )
        if rows:
            print_table(
                f"schedules declared in {where}",
                ["pipeline", "cron", "timezone", "concurrency", "next run", "path"],
                [
                    (
                        r["pipeline"],
                        " | ".join(r["cron"]),
                        r["timezone"],
                        r["concurrency"],
                        _when(r["_next"]),
                        r["path"],
                    )
                    for r in rows
                ],
            )
        else:
            console.print(
                f"No schedule declared in {where} ({len(files)} pipeline file(s) read).", markup=False
            )
        for p in problems:
            err_console.print(f"note: could not read {p}", markup=False)
        return
    from mlstack.pipeline.argo import ArgoRunner

    items = ArgoRunner(loaded.manifest).schedules()
    if json_out:
        emit_json({"scheduler": "argo", "cron_workflows": items})
        return
    if not items:
        console.print(
            "No CronWorkflow managed by mlstack in the namespace (`mlstack schedule PATH` adds one)."
        )
        return
    print_table(
        f"CronWorkflows in {items[0]['namespace']}",
        ["name", "cron", "timezone", "concurrency", "suspended", "last run", "active"],
        [
            (
                i["name"],
                " | ".join(i["cron"]),
                i["timezone"] or "(controller's clock)",
                i["concurrency"],
                "yes" if i["suspended"] else "no",
                (i["last_scheduled"] or "never").replace("T", " ").rstrip("Z"),
                ", ".join(i["active"]) or "-",
            )
            for i in items
        ],
    )


@schedule_app.command("rm")
def rm(
    name: Annotated[
        str,
        typer.Argument(
            help="The CronWorkflow (the pipeline's name), or the pipeline's PATH.", show_default=False
        ),
    ],
    argo: ArgoOpt = False,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete a pipeline's CronWorkflow (its WorkflowTemplate and past runs stay)."""
    import re

    from mlstack.errors import ConfigError, UsageError

    loaded = load(manifest_path)
    target = Path(name)
    if target.exists():
        from mlstack.pipeline import load as load_pipeline

        name = load_pipeline(target).name
    elif not re.match(r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$", name):
        raise UsageError(
            f"{name!r} is neither a pipeline path nor a CronWorkflow name",
            fix="pass the pipeline's name (`mlstack schedule ls` lists them) or its file/folder",
        )
    if not _on_argo(loaded, argo):
        raise ConfigError(
            f"the local stack has no scheduler, so there is no schedule {name!r} to remove",
            fix="pass the manifest of the stack with Argo (-m mlstack.json), or --argo with $ARGO_SERVER",
        )
    from mlstack.pipeline.argo import ArgoRunner

    info = ArgoRunner(loaded.manifest).unschedule(name)
    if json_out:
        emit_json(info)
        return
    console.print(
        f"Deleted CronWorkflow [bold]{name}[/] in {info['namespace']} (WorkflowTemplate {name} and past runs stay)."
    )

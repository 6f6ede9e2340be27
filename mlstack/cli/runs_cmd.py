"""``mlstack runs ls|show|logs``: the runs recorded in the stack's artifact store (local and Argo alike)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mlstack.cli._common import JsonOpt, ManifestOpt, console, emit_json, load, print_table

runs_app = typer.Typer(
    help="Runs recorded in the stack's artifact store: list them, read one, read its logs.",
    no_args_is_help=True,
)

RunArg = Annotated[str, typer.Argument(help="A run id (from `mlstack runs ls`), or `latest`.")]
PipelineOpt = Annotated[
    str | None,
    typer.Option("--pipeline", "-P", help="Only runs of this pipeline (with `latest`: its newest)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


def _store(manifest: Path | None) -> Any:
    from mlstack.runs._client import run_store

    return run_store(load(manifest).manifest)


def when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def steps_cell(counts: dict[str, int] | None) -> str:
    if not counts:
        return ""
    order = ("succeeded", "reused", "failed", "timed_out", "interrupted", "skipped")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in order and v]
    return ", ".join(parts)


def took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


@runs_app.command("ls")
def ls(
    pipeline_arg: Annotated[
        str | None, typer.Argument(metavar="[PIPELINE]", help="Only this pipeline's runs.")
    ] = None,
    pipeline: PipelineOpt = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", "-s", help="Only runs with this status: running, succeeded, failed, interrupted."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many runs (0: all).")] = 20,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first. A run whose record cannot be read is listed as `unreadable`, with why."""
    from mlstack.errors import UsageError
    from mlstack.runs._client import list_runs

    if pipeline_arg and pipeline and pipeline_arg != pipeline:
        raise UsageError(f"two pipelines given: {pipeline_arg!r} and --pipeline {pipeline!r}", fix="give one")
    st = _store(manifest_path)
    runs = list_runs(pipeline_arg or pipeline, status, limit, store=st)
    if json_out:
        emit_json([r.summary() for r in runs])
        return
    if not runs:
        what = f" of pipeline {pipeline_arg or pipeline!r}" if (pipeline_arg or pipeline) else ""
        what += f" with status {status}" if status else ""
        console.print(f"No runs{what} in {st.location}. Start one with `mlstack run PATH`.", markup=False)
        return
    rows = []
    for r in runs:
        s = r.summary()
        note = s.get("error") or s.get("reason") or ""
        if s.get("resumed_from"):
            note = (f"resumed from {s['resumed_from']}; " + note).rstrip("; ")
        rows.append(
            (
                r.id,
                r.pipeline,
                r.status,
                when(s["started"]),
                took(s["seconds"]),
                steps_cell(s["steps"]),
                s["orchestrator"] or "",
                note,
            )
        )
    print_table(None, ["run", "pipeline", "status", "started (UTC)", "took", "steps", "where", "note"], rows)


@runs_app.command("show")
def show(
    run: RunArg,
    pipeline: PipelineOpt = None,
    html_out: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Also write the run report to FILE: one self-contained page with the DAG, a timeline, "
            "results, failed steps' logs, the lineage and the steps' cards.",
            dir_okay=False,
        ),
    ] = None,
    manifest_path: ManifestOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One run: params, code, each step and branch (status, attempts, time, result), what it read and wrote."""
    from mlstack.errors import IntegrityError
    from mlstack.runs._client import get_run

    r = get_run(run, pipeline, store=_store(manifest_path))
    if r.status == "unreadable":
        if json_out:
            emit_json({"id": r.id, "status": "unreadable", "error": r.error})
        raise IntegrityError(
            f"run {r.id}: {r.error}",
            fix="restore runs/records/<id>/run.json from a backup or bucket versioning",
        )
    doc = r.to_dict()
    if html_out is not None:
        from mlstack.runs import _report

        doc["report"] = _report.write(r, html_out)
    if json_out:
        emit_json(doc)
        return
    _print_run(r, doc)
    if html_out is not None:
        console.print(
            f"Report: {doc['report']} (one self-contained page: open it in a browser)", markup=False
        )


def _print_run(r: Any, doc: dict[str, Any]) -> None:
    from mlstack.cli._runview import describe_outputs

    status = r.status + (f" ({r.reason})" if r.reason else "")
    console.print(f"run {r.id}  pipeline {r.pipeline}  {status}", markup=False)
    where = r.orchestrator
    place = where.get("kind", "?")
    if where.get("workflow"):
        place += f" workflow {where.get('namespace', '')}/{where['workflow']}".replace(" /", " ")
    code = doc.get("code") or {}
    who = doc.get("who") or {}
    lines = [
        (
            "started",
            f"{when(r.started)} UTC"
            + (f", ended {when(r.ended)}, took {took(r.seconds)}" if r.ended else ""),
        ),
        ("where", f"{place}" + (f" by {who.get('user')}@{who.get('host')}" if who.get("host") else "")),
        ("code", " ".join(x for x in (code.get("source"), code.get("git")) if x) or "unknown"),
        ("params", ", ".join(f"{k}={v!r}" for k, v in r.params.items()) or "none"),
    ]
    if r.resumed_from:
        lines.append(("resumed", f"from {r.resumed_from}"))
    if doc.get("error"):
        lines.append(("error", str((doc["error"] or {}).get("message", doc["error"]))))
    for k, v in lines:
        console.print(f"  {k:8} {v}", markup=False)
    rows = []
    for s in r.steps.flat():
        note = ""
        if s.reused_from:
            note = f"reused from {s.reused_from.get('run')}" + (
                " (cache)" if s.reused_from.get("via") == "cache" else ""
            )
        elif s.doc.get("why"):
            note = f"ran: {s.doc['why']}"
        result = s.preview or ""
        if s.status in ("failed", "timed_out"):
            tail = (s.doc.get("log_tail") or "").strip().splitlines()
            result = tail[-1] if tail else f"exit code {s.exit_code}"
        rows.append(
            (
                s.label,
                s.status,
                s.attempts or "",
                "" if s.seconds is None else f"{s.seconds:.2f}",
                result,
                note,
            )
        )
    print_table(None, ["step", "status", "attempts", "seconds", "result", "note"], rows)
    reads = [
        f"{i['type']} {i['name']}"
        + (f"@{i['version']}" if i.get("version") else "")
        + f" ({', '.join(i['steps'])})"
        for i in r.inputs
    ]
    if reads:
        console.print("Read:", markup=False)
        for text in reads:
            console.print(f"  {text}", markup=False)
    for kind, title in (("artifact", "Artifacts written"), ("alias", "Aliases"), ("table", "Tables written")):
        got = [text for k, text in describe_outputs(r.outputs) if k == kind]
        if got:
            console.print(f"{title}:", markup=False)
            for text in got:
                console.print(f"  {text}", markup=False)
    if r.unreadable_steps:
        console.print(f"Unreadable step records: {', '.join(r.unreadable_steps)}", markup=False)
    cards = [(s.label, s.card) for s in r.steps.flat() if s.card is not None]
    if cards:
        console.print("Cards:", markup=False)
        for lbl, card in cards:
            items = card.get("items") or []
            kinds = ", ".join(dict.fromkeys(str(i.get("type")) for i in items))
            what = f"unreadable ({card['error']})" if card.get("error") else f"{len(items)} items ({kinds})"
            console.print(f"  {lbl}: {what}", markup=False)
    console.print(f"Logs: mlstack runs logs {r.id} [STEP]", markup=False)
    if cards and "report" not in doc:
        console.print(f"Report: mlstack runs show {r.id} --html report.html", markup=False)


@runs_app.command("logs")
def logs(
    run: RunArg,
    step: Annotated[
        str | None, typer.Argument(help="A step (`train`) or one branch (`train[2]`). Default: all.")
    ] = None,
    pipeline: PipelineOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    manifest_path: ManifestOpt = None,
) -> None:
    """A run's step logs: from the Argo server while its pods exist, else the logs stored with the run."""
    from mlstack.errors import UsageError
    from mlstack.runs._client import get_run

    st = _store(manifest_path)
    r = get_run(run, pipeline, store=st)
    if step is not None:
        try:
            r.steps[step]
        except KeyError:
            raise UsageError(
                f"run {r.id} has no step {step!r}", fix=f"steps: {', '.join(s.label for s in r.steps.flat())}"
            ) from None
    if r.orchestrator.get("kind") == "argo":
        from mlstack.pipeline import argo_follow

        # pod logs through the Argo server while it has them; else the log blobs the pods stored
        if argo_follow.print_logs(r, step, follow=follow, manifest=load(manifest_path).manifest):
            return
    if follow and r.status == "running" and r.orchestrator.get("kind") == "local":
        _follow_local(r, step, st)
        return
    text = r.logs(step)
    typer.echo(text, nl=not text.endswith("\n"))


def _follow_local(r: Any, step: str | None, st: Any) -> None:
    """Tail a running local run's log files (same machine), then the stored logs of what remains."""
    from mlstack.runs._client import get_run

    run_dir = Path(r.orchestrator.get("run_dir") or "")
    offsets: dict[Path, int] = {}
    name = None if step is None else step.split("[", 1)[0]
    while True:
        files = sorted((run_dir / "steps").glob("**/log.txt")) if run_dir.is_dir() else []
        for f in files:
            rel = f.relative_to(run_dir / "steps").parts
            lbl = rel[0] if len(rel) == 2 else f"{rel[0]}[{rel[1]}]"
            if step is not None and lbl != step and not (lbl.startswith(f"{name}[") and step == name):
                continue
            try:
                with open(f, "rb") as fh:
                    fh.seek(offsets.get(f, 0))
                    chunk = fh.read()
            except OSError:
                continue
            if chunk:
                offsets[f] = offsets.get(f, 0) + len(chunk)
                for line in chunk.decode("utf-8", "replace").splitlines():
                    typer.echo(f"{lbl}: {line}")
        cur = get_run(r.id, store=st)
        if cur.status != "running":
            return
        time.sleep(0.5)

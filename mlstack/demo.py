"""``mlstack demo``: the local stack, end to end, with no credentials.

1. initialise the local stack (artifacts folder, DuckDB + Delta warehouse, manifest);
2. run the churn example pipeline on it: its ``ingest`` step loads the deterministic sample dataset into the
   warehouse, then features, parallel training (scikit-learn) and the gated ``production`` alias;
3. show the model artifact and its lineage: the run that made it and the tables (at their versions) it read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlstack.cli._common import console, emit_json, print_table
from mlstack.errors import ConfigError, MissingExtraError


def example_path() -> Path:
    """The churn example: ``examples/churn`` in a checkout, shipped as ``mlstack._examples`` in a wheel."""
    from importlib import resources

    try:
        found = Path(str(resources.files("mlstack._examples") / "churn"))
    except ModuleNotFoundError:
        found = Path(__file__).resolve().parent.parent / "examples" / "churn"
    if not (found / "pipeline.py").is_file():
        raise ConfigError(
            f"the churn example is not at {found}",
            fix="reinstall mlstack (pip install -e '.[local,examples]' from a checkout)",
        )
    return found


def run_demo(home: Path | None, *, json_out: bool = False) -> dict[str, Any]:
    import importlib.util

    from mlstack import localstack
    from mlstack import manifest as _manifest

    # check, without paying for the imports here (the steps import them)
    for module, extra in (("duckdb", "local"), ("deltalake", "local"), ("sklearn", "examples")):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, extra, "mlstack demo")
    res = localstack.init(home)
    # the demo's own processes (and the pipeline's steps) use this stack's manifest
    os.environ["MLSTACK_MANIFEST"] = str(res.manifest_path)
    os.environ["MLSTACK_HOME"] = str(res.home)
    _manifest._cache.clear()
    report: dict[str, Any] = {
        "home": str(res.home),
        "manifest_path": str(res.manifest_path),
        "origin": res.origin,
        "manifest": res.manifest.to_dict(),
        "layers": {},
    }
    for layer, kind, where in localstack.describe_layers(res.manifest):
        report["layers"][layer] = {"kind": kind, "where": where}
    if not json_out:
        console.rule("[bold]mlstack demo[/]: the local stack")
        console.print(f"Local stack {res.describe()}; manifest {res.manifest_path}", markup=False)
        if res.origin == "new":
            console.print(
                "  (later commands run in this folder or below it find this stack; elsewhere, pass "
                f"--home {res.home} or set MLSTACK_HOME={res.home})",
                markup=False,
            )
        print_table(None, ["layer", "kind", "where"], localstack.describe_layers(res.manifest))
        console.rule("[bold]the churn pipeline[/], on the local runner")

    from mlstack.pipeline import load
    from mlstack.pipeline.local import LocalRunner

    pipe = load(example_path())
    runner = LocalRunner(res.manifest, home=str(res.home))
    if json_out:
        result = runner.run(pipe)
    else:
        from mlstack.cli._runview import RunView, print_summary

        view = RunView(f"pipeline {pipe.name}: {len(pipe.steps)} steps, local")
        with view:
            result = runner.run(pipe, on_event=view)
        print_summary(
            run_id=result.run_id,
            status=result.status,
            seconds=result.seconds,
            steps=result.steps,
            outputs=result.outputs,
            table=not view.live,
            errors=result.record_errors,
        )
    report["run"] = result.to_dict()
    if not result.ok:
        if json_out:
            import typer

            from mlstack.errors import MlstackError

            try:
                result.raise_for_status()
            except MlstackError as exc:
                report.update(error=type(exc).__name__, message=exc.message, fix=exc.fix, exit_code=1)
            emit_json(report)
            raise typer.Exit(1)
        result.raise_for_status()
    ingest = result.output("ingest")
    evaluation = result.output("evaluate")
    report["dataset"] = ingest
    report["evaluation"] = evaluation

    import mlstack.artifacts as artifacts

    v = artifacts.show(f"{evaluation['model']}@{evaluation['version']}")
    report["model"] = {
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "aliases": list(v.aliases),
        "metadata": dict(v.metadata),
        "run_id": v.run_id,
        "inputs": [i if isinstance(i, dict) else getattr(i, "__dict__", str(i)) for i in v.inputs],
        "lineage": artifacts.lineage_text(v),
    }
    if json_out:
        emit_json(report)
        return report
    console.rule("[bold]the model and its lineage[/]")
    verdict = (
        f"[green]promoted to production[/] (AUC {evaluation['auc']:.3f} >= {evaluation['threshold']})"
        if evaluation["promoted"]
        else f"[yellow]not promoted[/] (AUC {evaluation['auc']:.3f} < {evaluation['threshold']})"
    )
    console.print(
        f"{v.name}@{v.version}: best of {evaluation['candidates']} (C={evaluation['C']}), {verdict}"
    )
    console.print(report["model"]["lineage"], markup=False)
    console.print(
        f"\nNext: mlstack runs show latest (this run: params, each step's result, what it read and wrote; "
        f"--html report.html draws it as one page); "
        f"mlstack artifacts show {v.name}:production; "
        f"mlstack run {example_path()} --local -p threshold=0.8; mlstack render {example_path()} --argo",
        markup=False,
    )
    return report

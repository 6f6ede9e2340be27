"""``mlstack demo``: the local stack, end to end, with no credentials.

Stage 1 (foundation): initialise the local stack and show its manifest and what each layer is.
Later stages are appended by the layers: load the sample data, run the churn pipeline, show the lineage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlstack.cli._common import console, emit_json, print_table


def run_demo(home: Path | None, *, json_out: bool = False) -> dict[str, Any]:
    from mlstack import localstack

    res = localstack.init(home)
    # the demo's own processes (and the pipeline's steps) use this stack's manifest
    os.environ["MLSTACK_MANIFEST"] = str(res.manifest_path)
    os.environ["MLSTACK_HOME"] = str(res.home)
    report: dict[str, Any] = {
        "home": str(res.home),
        "manifest_path": str(res.manifest_path),
        "manifest": res.manifest.to_dict(),
        "layers": {},
    }
    for layer, kind, where in localstack.describe_layers(res.manifest):
        report["layers"][layer] = {"kind": kind, "where": where}
    if not json_out:
        console.rule("[bold]mlstack demo[/]: the local stack")
        console.print(f"Local stack in [bold]{res.home}[/]; manifest {res.manifest_path}")
        print_table(None, ["layer", "kind", "where"], localstack.describe_layers(res.manifest))
    if json_out:
        emit_json(report)
    return report

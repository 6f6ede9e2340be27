"""Runs you can find and read: every pipeline run, local or on Argo, recorded in the stack's artifact store.

    import mlstack
    for r in mlstack.runs.list(pipeline="churn", limit=5):
        print(r.id, r.status, r.params)
    run = mlstack.runs.get("latest", pipeline="churn")
    run.steps["evaluate"].result          # a step's return value
    run.steps["train"].result             # a fan-out step: every branch's result, in item order
    run.steps["train[1]"].log()           # one branch's log
    run.inputs, run.outputs               # tables/artifacts read; artifacts written, aliases moved or kept

The layout in the store is described in :mod:`mlstack.runs._store` and docs/pipelines.md. Importing this
package imports only the standard library; the store's backend loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mlstack.runs._client import Run, StepRun
    from mlstack.runs._store import RunStore

__all__ = ["Run", "RunStore", "StepRun", "get", "list", "store"]


def list(  # the client's verb: mlstack.runs.list(...)
    pipeline: str | None = None, status: str | None = None, limit: int | None = 20, *, manifest: Any = None
) -> Any:
    """The newest runs first: ``limit`` of them (None or 0: all), of one ``pipeline`` and/or ``status``
    (running, succeeded, failed, interrupted, unreadable). A run whose record cannot be read is listed with
    status ``unreadable`` and its error; the others list as usual."""
    from mlstack.runs._client import list_runs

    return list_runs(pipeline, status, limit, manifest=manifest)


def get(run_id: str = "latest", pipeline: str | None = None, *, manifest: Any = None) -> Run:
    """A run by id, or ``"latest"`` (the newest run, of ``pipeline`` when given)."""
    from mlstack.runs._client import get_run

    return get_run(run_id, pipeline, manifest=manifest)


def store(manifest: Any = None) -> RunStore:
    """The RunStore of the manifest in force (or of ``manifest``)."""
    from mlstack.runs._client import run_store

    return run_store(manifest)


def __getattr__(name: str) -> Any:
    if name in ("Run", "StepRun", "Steps"):
        from mlstack.runs import _client

        return getattr(_client, name)
    if name == "RunStore":
        from mlstack.runs._store import RunStore

        return RunStore
    raise AttributeError(f"module 'mlstack.runs' has no attribute {name!r}")

"""mlstack.pipeline: Python functions as pipeline steps, run locally or rendered for Argo Workflows.

    from mlstack import Pipeline, step

    pipeline = Pipeline("churn", params={"C": [0.1, 1.0]})

    @pipeline.step(cpu=1, memory="2Gi")
    def features() -> dict: ...

    @pipeline.step(foreach="C")            # one step (one pod on Argo) per value of C
    def train(features, C): ...

    @pipeline.step
    def evaluate(train): ...               # the list of every train result

    pipeline.run()                          # local subprocesses;  pipeline.to_argo() -> hera WorkflowTemplate

``Pipeline(..., schedule="0 3 * * *")`` (or a ``Schedule``) runs it by itself as an Argo CronWorkflow.

Importing this package imports only the standard library; the runners load on use.
"""

from __future__ import annotations

from typing import Any

from mlstack.pipeline.schedule import Schedule
from mlstack.pipeline.spec import Pipeline, Resources, Step, coerce, load, pipeline_file, step

__all__ = [
    "Pipeline",
    "Resources",
    "RunResult",
    "Schedule",
    "Step",
    "StepResult",
    "coerce",
    "load",
    "pipeline_file",
    "step",
]


def __getattr__(name: str) -> Any:
    if name in ("RunResult", "StepResult", "StepFailed", "LocalRunner"):
        from mlstack.pipeline import local

        return getattr(local, name)
    raise AttributeError(f"module 'mlstack.pipeline' has no attribute {name!r}")

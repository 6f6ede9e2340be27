"""Pipelines as Python: steps with resources, dependencies, parameters and fan-out.

A step's dependencies are the names of its function's parameters that name other steps (it receives their
return values) plus ``after=[...]``; parameters that name pipeline params receive their values. A step with
``foreach="x"`` runs once per item of the list ``x`` (a pipeline param or an upstream step's result) and its
parameter ``x`` receives one item; a later step depending on it receives the list of all its results.

Only the standard library is imported here: ``from mlstack.pipeline import step, Pipeline`` stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack import names
from mlstack.errors import PipelineError, UsageError
from mlstack.pipeline.schedule import Schedule, coerce_schedule

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_RESOURCE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_POOL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
POOL_LABEL = names.NODE_POOL_LABEL
"""Node label of mlstack's GPU pools (NodePools and node groups); ``@step(node_pool=...)`` selects on it."""


@dataclass(frozen=True)
class Resources:
    """What one step needs: GPUs, CPU cores (``0.5``, ``"500m"``), memory (``"4Gi"``) and its image."""

    gpus: int = 0
    cpu: float | str | None = None
    memory: str | None = None
    image: str | None = None
    gpu_resource: str | None = None  # the extended resource ``gpus`` counts (default: the manifest's)
    node_pool: str | None = None  # the GPU pool (``mlstack.dev/node-pool``) the step must run on

    def to_dict(self) -> dict[str, Any]:
        return {"gpus": self.gpus, "cpu": self.cpu, "memory": self.memory, "image": self.image}


class Step:
    """A Python function marked as a pipeline step. Calling it calls the function (handy in tests)."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        gpus: int = 0,
        cpu: float | str | None = None,
        memory: str | None = None,
        image: str | None = None,
        after: Iterable[str | Step] = (),
        foreach: str | None = None,
        retries: int = 0,
        timeout: int | None = None,
        env: Mapping[str, str] | None = None,
        nodes: int = 1,
        run_as_root: bool = False,
        cache: bool = False,
        gpu_resource: str | None = None,
        node_pool: str | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"name {self.name!r}: a Python identifier of at most 63 characters")
        if not isinstance(gpus, int) or gpus < 0:
            problems.append(f"gpus={gpus!r}: a whole number >= 0")
        if cpu is not None and not (
            (isinstance(cpu, int | float) and cpu > 0) or (isinstance(cpu, str) and re.match(r"^\d+m?$", cpu))
        ):
            problems.append(f"cpu={cpu!r}: a positive number of cores (0.5) or millicores ('500m')")
        if memory is not None and not (isinstance(memory, str) and _MEMORY.match(memory)):
            problems.append(f"memory={memory!r}: a Kubernetes quantity such as '512Mi' or '4Gi'")
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            problems.append(f"nodes={nodes!r}: a whole number >= 1 (the processes/pods of a multi-node step)")
        elif nodes > 1 and foreach is not None:
            problems.append(
                f"nodes={nodes!r} with foreach={foreach!r}: a multi-node step cannot also fan out"
            )
        if not isinstance(retries, int) or retries < 0:
            problems.append(f"retries={retries!r}: a whole number >= 0")
        if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
            problems.append(f"timeout={timeout!r}: seconds, a whole number > 0")
        if not isinstance(run_as_root, bool):
            problems.append(f"run_as_root={run_as_root!r}: True or False")
        if not isinstance(cache, bool):
            problems.append(f"cache={cache!r}: True or False")
        if gpu_resource is not None:
            if not isinstance(gpu_resource, str) or not _RESOURCE.match(gpu_resource):
                problems.append(
                    f"gpu_resource={gpu_resource!r}: an extended resource name such as 'nvidia.com/gpu.shared' "
                    "or 'nvidia.com/mig-1g.10gb'"
                )
            elif isinstance(gpus, int) and gpus < 1:
                problems.append(
                    f"gpu_resource={gpu_resource!r} with gpus={gpus!r}: set gpus to the count to request"
                )
            elif gpu_resource.endswith(".shared") and isinstance(gpus, int) and gpus > 1:
                problems.append(
                    f"gpus={gpus!r} with gpu_resource={gpu_resource!r}: a time-sliced pool gives one slice per "
                    "container (its device plugin fails larger requests); use gpus=1, or whole GPUs"
                )
        if node_pool is not None and (not isinstance(node_pool, str) or not _POOL.match(node_pool)):
            problems.append(f"node_pool={node_pool!r}: a pool name (lowercase letters, digits and '-')")
        if problems:
            raise UsageError(
                f"step {self.name!r}: " + "; ".join(problems), fix="correct the @step(...) arguments above"
            )
        self.resources = Resources(
            gpus=gpus, cpu=cpu, memory=memory, image=image, gpu_resource=gpu_resource, node_pool=node_pool
        )
        self.after = tuple(a.name if isinstance(a, Step) else str(a) for a in after)
        self.foreach = foreach
        # nodes > 1: one process per node locally (mlstack.pipeline.multinode), one pod per node on a cluster
        self.nodes = nodes
        self.retries = retries
        self.timeout = timeout
        self.env = dict(env or {})
        # on Argo the step's pod runs as uid 0 with a writable root filesystem (mlstack.pipeline.security);
        # off by default, and a restricted jobs namespace refuses it
        self.run_as_root = run_as_root
        # reuse a result across runs when code, inputs, params and image match (docs/pipelines.md: Cache)
        self.cache = cache
        sig = inspect.signature(func)
        self.arg_names = [
            p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self.arg_defaults = {
            p.name for p in sig.parameters.values() if p.default is not inspect.Parameter.empty
        }
        self.__doc__ = func.__doc__
        self.__name__ = self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"


def step(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Mark a function as a step: ``@step`` or ``@step(gpus=1, memory="8Gi", foreach="lr")``.

    Options: ``gpus``, ``cpu``, ``memory``, ``image``, ``after``, ``foreach``, ``retries``, ``timeout``
    (seconds), ``env``, ``nodes`` (multi-node: that many workers with torchrun's environment, see
    :mod:`mlstack.pipeline.multinode`; ``gpus`` is per node), ``cache`` (reuse a result across runs when
    code, inputs, params and image match), ``gpu_resource`` (the resource ``gpus`` counts, e.g.
    ``"nvidia.com/gpu.shared"`` for a time-slice or ``"nvidia.com/mig-1g.10gb"`` for a MIG device; default the
    manifest's, ``nvidia.com/gpu``), ``node_pool`` (run on that GPU pool's nodes: ``mlstack.dev/node-pool``),
    ``name`` and ``run_as_root`` (Argo only: run this step's pod as
    root with a writable root filesystem instead of the non-root, read-only default; see
    :mod:`mlstack.pipeline.security`).
    """
    if func is not None:
        return Step(func, **options)
    return lambda f: Step(f, **options)


def coerce(value: Any, default: Any) -> Any:
    """A CLI/Argo string parameter typed like its default (JSON for lists, dicts and untyped params)."""
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false)")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        if isinstance(default, list | dict):
            raise ValueError(f"{value!r} is not JSON (a list or an object is expected)") from None
        return value


class Pipeline:
    """A named set of steps and parameters (with defaults); run it locally or render it for Argo.

    ``schedule`` (a cron string such as ``"0 3 * * *"``, a list of them, or a
    :class:`~mlstack.pipeline.schedule.Schedule`) makes it run by itself on a stack with Argo: ``mlstack
    render --argo`` adds a CronWorkflow and ``mlstack schedule PATH`` applies it. Default none.
    """

    def __init__(
        self,
        name: str,
        steps: Iterable[Step] = (),
        *,
        params: Mapping[str, Any] | None = None,
        image: str | None = None,
        description: str | None = None,
        schedule: Any = None,
    ) -> None:
        if not re.match(r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$", name or ""):
            raise UsageError(
                f"pipeline name {name!r} is not a DNS label",
                fix="use lowercase letters, digits and '-', at most 52 characters (Argo names it)",
            )
        self.name = name
        self.params: dict[str, Any] = dict(params or {})
        self.image = image
        self.description = description
        # when it runs by itself (an Argo CronWorkflow): a cron string, a list of them, or a Schedule
        self.schedule: Schedule | None = coerce_schedule(schedule, f"pipeline {name!r}")
        if self.schedule is not None:
            unknown = [k for k in self.schedule.params if k not in self.params]
            if unknown:
                raise UsageError(
                    f"pipeline {name!r}: Schedule(params=...) sets {', '.join(map(repr, unknown))}, "
                    "which the pipeline does not have",
                    fix=f"use the pipeline's params: {', '.join(self.params) or '(none)'}",
                )
        self.steps: dict[str, Step] = {}
        self.source: str | None = None  # the file this pipeline was loaded from (for the step entry)
        for s in steps:
            self.add(s)

    # ------------------------------------------------------------ definition
    def add(self, s: Step) -> Step:
        if not isinstance(s, Step):
            raise UsageError(f"pipeline {self.name!r}: {s!r} is not a step", fix="decorate it with @step")
        if s.name in self.steps and self.steps[s.name] is not s:
            raise UsageError(f"pipeline {self.name!r}: two steps are named {s.name!r}", fix="rename one")
        self.steps[s.name] = s
        return s

    def step(self, func: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Like :func:`step`, and add the step to this pipeline."""
        if func is not None:
            return self.add(Step(func, **options))
        return lambda f: self.add(Step(f, **options))

    def deps(self, name: str) -> list[str]:
        """The steps ``name`` waits for: its ``after`` and the parameters naming steps."""
        s = self.steps[name]
        out = list(s.after)
        for a in s.arg_names:
            if a in self.steps and a not in out:
                out.append(a)
        if s.foreach in self.steps and s.foreach not in out:
            out.append(s.foreach)
        return out

    def validate(self) -> list[str]:
        """Check the graph; return the steps in dependency order. Raises PipelineError naming each problem."""
        problems: list[str] = []
        if not self.steps:
            problems.append("it has no steps")
        for p in self.params:
            if not _NAME.match(p):
                problems.append(f"param {p!r} is not a Python identifier")
            if p in self.steps:
                problems.append(f"{p!r} is both a param and a step")
        for s in self.steps.values():
            for a in s.after:
                if a not in self.steps:
                    problems.append(f"step {s.name!r}: after={a!r} is not a step")
            for a in s.arg_names:
                if a == s.name:
                    problems.append(f"step {s.name!r}: takes its own name as a parameter")
                elif a not in self.steps and a not in self.params and a not in s.arg_defaults:
                    problems.append(
                        f"step {s.name!r}: parameter {a!r} names no step and no pipeline param "
                        f"(steps: {', '.join(self.steps)}; params: {', '.join(self.params) or 'none'})"
                    )
            if s.foreach is not None:
                if s.foreach not in self.steps and s.foreach not in self.params:
                    problems.append(f"step {s.name!r}: foreach={s.foreach!r} names no step and no param")
                elif s.foreach not in s.arg_names:
                    problems.append(
                        f"step {s.name!r}: foreach={s.foreach!r} but the function takes no parameter "
                        f"{s.foreach!r} to receive one item"
                    )
                elif s.foreach in self.params and not isinstance(self.params[s.foreach], list | tuple):
                    problems.append(f"step {s.name!r}: foreach param {s.foreach!r} must default to a list")
        order: list[str] = []
        if not problems:
            state: dict[str, int] = {}

            def visit(n: str, path: list[str]) -> None:
                if state.get(n) == 2:
                    return
                if state.get(n) == 1:
                    problems.append("dependency cycle: " + " -> ".join([*path[path.index(n) :], n]))
                    return
                state[n] = 1
                for d in self.deps(n):
                    visit(d, [*path, n])
                state[n] = 2
                order.append(n)

            for n in self.steps:
                visit(n, [])
        if problems:
            raise PipelineError(
                f"pipeline {self.name!r} is invalid: " + "; ".join(problems),
                fix="correct the step definitions above",
            )
        return order

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides`` applied, strings typed like each default."""
        values = dict(self.params)
        for k, v in (overrides or {}).items():
            if k not in self.params:
                raise UsageError(
                    f"pipeline {self.name!r} has no param {k!r}",
                    fix=f"use one of: {', '.join(self.params) or '(none: it takes no params)'}",
                )
            try:
                values[k] = coerce(v, self.params[k])
            except ValueError as exc:
                raise UsageError(
                    f"param {k}={v!r}: {exc}", fix=f"give a value like the default {self.params[k]!r}"
                ) from None
        return values

    # ------------------------------------------------------------ execution
    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        manifest: Any = None,
        max_parallel: int | None = None,
        check: bool = True,
    ) -> Any:
        """Run every step as a local subprocess (see :class:`mlstack.pipeline.local.LocalRunner`).

        Returns a RunResult; with ``check`` a failed step raises StepFailed (carrying ``.result``).
        """
        from mlstack.pipeline.local import LocalRunner

        result = LocalRunner(manifest, max_parallel=max_parallel).run(self, params)
        if check:
            result.raise_for_status()
        return result

    def to_argo(
        self, *, manifest: Any = None, params: Mapping[str, Any] | None = None, image: str | None = None
    ):
        """A hera WorkflowTemplate for this pipeline (see :mod:`mlstack.pipeline.argo`)."""
        from mlstack.pipeline.argo import to_workflow_template

        return to_workflow_template(self, manifest=manifest, params=params, image=image).template

    def to_argo_cron(self, *, manifest: Any = None, schedule: Any = None):
        """A hera CronWorkflow running this pipeline's WorkflowTemplate on its schedule (or ``schedule``)."""
        from mlstack.pipeline.argo import to_cron_workflow

        return to_cron_workflow(self, manifest=manifest, schedule=schedule).cron_workflow

    def submit(self, params: Mapping[str, Any] | None = None, *, manifest: Any = None, **kw: Any) -> Any:
        """Create/update the WorkflowTemplate on the Argo server and submit a workflow from it."""
        from mlstack.pipeline.argo import ArgoRunner

        return ArgoRunner(manifest, **kw).submit(self, params)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={list(self.steps)})"


def pipeline_file(path: str | Path) -> Path:
    """``PATH`` as the CLI takes it: a Python file, or a folder holding ``pipeline.py``."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "pipeline.py"
    if not p.is_file():
        raise UsageError(
            f"no pipeline at {str(path)!r}", fix="pass a Python file, or a folder holding pipeline.py"
        )
    return p.resolve()


_modules: dict[str, Any] = {}


def load(path: str | Path) -> Pipeline:
    """Import a pipeline file and return its Pipeline (the one named ``pipeline``, the only one, or one
    made of the file's module-level steps, named after its folder)."""
    file = pipeline_file(path)
    key = str(file)
    module = _modules.get(key)
    if module is None:
        mod_name = "mlstack_pipeline_" + hashlib.sha1(key.encode()).hexdigest()[:10]
        spec = importlib.util.spec_from_file_location(mod_name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        folder = str(file.parent)
        # helper modules next to the pipeline import as they would in a step
        if folder not in sys.path:
            sys.path.insert(0, folder)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(mod_name, None)
            raise
        _modules[key] = module
    found = getattr(module, "pipeline", None)
    if not isinstance(found, Pipeline):
        pipes = [v for v in vars(module).values() if isinstance(v, Pipeline)]
        if len(pipes) > 1:
            raise UsageError(
                f"{file} defines {len(pipes)} pipelines", fix="name the one to run `pipeline` at module level"
            )
        if pipes:
            found = pipes[0]
        else:
            steps = [v for v in vars(module).values() if isinstance(v, Step)]
            if not steps:
                raise UsageError(
                    f"{file} defines no pipeline and no steps",
                    fix="define `pipeline = Pipeline(...)` or decorate functions with @step",
                )
            base = file.parent.name if file.name == "pipeline.py" else file.stem
            found = Pipeline(re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-") or "pipeline", steps)
    found.source = str(file)
    found.validate()
    return found

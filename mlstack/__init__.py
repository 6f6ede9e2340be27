"""mlstack: the ML stack as code, and the runtime library jobs use to find it.

``import mlstack`` is cheap on purpose: it imports no cloud SDK, no Arrow, no Pulumi. Submodules load on
first attribute access (``mlstack.artifacts``, ``mlstack.data``, ``mlstack.pipeline``, ...), and backends
load when a manifest first asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlstack._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from mlstack import artifacts, card, data, errors, manifest, pipeline, run, runs

__all__ = [
    "Pipeline",
    "Schedule",
    "__version__",
    "artifacts",
    "card",
    "data",
    "errors",
    "manifest",
    "pipeline",
    "run",
    "runs",
    "step",
]

_SUBMODULES = {"artifacts", "card", "data", "errors", "manifest", "pipeline", "run", "runs", "registry"}
# names re-exported from submodules, resolved lazily
_ATTRS = {"step": "mlstack.pipeline", "Pipeline": "mlstack.pipeline", "Schedule": "mlstack.pipeline"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"mlstack.{name}")
        globals()[name] = module
        return module
    if name in _ATTRS:
        value = getattr(importlib.import_module(_ATTRS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlstack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRS))

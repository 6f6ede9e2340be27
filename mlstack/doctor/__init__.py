"""mlstack doctor: why a stack or a job does not work, with the fix.

- :func:`diagnose` runs the checks for a manifest's layers concurrently under one deadline
  (``mlstack doctor``); each :class:`Finding` has a check id, a status (ok/warn/fail), a detail and a fix.
- :mod:`mlstack.doctor.explain` explains why a pod or an Argo workflow is stuck (``mlstack doctor job``).
- :mod:`mlstack.doctor.preflight` compares a plan's GPU needs with EC2 quotas and zone offerings.

Modules load on first use: importing this package imports no cloud SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Finding", "Report", "diagnose", "run_checks"]

_ATTRS = {
    "Finding": "mlstack.doctor.core",
    "Report": "mlstack.doctor.core",
    "run_checks": "mlstack.doctor.core",
    "diagnose": "mlstack.doctor.runner",
}


def __getattr__(name: str) -> Any:
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    raise AttributeError(f"module 'mlstack.doctor' has no attribute {name!r}")

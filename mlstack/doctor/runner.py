"""``diagnose(manifest)``: every check for the manifest's layers, run concurrently under one deadline."""

from __future__ import annotations

from mlstack.doctor import artifacts, compute, data, environment, orchestrator
from mlstack.doctor.core import DEFAULT_TIMEOUT, Check, Report, run_checks
from mlstack.manifest import Manifest


def checks_for(m: Manifest, deep: bool = False) -> list[Check]:
    """The checks that apply to this manifest, in display order (``deep``: also scan the artifact store)."""
    out: list[Check] = []
    for module in (environment, artifacts, data, compute, orchestrator):
        out.extend(artifacts.checks(m, deep=True) if deep and module is artifacts else module.checks(m))
    return out


def diagnose(m: Manifest, timeout: float = DEFAULT_TIMEOUT, deep: bool = False) -> Report:
    """Run every check for ``m``; returns within about ``timeout`` seconds whatever the endpoints do."""
    return run_checks(checks_for(m, deep), timeout)

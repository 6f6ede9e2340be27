"""Environment checks: Python, the extras the manifest's kinds need, the ``pulumi`` CLI."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

from mlstack import registry
from mlstack.doctor.core import Check, Finding, Sink, fail, ok, warn
from mlstack.manifest import Manifest

MIN_PYTHON = (3, 11)
PULUMI_INSTALL = "curl -fsSL https://get.pulumi.com | sh  (or: brew install pulumi)"
# extras the runtime needs for a layer's kind beyond registry.BACKENDS (compute has no runtime backend)
_COMPUTE_EXTRAS = {"kubernetes": "k8s"}


def python_finding(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Finding:
    shown = ".".join(str(v) for v in version)
    if tuple(version[:2]) < MIN_PYTHON:
        return fail(
            "environment.python",
            f"Python {shown} is older than the {MIN_PYTHON[0]}.{MIN_PYTHON[1]} mlstack needs",
            f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer and reinstall mlstack in it",
        )
    return ok("environment.python", f"Python {shown} ({sys.executable})")


def needed_extras(m: Manifest) -> dict[str, list[str]]:
    """extra -> the layers (``layer=kind``) that need it, for this manifest."""
    need: dict[str, list[str]] = {}
    for layer in ("artifacts", "data", "compute", "orchestrator"):
        kind = getattr(m, layer).kind
        extra = registry.BACKENDS.get(layer, {}).get(kind, (None, None))[1] or _COMPUTE_EXTRAS.get(kind)
        if extra:
            need.setdefault(extra, []).append(f"{layer}={kind}")
    return need


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing
        return False


def extras_findings(m: Manifest, installed=_installed) -> list[Finding]:
    out: list[Finding] = []
    for extra, users in sorted(needed_extras(m).items()):
        missing = [mod for mod in registry.EXTRA_MODULES.get(extra, ()) if not installed(mod)]
        if missing:
            out.append(
                fail(
                    f"environment.extra.{extra}",
                    f"{', '.join(users)} needs the '{extra}' extra; missing: {', '.join(missing)}",
                    f"pip install 'mlstack[{extra}]'",
                )
            )
        else:
            out.append(
                ok(f"environment.extra.{extra}", f"'{extra}' extra installed (for {', '.join(users)})")
            )
    return out


def optional_extras_finding(m: Manifest, installed=_installed) -> Finding:
    """The extras this stack does not need but verbs do (plan needs components, render --argo needs k8s...):
    one finding listing every missing one with what it enables, and the one command installing them all."""
    needed = needed_extras(m)
    missing = [
        extra
        for extra in registry.EXTRA_USES  # in the order a newcomer meets them
        if extra not in needed and not all(installed(mod) for mod in registry.EXTRA_MODULES[extra])
    ]
    if not missing:
        return ok("environment.extras", "every optional extra is installed")
    listed = "; ".join(f"{e} ({registry.EXTRA_USES.get(e, 'optional')})" for e in missing)
    return warn(
        "environment.extras",
        f"not installed: {listed}",
        f"pip install 'mlstack[{','.join(missing)}]' (or 'mlstack[all]'); each verb that needs one names it",
    )


def pulumi_finding(timeout: float, which=shutil.which) -> Finding:
    exe = which("pulumi")
    if not exe:
        return warn(
            "environment.pulumi",
            "the pulumi CLI is not on PATH: `mlstack up/preview/destroy` need it (plan and doctor do not)",
            PULUMI_INSTALL,
        )
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return fail("environment.pulumi", f"`{exe} version` failed: {exc}", f"reinstall it: {PULUMI_INSTALL}")
    text = (out.stdout or out.stderr).strip()
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if out.returncode != 0 or not match:
        return fail(
            "environment.pulumi", f"`{exe} version` exited {out.returncode}: {text[:120]}", PULUMI_INSTALL
        )
    if int(match.group(1)) < 3:
        return fail(
            "environment.pulumi",
            f"pulumi {match.group(0)} is too old; mlstack needs pulumi 3.x",
            f"upgrade: {PULUMI_INSTALL}",
        )
    return ok("environment.pulumi", f"pulumi {match.group(0)} ({exe})")


def checks(m: Manifest) -> list[Check]:
    def _env(sink: Sink, timeout: float) -> None:
        sink.add(python_finding())
        sink.extend(extras_findings(m))
        sink.add(optional_extras_finding(m))

    def _pulumi(sink: Sink, timeout: float) -> None:
        sink.add(pulumi_finding(timeout))

    return [
        Check("environment.python", _env),
        Check("environment.pulumi", _pulumi, f"`pulumi version` hung; reinstall it: {PULUMI_INSTALL}"),
    ]

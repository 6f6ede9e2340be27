"""Test support: checkov (Bridgecrew/Prisma's IaC scanner) run from its own virtualenv.

checkov pins many libraries (boto3, pydantic, networkx, ...) at versions that fight mlstack's, so it lives in
``<repo>/.venv-checkov`` (or ``$MLSTACK_CHECKOV``: a checkov executable), created on first use as if by

    python3 -m venv .venv-checkov
    .venv-checkov/bin/pip install 'checkov>=3.2,<4'

xdist workers wait on a file lock for the first one. Without it the checkov tests skip (and fail in CI, where
``CI=true``, so a broken setup is not silent). ``.ci/run`` creates it up front.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXE_VAR = "MLSTACK_CHECKOV"
REQUIREMENTS = ("checkov>=3.2,<4",)


def _create_venv(venv: Path) -> None:
    import fcntl
    import shutil

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".venv-checkov.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (venv / "bin" / "checkov").exists():
                return
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            pip = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *REQUIREMENTS],
                capture_output=True,
                text=True,
                timeout=1500,
            )
            if pip.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)  # never leave a half-made venv that looks usable
                raise RuntimeError(f"could not install checkov's virtualenv: {pip.stderr[-2000:]}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def executable() -> str | None:
    env = os.environ.get(EXE_VAR)
    if env:
        return env if Path(env).exists() else None
    exe = REPO / ".venv-checkov" / "bin" / "checkov"
    if not exe.exists() and os.environ.get("MLSTACK_CHECKOV_AUTOCREATE", "1") == "1":
        _create_venv(exe.parent.parent)
    return str(exe) if exe.exists() else None


def require() -> str:
    exe = executable()
    if exe is None:
        msg = (
            f"checkov is not installed: set {EXE_VAR} or create .venv-checkov (see tests/support/checkov.py)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def scan(directory: Path, framework: str) -> list[dict[str, Any]]:
    """Run checkov over ``directory`` with one framework, offline; return its per-framework reports."""
    exe = require()
    env = {
        **os.environ,
        # no network: no Prisma Cloud API, no version check, no telemetry
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "ENABLE_SCA_PACKAGE_SCAN": "false",
        "CKV_NO_UPDATE_CHECK": "true",
        "ANSI_COLORS_DISABLED": "true",
    }
    out = subprocess.run(
        [
            exe,
            "-d",
            str(directory),
            "--framework",
            framework,
            "-o",
            "json",
            "--compact",
            "--skip-download",
            "--no-cert-verify",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if out.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {out.returncode}: {out.stderr[-3000:]}")
    text = out.stdout.strip()
    if not text:
        raise RuntimeError(f"checkov printed nothing: {out.stderr[-3000:]}")
    doc = json.loads(text)
    reports = doc if isinstance(doc, list) else [doc]
    # a run with nothing to scan prints a summary without "results"
    return [r for r in reports if isinstance(r, dict)]


def failed_checks(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for r in reports for c in (r.get("results") or {}).get("failed_checks", [])]


def passed_checks(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for r in reports for c in (r.get("results") or {}).get("passed_checks", [])]


def summary(reports: list[dict[str, Any]]) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "parsing_errors": 0}
    for r in reports:
        for k in out:
            out[k] += int((r.get("summary") or {}).get(k) or 0)
    return out

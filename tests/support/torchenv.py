"""Test support: an interpreter with PyTorch (CPU) for the local multi-node test's real all-reduce.

torch is not a dependency of any extra: ``pip install torch`` on Linux brings the multi-GB CUDA build, which no
user of ``mlstack[dev]`` should download to run the tests. So the test finds an interpreter that has torch:

1. ``$MLSTACK_TORCH_PYTHON`` (any Python with torch and mlstack importable);
2. this interpreter, when ``import torch`` would work here (a developer who installed torch themselves);
3. ``<repo>/.venv-torch/bin/python``: a virtualenv made on first use under a file lock (xdist workers wait for
   the first) as if by ``python -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0``, plus a
   ``.pth`` line that adds this environment's site-packages, so mlstack and its dependencies import there as
   they do here. It is made only under ``CI=true`` or with ``MLSTACK_TORCH_AUTOCREATE=1``: on the CI machines
   ``torch==2.13.0`` resolves to a CPU wheel on local disk; elsewhere install a CPU build yourself (PyTorch's
   CPU wheel index) and point ``MLSTACK_TORCH_PYTHON`` at it.

Without one the test skips, and under ``CI=true`` it fails instead (a broken setup is never silent).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_VAR = "MLSTACK_TORCH_PYTHON"
AUTOCREATE_VAR = "MLSTACK_TORCH_AUTOCREATE"
VENV = REPO / ".venv-torch"
# the CPU build on the CI machines' disk; a plain `torch` would resolve to the CUDA build elsewhere
REQUIREMENT = "torch==2.13.0"
COMPLETE = ".mlstack-complete"  # written last: a venv without it is still being made (or broken)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _has_torch(python: str) -> bool:
    probe = subprocess.run(
        [python, "-c", "import torch, torch.distributed as d, mlstack; assert d.is_available()"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return probe.returncode == 0


def torch_python() -> str | None:
    """An interpreter where torch (with torch.distributed) and mlstack import, or None."""
    env = os.environ.get(PYTHON_VAR)
    if env:
        return env if Path(env).exists() and _has_torch(env) else None
    if importlib.util.find_spec("torch") is not None and _has_torch(sys.executable):
        return sys.executable
    python = VENV / "bin" / "python"
    # bin/python appears as soon as another xdist worker starts making the venv: wait for its completion mark
    if not (VENV / COMPLETE).exists() and (in_ci() or os.environ.get(AUTOCREATE_VAR) == "1"):
        _create_venv(VENV)
    return str(python) if (VENV / COMPLETE).exists() and _has_torch(str(python)) else None


def _create_venv(venv: Path) -> None:
    """Create the torch virtualenv once (xdist workers wait on a file lock for the first one)."""
    import fcntl

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".venv-torch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (venv / COMPLETE).exists():
                return
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            py = venv / "bin" / "python"
            pip = subprocess.run(
                [str(py), "-m", "pip", "install", "-q", REQUIREMENT],
                capture_output=True,
                text=True,
                timeout=1200,
            )
            if pip.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)  # never leave a half-made venv that looks usable
                raise RuntimeError(f"could not install {REQUIREMENT} into {venv}: {pip.stderr[-2000:]}")
            # this environment's packages (mlstack, editable or not, and its dependencies) import there too;
            # addsitedir also runs the .pth files of an editable install
            site = subprocess.run(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            here = sysconfig.get_paths()["purelib"]
            (Path(site) / "mlstack-test-env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
            (venv / COMPLETE).write_text("")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def torch_python_path() -> str:
    """The torch interpreter; skip without one (fail under CI=true)."""
    python = torch_python()
    if python is None:
        msg = (
            f"no Python with torch for the multi-node all-reduce test: set {PYTHON_VAR}, or "
            f"{AUTOCREATE_VAR}=1 to make .venv-torch with {REQUIREMENT} (see tests/support/torch.py)"
        )
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return python

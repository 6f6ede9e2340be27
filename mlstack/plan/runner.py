"""Load a Pulumi project folder and run its program offline under the mock runtime.

A stack folder holds ``Pulumi.yaml`` (project name, runtime, optional ``main``), the program (``__main__.py``)
and its config (``Pulumi.example.yaml`` by default, or the file given with ``--config``). Nothing here calls
the Pulumi CLI, a provider plugin or a cloud API: the program runs in this process and every resource it
registers is recorded (see :mod:`mlstack.plan.mock_runtime`).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlstack.errors import ConfigError, MlstackError, UsageError
from mlstack.plan import mock_runtime

CONFIG_CANDIDATES = ("Pulumi.example.yaml", "Pulumi.plan.yaml")


@dataclass
class StackProgram:
    """A Pulumi project folder as ``mlstack plan`` sees it."""

    path: Path
    project: str
    main: Path
    config_file: Path | None
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def region(self) -> str:
        return self.config.get("aws:region") or mock_runtime.DEFAULT_REGION


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {exc.strerror}", fix=f"check that {path} exists"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{what} {path} is not valid YAML: {exc}", fix=f"fix the YAML syntax in {path}"
        ) from exc


def _config_value(value: Any) -> str:
    """Pulumi keeps config values as strings; structured values (lists, maps) as their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and set(value) == {"secure"}:
        # a ciphertext from `pulumi config set --secret`: not decryptable offline; a placeholder stands in
        return "<secret>"
    return json.dumps(value)


def read_config(path: Path, project: str) -> dict[str, str]:
    """Read a Pulumi stack config file into full keys (``project:key``, ``aws:region``) -> string values."""
    doc = _read_yaml(path, "config file") or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping", fix="start it with `config:`")
    cfg = doc.get("config", {}) or {}
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"`config` in {path} must be a mapping of keys to values", fix="see stacks/README.md"
        )
    out: dict[str, str] = {}
    for key, value in cfg.items():
        full = str(key) if ":" in str(key) else f"{project}:{key}"
        out[full] = _config_value(value)
    return out


def load_program(
    path: str | os.PathLike[str], config_file: str | os.PathLike[str] | None = None
) -> StackProgram:
    """Find the project, its program and its config; raise UsageError/ConfigError with the fix."""
    folder = Path(path)
    if folder.is_file() and folder.name in ("Pulumi.yaml", "Pulumi.yml"):
        folder = folder.parent
    project_file = next((folder / n for n in ("Pulumi.yaml", "Pulumi.yml") if (folder / n).is_file()), None)
    if not folder.is_dir() or project_file is None:
        raise UsageError(
            f"{folder} is not a Pulumi project folder (no Pulumi.yaml)",
            fix="pass the folder that holds Pulumi.yaml, e.g. `mlstack plan stacks/aws-snowflake`",
        )
    proj = _read_yaml(project_file, "project file") or {}
    if not isinstance(proj, dict) or not proj.get("name"):
        raise ConfigError(f"{project_file} has no `name`", fix="add `name: <project>` to Pulumi.yaml")
    runtime = proj.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python":
        raise UsageError(
            f"{project_file}: runtime {runtime_name!r} is not supported by mlstack plan",
            fix="mlstack plan runs Python Pulumi programs (runtime: python)",
        )
    main = folder / str(proj.get("main") or ".")
    if main.is_dir():
        main = main / "__main__.py"
    if not main.is_file():
        raise UsageError(
            f"{folder}: no program at {main}", fix="add __main__.py or set `main:` in Pulumi.yaml"
        )
    cfg_path: Path | None
    if config_file is not None:
        cfg_path = Path(config_file)
        if not cfg_path.is_file():
            raise UsageError(f"--config {cfg_path}: no such file", fix="pass a Pulumi stack config YAML file")
    else:
        cfg_path = next((folder / n for n in CONFIG_CANDIDATES if (folder / n).is_file()), None)
    config = read_config(cfg_path, str(proj["name"])) if cfg_path else {}
    return StackProgram(
        path=folder.resolve(),
        project=str(proj["name"]),
        main=main.resolve(),
        config_file=cfg_path.resolve() if cfg_path else None,
        config=config,
        description=str(proj.get("description") or ""),
    )


def execute(program: StackProgram, *, stack: str = "plan") -> mock_runtime.Recording:
    """Run the program under the mock runtime, as ``pulumi up`` would run it from its folder."""
    folder = str(program.path)

    def _program() -> None:
        # Pulumi runs a program from its folder with the folder importable (local helper modules)
        sys.path.insert(0, folder)
        old_cwd = os.getcwd()
        os.chdir(folder)
        try:
            runpy.run_path(str(program.main), run_name="__main__")
        finally:
            os.chdir(old_cwd)
            try:
                sys.path.remove(folder)
            except ValueError:  # pragma: no cover
                pass
            _forget_local_modules(folder)

    try:
        return mock_runtime.run(_program, project=program.project, stack=stack, config=program.config)
    except MlstackError:
        raise
    except AssertionError as exc:
        raise ConfigError(
            f"{program.main}: {exc}", fix="declare at least one resource in the program"
        ) from exc
    except Exception as exc:
        # pulumi wraps errors raised in the program; unwrap our own so the CLI prints their fix
        inner = _find_mlstack_error(exc)
        if inner is not None:
            raise inner from exc
        missing = _missing_module(exc)
        if missing is not None and missing.startswith("pulumi"):
            from mlstack.errors import MissingExtraError

            raise MissingExtraError(missing, "components", f"the stack program {program.main}") from exc
        raise MlstackError(
            f"the stack program {program.main} failed under the mock runtime: {type(exc).__name__}: {exc}",
            fix="run again with --debug for the traceback",
        ) from exc


def _forget_local_modules(folder: str) -> None:
    """Drop modules imported from the project folder, so another project's same-named helpers load afresh."""
    prefix = os.path.join(folder, "")
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None) or ""
        if path.startswith(prefix):
            del sys.modules[name]


def _missing_module(exc: BaseException) -> str | None:
    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ModuleNotFoundError) and cur.name:
            return cur.name.split(".")[0]
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _find_mlstack_error(exc: BaseException) -> MlstackError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, MlstackError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None

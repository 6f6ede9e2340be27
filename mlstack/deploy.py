"""Deploy a Pulumi program of mlstack components: ``up``, ``preview``, ``destroy`` and ``outputs``.

This drives the ``pulumi`` CLI through Pulumi's Automation API (``pulumi.automation``) on a *local program*:
a directory holding ``Pulumi.yaml`` (for example ``stacks/aws-lakehouse``). The CLI runs the program itself,
so mlstack needs nothing but the CLI and the usual backend settings (``pulumi login`` or
``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE`` for a self-managed backend).

``up`` reads the stack output ``manifest`` (exported by the ``MLStack`` component), validates it with
:func:`mlstack.manifest.from_dict` and writes it to ``mlstack.json`` so jobs and ``mlstack doctor`` find the
stack. Pulumi is imported lazily: ``import mlstack.deploy`` stays cheap and works without the extra.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlstack.errors import BackendError, ConfigError, MlstackError, NotFoundError, UsageError, require

if TYPE_CHECKING:  # pragma: no cover
    from pulumi import automation as auto

    from mlstack.manifest import Manifest

OnOutput = Callable[[str], None]

SECRET_MASK = "[secret]"
MANIFEST_OUTPUT = "manifest"
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
INSTALL_FIX = (
    "install the Pulumi CLI: `curl -fsSL https://get.pulumi.com | sh` (Linux/macOS) or `brew install pulumi`, "
    "then open a new shell (it installs to ~/.pulumi/bin) or set MLSTACK_PULUMI=/path/to/pulumi"
)


class PulumiNotInstalled(MlstackError):
    """No ``pulumi`` executable was found (Automation API needs the CLI)."""

    headline = "Pulumi CLI not found"


class DeployError(BackendError):
    """The Pulumi CLI ran and failed (update error, engine error, backend error)."""

    headline = "deployment failed"


@dataclass(frozen=True)
class Target:
    """Which program and stack an operation acts on, and the settings the CLI runs with."""

    path: Path
    stack: str
    backend_url: str | None = None
    config: Mapping[str, str] = field(default_factory=dict)
    secret_config: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputValue:
    name: str
    value: Any
    secret: bool

    def shown(self, show_secrets: bool) -> Any:
        return self.value if show_secrets or not self.secret else SECRET_MASK


@dataclass(frozen=True)
class UpResult:
    stack: str
    summary: dict[str, Any]
    outputs: list[OutputValue]
    manifest: Manifest | None
    manifest_path: Path | None


@dataclass(frozen=True)
class PreviewResult:
    stack: str
    changes: dict[str, int]


@dataclass(frozen=True)
class DestroyResult:
    stack: str
    summary: dict[str, Any]
    removed_stack: bool


# ------------------------------------------------------------------------------------------------ CLI discovery


def find_pulumi() -> Path:
    """The ``pulumi`` executable: ``$MLSTACK_PULUMI``, else ``pulumi`` on PATH, else ``~/.pulumi/bin/pulumi``."""
    explicit = os.environ.get("MLSTACK_PULUMI")
    if explicit:
        p = Path(explicit).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return p.resolve()
        raise PulumiNotInstalled(f"MLSTACK_PULUMI={explicit!r} is not an executable file", fix=INSTALL_FIX)
    found = shutil.which("pulumi")
    if found:
        return Path(found)
    default = Path.home() / ".pulumi" / "bin" / "pulumi"
    if default.is_file() and os.access(default, os.X_OK):
        return default
    raise PulumiNotInstalled(
        "`mlstack up|preview|destroy|outputs` drive the Pulumi CLI and no `pulumi` executable was found "
        "(not on PATH, not in ~/.pulumi/bin)",
        fix=INSTALL_FIX,
    )


def _pulumi_command(exe: Path) -> auto.PulumiCommand:
    """A PulumiCommand running exactly ``exe`` (the API wants ``ROOT/bin/pulumi``; other layouts use a link)."""
    from pulumi import automation as auto

    if exe.name == "pulumi" and exe.parent.name == "bin":
        root = exe.parent.parent
    else:  # e.g. MLSTACK_PULUMI=/opt/pulumi-3.200: give the API the layout it expects
        root = Path(tempfile.mkdtemp(prefix="mlstack-pulumi-"))
        atexit.register(shutil.rmtree, root, True)
        (root / "bin").mkdir()
        (root / "bin" / "pulumi").symlink_to(exe.resolve())
    try:
        return auto.PulumiCommand(root=str(root))
    except auto.InvalidVersionError as exc:
        raise PulumiNotInstalled(f"the Pulumi CLI at {exe} is too old: {exc}", fix=INSTALL_FIX) from exc
    except (OSError, ValueError) as exc:
        raise PulumiNotInstalled(f"could not run `{exe} version`: {exc}", fix=INSTALL_FIX) from exc


# ------------------------------------------------------------------------------------------------ workspace


def _check_project(path: Path) -> Path:
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"PATH {str(path)!r} is not a directory", fix="pass the folder holding Pulumi.yaml")
    if not any((path / f).is_file() for f in PROJECT_FILES):
        raise UsageError(
            f"{str(path)!r} holds no Pulumi.yaml, so it is not a Pulumi project",
            fix="pass a project folder such as stacks/aws-lakehouse, or create one with `pulumi new python`",
        )
    return path


def _has_secrets_provider(target: Target) -> bool:
    """A stack configured with a KMS/Vault secrets provider needs no passphrase."""
    for ext in ("yaml", "yml"):
        f = target.path / f"Pulumi.{target.stack}.{ext}"
        if f.is_file() and re.search(
            r"(?m)^secretsprovider:\s*(?!passphrase)\S", f.read_text(encoding="utf-8")
        ):
            return True
    return False


def _env_vars(target: Target) -> dict[str, str]:
    env: dict[str, str] = {"PULUMI_SKIP_UPDATE_CHECK": "true", **dict(target.env)}
    backend = target.backend_url or os.environ.get("PULUMI_BACKEND_URL")
    if target.backend_url:
        env["PULUMI_BACKEND_URL"] = target.backend_url
    if backend and not backend.startswith(("https://", "http://")) and not _has_secrets_provider(target):
        # a self-managed backend encrypts config with a passphrase; without one the CLI would prompt and,
        # non-interactive under the API, fail with a message that does not say what to set
        has = {
            k
            for k in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
            if k in os.environ or k in env
        }
        if not has:
            raise ConfigError(
                f"the state backend {backend!r} needs a secrets passphrase and none is set",
                fix="export PULUMI_CONFIG_PASSPHRASE=... (or PULUMI_CONFIG_PASSPHRASE_FILE=path)",
            )
    return env


def _translate(exc: Exception, target: Target, action: str) -> MlstackError:
    """Map Automation API errors to mlstack errors: the CLI's own last lines are the useful part."""
    from pulumi import automation as auto

    if isinstance(exc, auto.StackNotFoundError):
        return NotFoundError(
            f"stack {target.stack!r} of {str(target.path)!r} does not exist in this backend",
            fix=f"create it with `mlstack up {target.path} --stack {target.stack}` or check `pulumi stack ls`",
        )
    if isinstance(exc, auto.ConcurrentUpdateError):
        return DeployError(
            f"stack {target.stack!r} is locked by another update",
            fix=f"wait for it, or if it crashed: `pulumi cancel --stack {target.stack}` / `pulumi stack export`",
        )
    if isinstance(exc, auto.CommandError):
        # the API keeps only str(CommandResult): "\n code: N\n stdout: ...\n stderr: ..."
        text = str(exc)
        out, _, err = text.partition("\n stderr: ")
        detail = _tail(err) or _tail(out.partition("\n stdout: ")[2])
        return DeployError(
            f"`pulumi {action}` failed for stack {target.stack!r}" + (f": {detail}" if detail else ""),
            fix=f"see the Pulumi output above; re-run with `pulumi {action} --stack {target.stack}` in "
            f"{target.path} for the full log",
        )
    if isinstance(exc, FileNotFoundError):
        return PulumiNotInstalled(f"could not start the Pulumi CLI: {exc}", fix=INSTALL_FIX)
    return DeployError(
        f"`pulumi {action}` failed for stack {target.stack!r}: {exc}", fix="re-run with --debug"
    )


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


def open_stack(target: Target, *, create: bool) -> auto.Stack:
    """Select (or with ``create``, create-or-select) the stack and apply ``--config`` values to it."""
    require("pulumi.automation", "components", "mlstack up/preview/destroy/outputs")
    from pulumi import automation as auto

    path = _check_project(target.path)
    target = Target(path, target.stack, target.backend_url, target.config, target.secret_config, target.env)
    env = _env_vars(target)  # may refuse (missing passphrase) before any CLI call
    cmd = _pulumi_command(find_pulumi())
    opts = auto.LocalWorkspaceOptions(work_dir=str(path), pulumi_command=cmd, env_vars=env)
    action = "stack select"
    try:
        if create:
            stack = auto.create_or_select_stack(target.stack, work_dir=str(path), opts=opts)
        else:
            stack = auto.select_stack(target.stack, work_dir=str(path), opts=opts)
        values = {k: auto.ConfigValue(v) for k, v in target.config.items()}
        values.update({k: auto.ConfigValue(v, secret=True) for k, v in target.secret_config.items()})
        if values:
            action = "config set-all"
            stack.set_all_config(values)
    except Exception as exc:
        raise _translate(exc, target, action) from exc
    return stack


def _outputs(raw: Mapping[str, Any]) -> list[OutputValue]:
    return [OutputValue(k, v.value, bool(v.secret)) for k, v in sorted(raw.items())]


def _summary(info: Any) -> dict[str, Any]:
    if info is None:
        return {}
    return {
        "kind": info.kind,
        "result": info.result,
        "version": info.version,
        "resource_changes": dict(info.resource_changes or {}),
        "start_time": info.start_time.isoformat() if info.start_time else None,
        "end_time": info.end_time.isoformat() if info.end_time else None,
    }


# ------------------------------------------------------------------------------------------------ operations


def write_manifest(manifest: Manifest, out: Path) -> Path:
    """Write atomically (a job reading it mid-write must never see half a file)."""
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(manifest.to_json() + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def manifest_from_outputs(outputs: list[OutputValue], *, source: str) -> Manifest:
    """Validate the stack output ``manifest``; a stack without one is a clear error, not an empty file."""
    from mlstack import manifest as mf

    by_name = {o.name: o for o in outputs}
    if MANIFEST_OUTPUT not in by_name:
        raise ConfigError(
            f"{source} has no stack output {MANIFEST_OUTPUT!r}, so there is no manifest to write "
            f"(outputs: {', '.join(sorted(by_name)) or 'none'})",
            fix="build the stack with mlstack.components.MLStack (it exports `manifest`), or "
            "pulumi.export('manifest', ...) yourself; pass --no-manifest to skip writing one",
        )
    value = by_name[MANIFEST_OUTPUT].value
    if isinstance(value, str):  # exported as JSON text
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(
                f"{source}: the output {MANIFEST_OUTPUT!r} is a string but not JSON ({exc})",
                fix="export the manifest dict itself: pulumi.export('manifest', stack.manifest)",
            ) from exc
    return mf.from_dict(value, source=f"{source} output {MANIFEST_OUTPUT!r}")


def up(
    target: Target,
    *,
    manifest_out: Path | None = Path("mlstack.json"),
    on_output: OnOutput | None = None,
    message: str | None = None,
    refresh: bool = False,
) -> UpResult:
    """Deploy: ``pulumi up --yes --skip-preview``, then write the manifest (unless ``manifest_out`` is None)."""
    stack = open_stack(target, create=True)
    try:
        res = stack.up(on_output=on_output, message=message, refresh=refresh or None)
    except Exception as exc:
        raise _translate(exc, target, "up") from exc
    outputs = _outputs(res.outputs)
    manifest = path = None
    if manifest_out is not None:
        manifest = manifest_from_outputs(outputs, source=f"stack {target.stack!r}")
        path = write_manifest(manifest, manifest_out)
    return UpResult(target.stack, _summary(res.summary), outputs, manifest, path)


def preview(target: Target, *, on_output: OnOutput | None = None, refresh: bool = False) -> PreviewResult:
    """What ``up`` would change (creates the stack if it is new, like ``pulumi preview`` on a new stack)."""
    stack = open_stack(target, create=True)
    try:
        res = stack.preview(on_output=on_output, refresh=refresh or None)
    except Exception as exc:
        raise _translate(exc, target, "preview") from exc
    return PreviewResult(target.stack, {k: int(v) for k, v in (res.change_summary or {}).items()})


def destroy(
    target: Target, *, on_output: OnOutput | None = None, remove_stack: bool = False
) -> DestroyResult:
    """Delete the stack's resources. Buckets and keys created with ``retain_on_delete`` stay in the account."""
    stack = open_stack(target, create=False)
    try:
        res = stack.destroy(on_output=on_output)
        if remove_stack:
            stack.workspace.remove_stack(target.stack)
    except Exception as exc:
        raise _translate(exc, target, "destroy") from exc
    return DestroyResult(target.stack, _summary(res.summary), remove_stack)


def outputs(target: Target) -> list[OutputValue]:
    """The stack's outputs, each marked secret or not (callers mask secrets: see ``OutputValue.shown``)."""
    stack = open_stack(target, create=False)
    try:
        return _outputs(stack.outputs())
    except Exception as exc:
        raise _translate(exc, target, "stack output") from exc

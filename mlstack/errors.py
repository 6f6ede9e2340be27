"""The mlstack exception family.

Every error carries a one-line headline (``str(err)``) and, where there is one, a ``fix``: the command or
the concrete step that resolves it. The CLI prints both and never a traceback (unless ``--debug``).
``exit_code`` follows the CLI convention: 2 for usage and configuration errors, 1 for failed operations.
"""

from __future__ import annotations


class MlstackError(Exception):
    """Base class of every error mlstack raises on purpose."""

    exit_code: int = 1
    headline: str = "mlstack error"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "message": self.message, "fix": self.fix}


class UsageError(MlstackError):
    """A command or function was called with arguments that cannot work."""

    exit_code = 2
    headline = "usage error"


class ConfigError(MlstackError):
    """Configuration (stack config, environment) is invalid."""

    exit_code = 2
    headline = "configuration error"


class ManifestError(ConfigError):
    """The stack manifest is missing, unreadable or invalid.

    ``problems`` lists every problem found as ``(json_path, value, allowed)``.
    """

    headline = "invalid stack manifest"

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        problems: list[tuple[str, object, str]] | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.problems = problems or []
        self.source = source

    def to_dict(self) -> dict[str, object]:
        d = super().to_dict()
        d["source"] = self.source
        d["problems"] = [{"path": p, "value": repr(v), "allowed": a} for p, v, a in self.problems]
        return d


class MissingExtraError(MlstackError):
    """An optional dependency is not installed."""

    exit_code = 1
    headline = "missing optional dependency"

    def __init__(self, module: str, extra: str, feature: str) -> None:
        # one line that names the extra and the command installing it; the fix repeats it for --json.
        # ``module``/``extra`` may list several, comma-separated: "pulumi,boto3" / "components,aws"
        mods = [m.strip() for m in module.split(",") if m.strip()]
        what = (
            f"the Python package '{mods[0]}' is not installed"
            if len(mods) == 1
            else f"the Python packages {', '.join(repr(m) for m in mods)} are not installed"
        )
        super().__init__(
            f"{feature} needs mlstack[{extra}] ({what}): pip install 'mlstack[{extra}]'",
            fix=f"pip install 'mlstack[{extra}]'",
        )
        self.module = module
        self.extra = extra
        self.feature = feature


class NotFoundError(MlstackError):
    """A named thing (artifact, version, alias, table, step) does not exist."""

    headline = "not found"


class ArtifactNotFound(NotFoundError):
    headline = "artifact not found"


class RunNotFound(NotFoundError):
    """No run record with that id (or no run at all for ``latest``)."""

    headline = "run not found"


class IntegrityError(MlstackError):
    """Stored bytes do not match their recorded digest: never returned silently."""

    headline = "integrity check failed"


class ConflictError(MlstackError):
    """A compare-and-swap lost too many times, or a write raced with another writer."""

    headline = "conflict"


class BackendError(MlstackError):
    """A remote system (S3, a warehouse, Kubernetes, Argo) refused or failed a request."""

    headline = "backend error"


class CredentialsError(BackendError):
    """Credentials are missing or were rejected by the remote system."""

    headline = "credentials rejected"


class PipelineError(MlstackError):
    """A pipeline definition is invalid or one of its steps failed."""

    headline = "pipeline failed"


class DataError(MlstackError):
    """A query failed: bad SQL, a missing table, a type mismatch."""

    headline = "data error"


def require(module: str, extra: str, feature: str):
    """Import an optional dependency or raise MissingExtraError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # only the top module missing is an extra problem
        top = module.split(".")[0]
        if exc.name and exc.name.split(".")[0] == top:
            raise MissingExtraError(top, extra, feature) from exc
        raise


def require_extras(feature: str, needs: dict[str, str]) -> None:
    """Check several optional dependencies at once (``{module: extra}``, without importing them): one
    MissingExtraError naming every extra that is missing."""
    import importlib.util

    missing: dict[str, str] = {}
    for module, extra in needs.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing[module.split(".")[0]] = extra
    if missing:
        extras = ",".join(dict.fromkeys(missing.values()))
        raise MissingExtraError(",".join(missing), extras, feature)

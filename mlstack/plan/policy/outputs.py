"""Stack-output rules: no secret in plain text, and a ``manifest`` output that is a valid, secret-free manifest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlstack.plan.mock_runtime import Resource, is_secret
from mlstack.plan.policy.engine import Context, rule

SECRET_KEY = re.compile(
    r"(password|passwd|secret|private[_-]?key|token|kubeconfig|credential|access[_-]?key|client[_-]?secret)",
    re.IGNORECASE,
)


def _plain_secrets(value: Any, path: str) -> Iterator[str]:
    if is_secret(value):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}.{k}" if path else str(k)
            if (
                SECRET_KEY.search(str(k))
                and not is_secret(v)
                and v not in (None, "", [], {})
                and not isinstance(v, dict | list | bool)
            ):
                yield p
            else:
                yield from _plain_secrets(v, p)
    elif isinstance(value, list):
        for n, v in enumerate(value):
            yield from _plain_secrets(v, f"{path}[{n}]")


@rule(
    "OUT-001",
    "high",
    "outputs",
    "secret exported as a plain stack output",
    "wrap it with pulumi.Output.secret(...) (or export only its name); secrets belong in a secret store",
)
def _plain(r: Resource | None, ctx: Context) -> Iterator[str]:
    for key in _plain_secrets(ctx.recording.stack_outputs, ""):
        yield f"stack output {key} looks like a secret and is exported in plain text"


@rule(
    "OUT-002",
    "high",
    "outputs",
    "manifest output invalid or holding a secret",
    "export the manifest MLStack builds (names and endpoints only); keep credentials out of it",
)
def _manifest(r: Resource | None, ctx: Context) -> Iterator[str]:
    m = ctx.recording.stack_outputs.get("manifest")
    if m is None:
        return
    if is_secret(m):
        yield "stack output manifest is a secret: jobs cannot read it from the ConfigMap/outputs, so it must hold none"
        return
    from mlstack import manifest
    from mlstack.errors import ManifestError

    try:
        manifest.from_dict(m, source="stack output manifest")
    except ManifestError as exc:
        problems = "; ".join(f"{p}: {a}" for p, _, a in exc.problems) or exc.message
        yield f"stack output manifest is not a valid manifest: {problems}"

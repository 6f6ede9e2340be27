"""MLStack's args validated once into frozen config: a pure function, no Pulumi calls.

:func:`resolve_mlstack` reads the arguments exactly once, collects every problem (each naming the key, the
value and the fix) and either raises one :class:`InputPropertiesError` or returns an :class:`MLStackConfig`
with every default filled. The four layers are checked against the Protocols in :mod:`components._contracts`
(any object with the members fits; from another Pulumi language they arrive as resource references that the
provider resolves to the live components first, components/provider.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._args import Problems
from ._contracts import GrantTarget, Layer, WriteGrantable, missing_members

if TYPE_CHECKING:
    from .stack import MLStackArgs

REQUIRED = ("data", "compute", "orchestrator", "artifacts")
_FLAGS = ("grant", "publish_configmap", "export_manifest", "data_credentials")


@dataclass(frozen=True)
class MLStackConfig:
    """MLStack's args, validated, every default filled."""

    data: Layer
    compute: Layer
    """With ``grant``, also a :class:`~components._contracts.GrantTarget` (has ``jobs_role``)."""
    orchestrator: Layer
    artifacts: Layer
    """With ``grant``, also :class:`~components._contracts.WriteGrantable`."""
    project: str
    stack: str
    grant: bool = True
    publish_configmap: bool = True
    export_manifest: bool = True
    data_credentials: bool = True


def _lacks(obj: object, protocol: type) -> str:
    return "; this object lacks " + ", ".join(missing_members(obj, protocol))


def resolve_mlstack(
    name: str, args: MLStackArgs | Mapping[str, Any] | None, *, project: str, stack: str
) -> MLStackConfig:
    """MLStack's args as a frozen :class:`MLStackConfig`; every problem reported in one error.

    ``project`` / ``stack`` are the Pulumi project and stack names, the manifest's defaults."""
    from .stack import MLStackArgs

    a: Mapping[str, Any] = dict(args or {})
    p = Problems(f"MLStack {name!r}")
    p.unknown_keys(a, MLStackArgs)
    layers: dict[str, Any] = {}
    for key in REQUIRED:
        v = layers[key] = a.get(key)
        if v is None:
            p.add(key, None, f"required: the {key} layer component")
        elif not isinstance(v, Layer):
            p.add(
                key,
                type(v).__name__,
                "a component with a manifest_section (an mlstack component)" + _lacks(v, Layer),
            )
    flags: dict[str, Any] = {}
    for key in _FLAGS:
        flags[key] = a.get(key, True)
        if not isinstance(flags[key], bool):
            p.add(key, a[key], "True or False")
    compute, art = layers["compute"], layers["artifacts"]
    if flags["grant"] is not False:
        if isinstance(compute, Layer) and not isinstance(compute, GrantTarget):
            p.add(
                "compute",
                type(compute).__name__,
                "a compute component with a jobs_role to grant to (or grant=False)",
            )
        if isinstance(art, Layer) and not isinstance(art, WriteGrantable):
            p.add(
                "artifacts",
                type(art).__name__,
                "an artifact store with grant_write (S3ArtifactStore), or grant=False"
                + _lacks(art, WriteGrantable),
            )
    names = {"project": project, "stack": stack}
    for key in names:
        v = a.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            p.add(key, v, "a non-empty string")
        elif v:
            names[key] = v
    p.raise_if_any()
    return MLStackConfig(
        data=layers["data"],
        compute=layers["compute"],
        orchestrator=layers["orchestrator"],
        artifacts=layers["artifacts"],
        project=names["project"],
        stack=names["stack"],
        grant=flags["grant"],
        publish_configmap=flags["publish_configmap"],
        export_manifest=flags["export_manifest"],
        data_credentials=flags["data_credentials"],
    )

"""The local stack: the embedded default every layer falls back to.

Artifacts in a folder, data in a DuckDB file plus a folder of Delta tables, compute as local processes and a
local runner as orchestrator, all in one folder: ``--home``, else ``MLSTACK_HOME``, else the ``.mlstack``
folder found in the current folder or a parent (the way git finds a repository), else a new ``./.mlstack``.
Needs no credentials.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlstack import manifest as _manifest

MANIFEST_NAME = "mlstack.json"


@dataclass
class InitResult:
    home: Path
    manifest_path: Path
    manifest: _manifest.Manifest
    created: list[str] = field(default_factory=list)
    # how home was chosen: flag, home-env, here, parent or new (see manifest.locate_home)
    origin: str = "flag"

    @property
    def changed(self) -> bool:
        return bool(self.created)

    def describe(self) -> str:
        """Which local stack this is and why, in a few words, for the line commands print."""
        how = {
            "flag": "given with --home",
            "home-env": "from $MLSTACK_HOME",
            "here": "found in this folder",
            "parent": "found in a parent folder",
            "new": "new: none found in this folder or a parent",
        }.get(self.origin, self.origin)
        return f"{self.home} ({how})"


def init(home_dir: str | os.PathLike[str] | None = None, *, project: str = "local") -> InitResult:
    """Create the local stack's folders and write its manifest. Running it again changes nothing."""
    h, origin = _manifest.locate_home(home_dir)
    if origin in ("here", "parent") and not h.is_dir():  # beside a found mlstack.json: still a new folder
        origin = "new"
    m = _manifest.local_default(h, project=project)
    created: list[str] = []
    dirs = [h, Path(m.artifacts.root)]  # type: ignore[union-attr]
    data = m.data
    assert isinstance(data, _manifest.LocalData)
    dirs.append(Path(data.path).parent)
    if data.lake_root:
        dirs.append(Path(data.lake_root))
    for d in dirs:
        if not d.is_dir():
            d.mkdir(parents=True, exist_ok=True)
            created.append(str(d))
    path = h / MANIFEST_NAME
    text = m.to_json() + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        created.append(str(path))
    return InitResult(h, path, m, created, origin)


def describe_layers(m: _manifest.Manifest) -> list[tuple[str, str, str]]:
    """(layer, kind, where) for each of the four layers, for humans."""
    rows: list[tuple[str, str, str]] = []
    a = m.artifacts
    rows.append(
        (
            "artifacts",
            a.kind,
            a.root
            if isinstance(a, _manifest.LocalArtifacts)
            else f"s3://{a.bucket}/{a.prefix}" + (f" via {a.endpoint_url}" if a.endpoint_url else ""),
        )
    )
    d = m.data
    if isinstance(d, _manifest.LocalData):
        where = f"DuckDB {d.path}" + (f", Delta tables in {d.lake_root}" if d.lake_root else "")
    elif isinstance(d, _manifest.SnowflakeData):
        where = f"{d.account} {d.database}.{d.schema_} on warehouse {d.warehouse} as {d.role}"
    elif isinstance(d, _manifest.DatabricksData):
        where = f"{d.host} {d.catalog}.{d.schema_} on SQL warehouse {d.warehouse_id}"
    else:
        where = f"Glue {d.database}, Athena {d.workgroup} over {d.location}"
    rows.append(("data", d.kind, where))
    c = m.compute
    rows.append(
        (
            "compute",
            c.kind,
            f"local processes (up to {c.max_parallel or os.cpu_count()} in parallel)"
            if isinstance(c, _manifest.LocalCompute)
            else f"EKS {c.cluster_name} ({c.region}), namespace {c.namespace}, GPUs as {c.gpu.resource}",
        )
    )
    o = m.orchestrator
    rows.append(
        (
            "orchestrator",
            o.kind,
            "local runner (subprocesses in dependency order)"
            if isinstance(o, _manifest.LocalOrchestrator)
            else f"Argo Workflows in {o.namespace}" + (f" at {o.server_url}" if o.server_url else ""),
        )
    )
    return rows


def manifest_json(m: _manifest.Manifest) -> str:
    return json.dumps(m.to_dict(), indent=2)

"""DatabricksDataLayer's args validated once into frozen config: a pure function, no Pulumi calls.

:func:`resolve_databricks` reads the arguments exactly once, collects every problem (each naming the key, the
value and the fix) and either raises one :class:`InputPropertiesError` or returns a :class:`DatabricksConfig`
with every default filled (names from the component name). The component builds only from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .._args import Problems, choice, is_whole

if TYPE_CHECKING:
    from .databricks import DatabricksDataLayerArgs


class SqlWarehouseSize(StrEnum):
    """A Databricks SQL warehouse cluster size."""

    XXSMALL = "2X-Small"
    XSMALL = "X-Small"
    SMALL = "Small"
    MEDIUM = "Medium"
    LARGE = "Large"
    XLARGE = "X-Large"
    XXLARGE = "2X-Large"
    XXXLARGE = "3X-Large"
    X4LARGE = "4X-Large"


class Access(StrEnum):
    """One of the layer's two fixed grant sets."""

    READER = "reader"
    WRITER = "writer"


SQL_WAREHOUSE_SIZES = tuple(m.value for m in SqlWarehouseSize)
# GPU ML runtimes, e.g. "15.4.x-gpu-ml-scala2.12" (and LTS variants)
GPU_ML_RUNTIME_REGEX = r"^[0-9]+\.[0-9]+\.x-gpu-ml-scala2\.[0-9]+$"
DEFAULT_GPU_NODE_TYPES = ["g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g6.xlarge", "g6.2xlarge"]
_UC_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,254}$")
_HOST_RE = re.compile(r"^https://[A-Za-z0-9.\-]+(:\d+)?/?$")
_PROFILE_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")


@dataclass(frozen=True)
class DatabricksConfig:
    """DatabricksDataLayer's args, validated, every default filled."""

    host: str
    """The workspace URL without a trailing ``/`` (from ``host`` or the ``databricks:host`` config)."""
    base: str
    """The component name lowercased, other characters turned into ``_``: the names' default stem."""
    catalog_name: str
    catalog_storage_root: str | None
    schema_name: str
    volume_name: str
    warehouse_name: str
    warehouse_size: SqlWarehouseSize
    warehouse_auto_stop_minutes: int
    warehouse_serverless: bool
    warehouse_max_clusters: int
    gpu_node_types: tuple[str, ...]
    gpu_runtimes: tuple[str, ...] | None
    """None: any GPU ML runtime (a regex rule)."""
    max_workers: int
    auto_termination_minutes: int
    max_auto_termination_minutes: int
    max_clusters_per_user: int
    service_principal_name: str
    job_access: Access
    reader_groups: tuple[str, ...]
    writer_groups: tuple[str, ...]
    create_oauth_secret: bool
    profile: str | None
    retain_on_delete: bool
    comment: str


def base_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def resolve_databricks(
    name: str, args: DatabricksDataLayerArgs | Mapping[str, Any] | None, *, config_host: str | None = None
) -> DatabricksConfig:
    """DatabricksDataLayer's args as a frozen :class:`DatabricksConfig`; every problem reported in one error.

    ``config_host`` is the ``databricks:host`` provider config, the host's default."""
    from .databricks import DatabricksDataLayerArgs

    a: Mapping[str, Any] = dict(args or {})
    p = Problems(f"DatabricksDataLayer {name!r}")
    p.unknown_keys(a, DatabricksDataLayerArgs)
    base = base_name(name)

    host = a.get("host") or config_host
    if not host:
        p.add(
            "host", None, "required: pass host='https://<workspace>' or set the Pulumi config databricks:host"
        )
    elif not isinstance(host, str) or not _HOST_RE.match(host):
        p.add("host", host, "the workspace URL, https://<name>.cloud.databricks.com (no path)")

    for key in ("catalog_name", "schema_name", "volume_name"):
        val = a.get(key)
        if val is not None and (not isinstance(val, str) or not _UC_NAME_RE.match(val)):
            p.add(key, val, "letters, digits, '_' and '-' (no dots, spaces or slashes)")
    if "catalog_name" not in a and not _UC_NAME_RE.match(base):
        p.add("catalog_name", None, f"the default from the component name {name!r} is not valid: pass one")
    root = a.get("catalog_storage_root")
    if root is not None and (not isinstance(root, str) or not re.match(r"^(s3|abfss|gs)://", root)):
        p.add("catalog_storage_root", root, "a cloud storage URL (s3://, abfss:// or gs://)")

    size = choice(
        p, "warehouse_size", a.get("warehouse_size", "2X-Small"), SqlWarehouseSize, SqlWarehouseSize.XXSMALL
    )
    serverless = a.get("warehouse_serverless", True)
    if not isinstance(serverless, bool):
        p.add("warehouse_serverless", serverless, "True or False")
    stop = a.get("warehouse_auto_stop_minutes", 10)
    low_stop = 1 if serverless is True else 10
    if not is_whole(stop) or not low_stop <= stop <= 1440:
        p.add(
            "warehouse_auto_stop_minutes",
            stop,
            f"a whole number from {low_stop} to 1440 (0 would never stop, which mlstack does not allow)",
        )

    ints: dict[str, Any] = {}
    for key, low, high, default in (
        ("warehouse_max_clusters", 1, 40, 1),
        ("max_workers", 0, 1000, 4),
        ("auto_termination_minutes", 10, 10000, 30),
        ("max_auto_termination_minutes", 10, 10000, 120),
        ("max_clusters_per_user", 1, 1000, 2),
    ):
        val = ints[key] = a.get(key, default)
        if not is_whole(val) or not low <= val <= high:
            p.add(key, val, f"a whole number from {low} to {high}")
    at, mx = ints["auto_termination_minutes"], ints["max_auto_termination_minutes"]
    if is_whole(at) and is_whole(mx) and at > mx:
        p.add("auto_termination_minutes", at, f"at most max_auto_termination_minutes ({mx})")

    nodes = a.get("gpu_node_types", DEFAULT_GPU_NODE_TYPES)
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) and n for n in nodes):
        p.add("gpu_node_types", nodes, "a non-empty list of GPU node type ids, e.g. ['g5.xlarge']")
        nodes = DEFAULT_GPU_NODE_TYPES
    runtimes = a.get("gpu_runtimes")
    if runtimes is not None:
        if not isinstance(runtimes, list) or not runtimes:
            p.add("gpu_runtimes", runtimes, "a non-empty list of runtime versions")
        else:
            for i, r in enumerate(runtimes):
                if not isinstance(r, str) or not re.match(GPU_ML_RUNTIME_REGEX, r):
                    p.add(f"gpu_runtimes[{i}]", r, "a GPU ML runtime such as '15.4.x-gpu-ml-scala2.12'")

    job_access = choice(
        p, "job_access", a.get("job_access", "writer"), Access, Access.WRITER, "'reader' or 'writer'"
    )
    groups: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for key in ("reader_groups", "writer_groups"):
        listed = a.get(key, [])
        groups[key] = ()
        if not isinstance(listed, list) or not all(isinstance(g, str) and g.strip() for g in listed):
            p.add(key, listed, "a list of existing account group names")
            continue
        for g in listed:
            if g in seen:
                p.add(key, g, f"already listed in {seen[g]}; a group gets one grant set")
            seen[g] = key
        groups[key] = tuple(listed)
    flags = {"create_oauth_secret": False, "retain_on_delete": True}
    for key, default in flags.items():
        flags[key] = a.get(key, default)
        if not isinstance(flags[key], bool):
            p.add(key, a[key], "True or False")
    prof = a.get("profile")
    if prof is not None and (not isinstance(prof, str) or not _PROFILE_RE.match(prof)):
        p.add("profile", prof, "a ~/.databrickscfg section name")
    texts = {
        "service_principal_name": f"{base}-jobs",
        "warehouse_name": f"{base}-sql",
        "comment": f"managed by mlstack ({name})",
    }
    for key in texts:
        if key in a:
            if not isinstance(a[key], str) or not a[key].strip():
                p.add(key, a[key], "a non-empty string")
            texts[key] = a[key]
    p.raise_if_any()
    return DatabricksConfig(
        host=str(host).rstrip("/"),
        base=base,
        catalog_name=a.get("catalog_name", base),
        catalog_storage_root=root,
        schema_name=a.get("schema_name", "ml"),
        volume_name=a.get("volume_name", "files"),
        warehouse_name=texts["warehouse_name"],
        warehouse_size=size,
        warehouse_auto_stop_minutes=stop,
        warehouse_serverless=serverless,
        warehouse_max_clusters=ints["warehouse_max_clusters"],
        gpu_node_types=tuple(nodes),
        gpu_runtimes=tuple(runtimes) if runtimes is not None else None,
        max_workers=ints["max_workers"],
        auto_termination_minutes=at,
        max_auto_termination_minutes=mx,
        max_clusters_per_user=ints["max_clusters_per_user"],
        service_principal_name=texts["service_principal_name"],
        job_access=job_access,
        reader_groups=groups["reader_groups"],
        writer_groups=groups["writer_groups"],
        create_oauth_secret=flags["create_oauth_secret"],
        profile=prof,
        retain_on_delete=flags["retain_on_delete"],
        comment=texts["comment"],
    )

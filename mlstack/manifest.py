"""The stack manifest: the one contract between the Pulumi components and the jobs.

Components export it (one section per layer); jobs read it. It holds names and endpoints, never secrets:
credentials come from each system's own configuration (the AWS credential chain, Snowflake's
connections.toml, ~/.databrickscfg, kubeconfig).

Resolution, first match wins: an explicit path (``--manifest PATH``) > ``MLSTACK_MANIFEST`` (a path, or
inline JSON starting with ``{``) > the nearest ``mlstack.json`` or ``.mlstack/`` in the current folder or a
parent, found the way git finds a repository (:func:`discover`) > the local stack in ``MLSTACK_HOME``, else
a new one in ``./.mlstack``. With ``MLSTACK_HOME`` set, only ``mlstack.json`` files are looked for.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlstack import _redact
from mlstack.errors import ManifestError

SCHEMA_VERSION = 1
ENV_VAR = "MLSTACK_MANIFEST"
HOME_VAR = "MLSTACK_HOME"
DEFAULT_FILE = "mlstack.json"
DEFAULT_HOME = ".mlstack"

# Where each kind of credential belongs instead of the manifest.
CREDENTIAL_HOMES = (
    "credentials never go in the manifest: AWS keys come from the AWS credential chain "
    "(environment, ~/.aws/credentials, IRSA), Snowflake keys from connections.toml (connection_name), "
    "Databricks tokens from ~/.databrickscfg (profile), Kubernetes from kubeconfig"
)
#: a manifest file is a few KiB; reading stops here (a device or a runaway file must not fill memory)
MAX_MANIFEST_BYTES = 1 << 20
#: error messages show at most this much of a value (a 60 MB value is not echoed)
PREVIEW_CHARS = 60


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


_Name = Annotated[str, Field(min_length=1, max_length=255)]
# S3 bucket naming rules (3-63 chars, lowercase letters, digits, dots and hyphens).
_Bucket = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
_Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")]
_Url = Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
# a Snowflake stage: NAME or DB.SCHEMA.NAME, each part an unquoted identifier (stages are named, not quoted)
_StageName = Annotated[
    str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,254}(\.[A-Za-z_][A-Za-z0-9_$]{0,254}){0,2}$")
]
# a Unity Catalog volume: NAME or CATALOG.SCHEMA.NAME (letters, digits, _ and -)
_VolumeName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,254}(\.[A-Za-z0-9_][A-Za-z0-9_\-]{0,254}){0,2}$")
]


# ---------------------------------------------------------------- artifacts
class LocalArtifacts(_Section):
    """Artifacts in a folder on this machine."""

    kind: Literal["local"] = "local"
    root: _Name = Field(description="folder holding blobs/, artifacts/ and aliases/")


class S3Artifacts(_Section):
    """Artifacts in an S3 bucket (or an S3-compatible server via endpoint_url)."""

    kind: Literal["s3"] = "s3"
    bucket: _Bucket = Field(description="bucket name")
    prefix: str = Field("", description="key prefix inside the bucket ('' = the bucket root)")
    region: _Region = Field(description="AWS region of the bucket, e.g. us-east-1")
    endpoint_url: _Url | None = Field(None, description="S3-compatible endpoint; default: AWS")
    kms_key_arn: str | None = Field(
        None, description="KMS key the bucket encrypts with; default: the bucket's"
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if ".." in v.split("/"):
            raise ValueError("prefix must not contain '..'")
        return v


# ---------------------------------------------------------------- data
class LocalData(_Section):
    """DuckDB file plus a folder of Delta tables."""

    kind: Literal["local"] = "local"
    path: _Name = Field(description="DuckDB database file")
    lake_root: str | None = Field(None, description="folder of Delta tables; default: <path's folder>/lake")


class SnowflakeData(_Section):
    kind: Literal["snowflake"] = "snowflake"
    account: _Name = Field(description="account identifier, e.g. myorg-myaccount")
    warehouse: _Name
    database: _Name
    schema_: _Name = Field(alias="schema")
    role: _Name
    user: _Name
    connection_name: str | None = Field(None, description="connections.toml entry holding the credentials")
    stage: _StageName | None = Field(
        None,
        description="internal stage bulk writes upload Parquet files to (a name in database.schema, or "
        "db.schema.stage); default: the table's own stage (@%table), which needs ownership of the table",
    )


class DatabricksData(_Section):
    kind: Literal["databricks"] = "databricks"
    host: _Url = Field(description="workspace URL, e.g. https://dbc-123.cloud.databricks.com")
    warehouse_id: _Name
    catalog: _Name
    schema_: _Name = Field(alias="schema")
    profile: str | None = Field(None, description="~/.databrickscfg profile holding the credentials")
    volume: _VolumeName | None = Field(
        None,
        description="Unity Catalog volume bulk writes upload Parquet files to (a name in catalog.schema, or "
        "catalog.schema.volume); default: none (writes go as INSERT statements, slow for big tables)",
    )


class LakehouseData(_Section):
    kind: Literal["lakehouse"] = "lakehouse"
    database: _Name = Field(description="Glue database")
    workgroup: _Name = Field(description="Athena workgroup")
    location: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")]
    region: _Region


# ---------------------------------------------------------------- compute
class Toleration(_Section):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class GpuScheduling(_Section):
    resource: _Name = Field("nvidia.com/gpu", description="extended resource a GPU request names")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)


class LocalCompute(_Section):
    kind: Literal["local"] = "local"
    max_parallel: int | None = Field(None, ge=1, description="parallel steps; default: the number of cores")


class KubernetesCompute(_Section):
    kind: Literal["kubernetes"] = "kubernetes"
    cluster_name: _Name
    region: _Region
    namespace: _Name
    service_account: _Name
    gpu: GpuScheduling = Field(default_factory=lambda: GpuScheduling())
    image: str | None = Field(None, description="default container image for pipeline steps")


# ---------------------------------------------------------------- orchestrator
class LocalOrchestrator(_Section):
    kind: Literal["local"] = "local"


class ArgoOrchestrator(_Section):
    kind: Literal["argo"] = "argo"
    namespace: _Name
    service_account: _Name
    server_url: _Url | None = None
    configmap: str | None = Field(None, description="ConfigMap holding this manifest in the jobs namespace")


ArtifactsSection = Annotated[LocalArtifacts | S3Artifacts, Field(discriminator="kind")]
DataSection = Annotated[
    LocalData | SnowflakeData | DatabricksData | LakehouseData, Field(discriminator="kind")
]
ComputeSection = Annotated[LocalCompute | KubernetesCompute, Field(discriminator="kind")]
OrchestratorSection = Annotated[LocalOrchestrator | ArgoOrchestrator, Field(discriminator="kind")]

LAYERS: dict[str, tuple[type[_Section], ...]] = {
    "artifacts": (LocalArtifacts, S3Artifacts),
    "data": (LocalData, SnowflakeData, DatabricksData, LakehouseData),
    "compute": (LocalCompute, KubernetesCompute),
    "orchestrator": (LocalOrchestrator, ArgoOrchestrator),
}


class Manifest(_Section):
    """A whole stack: which system serves each of the four layers, by name and endpoint."""

    version: Literal[1] = Field(1, description="schema version")
    project: _Name
    stack: _Name
    artifacts: ArtifactsSection
    data: DataSection
    compute: ComputeSection
    orchestrator: OrchestratorSection

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


@dataclass(frozen=True)
class Loaded:
    """A manifest and where it came from.

    ``source_kind``: flag, env, env-inline, file (an ``mlstack.json`` found by :func:`discover`) or default
    (the local stack under ``source``). ``origin`` says how a file or local stack was found: ``here`` (the
    current folder), ``parent`` (a parent folder), ``home-env`` ($MLSTACK_HOME) or ``new`` (none exists yet:
    a new local stack in the current folder).
    """

    manifest: Manifest
    source_kind: str
    source: str
    origin: str = "here"

    def describe(self) -> str:
        where = {
            "parent": " (found in a parent folder)",
            "home-env": f" (${HOME_VAR})",
            "new": " (none found here or above: a new local stack)",
        }.get(self.origin, "")
        return {
            "flag": f"--manifest {self.source}",
            "env": f"${ENV_VAR} (path {self.source})",
            "env-inline": f"${ENV_VAR} (inline JSON)",
            "file": f"{self.source}{where}",
            "default": f"the local stack in {self.source}{where}",
        }[self.source_kind]

    def note(self) -> str | None:
        """One line for stderr when the stack was not picked in the current folder: which one is used."""
        if self.origin == "parent":
            return f"stack: {self.describe()}"
        if self.origin == "new":
            return (
                f"stack: none in {Path.cwd()} or a parent folder; using a new local stack in {self.source} "
                f"(set ${HOME_VAR} or run from the folder holding your .mlstack/ to use another)"
            )
        return None


# ---------------------------------------------------------------- validation
def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else str(k)
            yield p, str(k), v
            yield from _walk(v, p)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


class _Shown:
    """A value as an error message shows it: its ``repr`` is the text given (a preview, or a placeholder)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_NOT_SHOWN = _Shown("<not shown>")


def _preview(value: Any) -> object:
    """What an error may echo of a value: never a credential, never more than PREVIEW_CHARS characters."""
    if isinstance(value, str):
        # redact a generous head, then cut: a secret that starts in the preview is masked whole
        text = _redact.redact(value[: PREVIEW_CHARS * 4])
        if len(value) > PREVIEW_CHARS:
            return _Shown(repr(text[: PREVIEW_CHARS - 3] + "...") + f" ({len(value)} characters)")
        return text if text == value else _Shown(repr(text))
    return value


def _secret_problems(data: Any) -> list[tuple[str, object, str]]:
    problems: list[tuple[str, object, str]] = []
    for path, key, value in _walk(data):
        # tolerations/node selectors carry Kubernetes label keys, not credentials
        if ".node_selector." in path or ".tolerations[" in path:
            continue
        if _redact.is_secret_key(key):
            problems.append((path, _Shown("<redacted>"), CREDENTIAL_HOMES))
        elif isinstance(value, str) and _redact.url_has_userinfo(value):
            problems.append(
                (
                    path,
                    _Shown(repr(_redact.redact(value)[:PREVIEW_CHARS])),
                    "a URL with a user or password in it; " + CREDENTIAL_HOMES,
                )
            )
    return problems


def _section_model(layer: str, kind: Any) -> type[_Section] | None:
    for model in LAYERS.get(layer, ()):
        if model.model_fields["kind"].default == kind:
            return model
    return None


def _fields_text(model: type[BaseModel]) -> str:
    names = [f.alias or n for n, f in model.model_fields.items()]
    return ", ".join(names)


def _format_errors(exc: ValidationError, data: Any) -> list[tuple[str, object, str]]:
    problems: list[tuple[str, object, str]] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        etype = err["type"]
        # pydantic puts the discriminator tag in the location (artifacts.s3.bucket): drop it
        model: type[BaseModel] | None = Manifest
        if loc and loc[0] in LAYERS:
            section = data.get(loc[0]) if isinstance(data, Mapping) else None
            kind = section.get("kind") if isinstance(section, Mapping) else None
            if len(loc) > 1 and loc[1] == kind:
                del loc[1]
            model = _section_model(str(loc[0]), kind)
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
        value = err.get("input")
        if etype == "missing":
            field_name = str(loc[-1]) if loc else ""
            desc = None
            if model is not None and len(loc) == (2 if model is not Manifest else 1):
                for fname, f in model.model_fields.items():
                    if field_name in (fname, f.alias):
                        desc = f.description
            allowed = "required" + (f" ({desc})" if desc else "") + "; add it"
            value = None
        elif etype == "extra_forbidden":
            where = model if len(loc) == 2 else None
            value = _NOT_SHOWN  # an unknown key's value may be anything, a credential included
            allowed = "unknown key; allowed keys: " + (
                _fields_text(where) if where else "see `mlstack manifest schema`"
            )
        elif etype in ("union_tag_invalid", "union_tag_not_found"):
            layer = str(loc[0]) if loc else "?"
            path = f"{layer}.kind"
            value = (
                data.get(layer, {}).get("kind")
                if isinstance(data, Mapping) and isinstance(data.get(layer), Mapping)
                else value
            )
            kinds = [m.model_fields["kind"].default for m in LAYERS.get(layer, ())]
            allowed = "one of: " + ", ".join(repr(k) for k in kinds)
        elif etype == "literal_error":
            allowed = "one of: " + str((err.get("ctx") or {}).get("expected", ""))
        else:
            allowed = err.get("msg", "")
        if isinstance(value, Mapping | list) and etype != "missing":
            value = type(value).__name__
        problems.append((path or "(top level)", _preview(value), allowed))
    return problems


def _raise(problems: list[tuple[str, object, str]], source: str | None) -> None:
    lines = []
    for path, value, allowed in problems:
        shown = "missing" if value is None else repr(value)
        lines.append(f"  {path}: got {shown}; {allowed}")
    where = f" ({source})" if source else ""
    head = f"invalid stack manifest{where}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
    raise ManifestError(
        head + "\n" + "\n".join(lines),
        fix="correct the keys above; `mlstack manifest schema` prints every allowed key",
        problems=problems,
        source=source,
    )


def from_dict(data: Any, *, source: str | None = None, base_dir: Path | None = None) -> Manifest:
    """Validate a parsed manifest. Raises ManifestError naming every bad path, value and what is allowed."""
    if not isinstance(data, Mapping):
        _raise(
            [
                (
                    "(top level)",
                    type(data).__name__,
                    "a JSON object with version, project, stack and "
                    "the sections artifacts, data, compute, orchestrator",
                )
            ],
            source,
        )
    secrets = _secret_problems(data)
    if secrets:
        _raise(secrets, source)
    try:
        manifest = Manifest.model_validate(dict(data))
    except ValidationError as exc:
        _raise(_format_errors(exc, data), source)
    except (TypeError, ValueError, RecursionError) as exc:  # pathological input pydantic did not wrap
        _raise([("(top level)", type(data).__name__, str(exc))], source)
    return _absolutize(manifest, base_dir) if base_dir else manifest


class _Object(dict):  # type: ignore[type-arg]
    """A parsed JSON object that remembers the keys it held more than once."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _duplicate_problems(data: Any, path: str = "") -> list[tuple[str, object, str]]:
    """Every key given twice in one JSON object: JSON parsers keep the last, which silently wins."""
    problems: list[tuple[str, object, str]] = []
    if isinstance(data, _Object):
        for key in data.duplicates:
            where = f"{path}.{key}" if path else key
            problems.append(
                (
                    where,
                    _NOT_SHOWN,
                    "key given more than once in the same object; keep one (the last would win)",
                )
            )
        for key, value in data.items():
            problems += _duplicate_problems(value, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems += _duplicate_problems(value, f"{path}[{i}]")
    return problems


def loads(text: str, *, source: str | None = None, base_dir: Path | None = None) -> Manifest:
    """Parse and validate manifest JSON text (a key given twice in one object is an error)."""
    try:
        data = json.loads(text, object_pairs_hook=_object)
    except (json.JSONDecodeError, RecursionError) as exc:
        pos = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ManifestError(
            f"stack manifest{f' ({source})' if source else ''} is not valid JSON{pos}: {why}",
            fix="fix the JSON syntax (a trailing comma or a missing quote is the usual cause)",
            problems=[("(top level)", _Shown(f"<{len(text)} characters>"), "valid JSON")],
            source=source,
        ) from None
    duplicates = _duplicate_problems(data)
    if duplicates:
        _raise(duplicates, source)
    return from_dict(data, source=source, base_dir=base_dir)


def read_file(path: Path, *, limit: int = MAX_MANIFEST_BYTES) -> str:
    """The text of a manifest file: a regular file only (a FIFO or a device is refused, never waited on),
    at most ``limit`` bytes, UTF-8."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then sees what was really opened
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ManifestError(
            f"stack manifest file {str(path)!r} does not exist",
            fix="pass an existing file, or run `mlstack init` to create the local stack",
            source=str(path),
        ) from None
    except OSError as exc:
        raise ManifestError(
            f"cannot read stack manifest {str(path)!r}: {exc.strerror or exc}", source=str(path)
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a folder"
                if stat.S_ISDIR(mode)
                else "a FIFO"
                if stat.S_ISFIFO(mode)
                else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file"
            )
            raise ManifestError(
                f"stack manifest {str(path)!r} is {kind}; a manifest is a JSON file",
                fix="pass the path of a mlstack.json file",
                source=str(path),
            )
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ManifestError(
            f"stack manifest {str(path)!r} is larger than {limit // 1024} KiB; a manifest holds names and "
            "endpoints and is a few KiB",
            fix="pass the stack's mlstack.json (written by `mlstack up` or `mlstack init`)",
            source=str(path),
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"stack manifest {str(path)!r} is not UTF-8 text (byte {exc.start})",
            fix="save the file as UTF-8 JSON",
            source=str(path),
        ) from None


def load_file(path: str | os.PathLike[str]) -> Manifest:
    p = Path(path).expanduser()
    text = read_file(p)
    return loads(text, source=str(p), base_dir=p.resolve().parent)


def _absolutize(m: Manifest, base: Path) -> Manifest:
    """Relative local paths in a manifest file are relative to that file, not to the caller's cwd."""
    updates: dict[str, Any] = {}
    if isinstance(m.artifacts, LocalArtifacts) and not Path(m.artifacts.root).expanduser().is_absolute():
        updates["artifacts"] = m.artifacts.model_copy(update={"root": str(base / m.artifacts.root)})
    if isinstance(m.data, LocalData):
        du: dict[str, Any] = {}
        if not Path(m.data.path).expanduser().is_absolute():
            du["path"] = str(base / m.data.path)
        if m.data.lake_root and not Path(m.data.lake_root).expanduser().is_absolute():
            du["lake_root"] = str(base / m.data.lake_root)
        if du:
            updates["data"] = m.data.model_copy(update=du)
    return m.model_copy(update=updates) if updates else m


def validate_section(layer: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one layer's section (as a component exports it) and return it in wire form."""
    if layer not in LAYERS:
        raise ManifestError(f"unknown layer {layer!r}", fix=f"use one of: {', '.join(LAYERS)}")
    secrets = _secret_problems({layer: section})
    if secrets:
        _raise(secrets, f"{layer} section")
    model = _section_model(layer, section.get("kind"))
    if model is None:
        kinds = ", ".join(repr(m.model_fields["kind"].default) for m in LAYERS[layer])
        _raise([(f"{layer}.kind", section.get("kind"), f"one of: {kinds}")], f"{layer} section")
    assert model is not None
    try:
        obj = model.model_validate(dict(section))
    except ValidationError as exc:
        probs = []
        for err in exc.errors(include_url=False):
            path = ".".join([layer, *(str(p) for p in err["loc"])])
            value = err.get("input") if err["type"] != "missing" else None
            if err["type"] == "extra_forbidden":
                value = _NOT_SHOWN
            elif isinstance(value, Mapping | list):
                value = type(value).__name__
            probs.append((path, _preview(value), err["msg"]))
        _raise(probs, f"{layer} section")
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------- finding the stack
CEILING_VAR = "MLSTACK_CEILING_DIRECTORIES"


def discover(
    start: str | os.PathLike[str] | None = None, *, files_only: bool = False
) -> tuple[Path, str] | None:
    """Find the stack the way git finds a repository: walk up from ``start`` (default: the current folder).

    The first folder holding ``mlstack.json`` (a deployed stack's manifest) or ``.mlstack/`` (a local
    stack; not looked for when ``files_only``) wins; ``mlstack.json`` first when a folder holds both.
    Returns ``(folder, "file" | "home")``, or None when nothing is found up to the filesystem root. Folders
    listed in ``$MLSTACK_CEILING_DIRECTORIES`` (``os.pathsep``-separated, like ``GIT_CEILING_DIRECTORIES``)
    are neither searched nor walked past.
    """
    here = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    ceilings = {
        Path(c).expanduser().resolve() for c in os.environ.get(CEILING_VAR, "").split(os.pathsep) if c.strip()
    }
    for folder in (here, *here.parents):
        if folder in ceilings and folder != here:
            return None
        if (folder / DEFAULT_FILE).is_file():
            return folder, "file"
        if not files_only and (folder / DEFAULT_HOME).is_dir():
            return folder, "home"
    return None


def locate_home(path: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> tuple[Path, str]:
    """The local stack's folder (absolute) and how it was chosen (``flag``, ``home-env``, ``here``,
    ``parent`` or ``new``): ``path``, else ``$MLSTACK_HOME``, else the ``.mlstack`` of the folder
    :func:`discover` finds (beside a found ``mlstack.json`` too), else ``./.mlstack``."""
    if path:
        return Path(path).expanduser().resolve(), "flag"
    if os.environ.get(HOME_VAR):
        return Path(os.environ[HOME_VAR]).expanduser().resolve(), "home-env"
    here = Path(cwd or Path.cwd()).resolve()
    found = discover(here)
    if found is None:
        return here / DEFAULT_HOME, "new"
    return found[0] / DEFAULT_HOME, "here" if found[0] == here else "parent"


def home(path: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> Path:
    """The local stack's folder: see :func:`locate_home`."""
    return locate_home(path, cwd=cwd)[0]


def local_default(home_dir: str | os.PathLike[str] | None = None, *, project: str = "local") -> Manifest:
    h = home(home_dir)
    return Manifest(
        version=1,
        project=project,
        stack="local",
        artifacts=LocalArtifacts(root=str(h / "artifacts")),
        data=LocalData(path=str(h / "data" / "warehouse.duckdb"), lake_root=str(h / "data" / "lake")),
        compute=LocalCompute(max_parallel=None),
        orchestrator=LocalOrchestrator(),
    )


# ---------------------------------------------------------------- resolution
def resolve(explicit: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> Loaded:
    """Find the manifest in force, first match wins:

    1. ``explicit`` (``--manifest PATH``);
    2. ``$MLSTACK_MANIFEST`` (a path, or inline JSON);
    3. the nearest ``mlstack.json`` or ``.mlstack/`` in ``cwd`` or a parent folder (:func:`discover`);
       with ``$MLSTACK_HOME`` set, only ``mlstack.json`` files are looked for: the local stack is there;
    4. the local stack in ``$MLSTACK_HOME``, else a new one in ``cwd/.mlstack``.
    """
    if explicit:
        return Loaded(load_file(explicit), "flag", str(Path(explicit).expanduser().resolve()))
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env.startswith("{"):
            return Loaded(loads(env, source=f"${ENV_VAR}", base_dir=cwd or Path.cwd()), "env-inline", ENV_VAR)
        return Loaded(load_file(env), "env", str(Path(env).expanduser().resolve()))
    here = Path(cwd or Path.cwd()).resolve()
    home_env = bool(os.environ.get(HOME_VAR))
    found = discover(here, files_only=home_env)
    if found is not None:
        folder, kind = found
        origin = "here" if folder == here else "parent"
        if kind == "file":
            candidate = folder / DEFAULT_FILE
            return Loaded(load_file(candidate), "file", str(candidate), origin)
        h = folder / DEFAULT_HOME
        return Loaded(local_default(h), "default", str(h), origin)
    h = home() if home_env else here / DEFAULT_HOME
    return Loaded(local_default(h), "default", str(h), "home-env" if home_env else "new")


_cache: dict[tuple[str, str, str, str], Manifest] = {}


def current(explicit: str | os.PathLike[str] | None = None) -> Manifest:
    """The manifest in force for this process (cached per source)."""
    key = (str(explicit or ""), os.environ.get(ENV_VAR, ""), os.environ.get(HOME_VAR, ""), os.getcwd())
    if key not in _cache:
        _cache[key] = resolve(explicit).manifest
    return _cache[key]


def json_schema() -> dict[str, Any]:
    return Manifest.model_json_schema(by_alias=True)

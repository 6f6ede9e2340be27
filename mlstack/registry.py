"""Backends by kind, as dotted paths imported on first use.

``import mlstack`` must stay light: nothing here imports boto3, pyarrow, duckdb, snowflake, databricks or
kubernetes. A backend module is imported the first time a manifest asks for its kind, and a missing
optional dependency becomes a MissingExtraError naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlstack.errors import ConfigError, MissingExtraError

# layer -> kind -> ("module:Class", extra that provides its dependencies)
BACKENDS: dict[str, dict[str, tuple[str, str]]] = {
    "artifacts": {
        "local": ("mlstack.artifacts.local:LocalBackend", "local"),
        "s3": ("mlstack.artifacts.s3:S3Backend", "aws"),
    },
    "data": {
        "local": ("mlstack.data.local:LocalSource", "local"),
        "snowflake": ("mlstack.data.snowflake:SnowflakeSource", "snowflake"),
        "databricks": ("mlstack.data.databricks:DatabricksSource", "databricks"),
        "lakehouse": ("mlstack.data.lakehouse:LakehouseSource", "lakehouse"),
    },
    "orchestrator": {
        "local": ("mlstack.pipeline.local:LocalRunner", "local"),
        "argo": ("mlstack.pipeline.argo:ArgoRunner", "k8s"),
    },
}

# the Python modules each extra brings; `mlstack doctor` compares them with what is installed, and the CLI
# turns a missing one into "this verb needs mlstack[EXTRA]" (tests/test_extras.py keeps this in step with
# pyproject.toml's extras)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "aws": ("boto3",),
    "lakehouse": ("boto3", "pyarrow"),
    "k8s": ("kubernetes", "hera"),
    "snowflake": ("snowflake.connector", "pyarrow"),
    "databricks": ("databricks.sdk", "pyarrow"),
    "local": ("duckdb", "deltalake", "pyarrow", "pandas"),
    "components": (
        "pulumi",
        "pulumi_aws",
        "pulumi_kubernetes",
        "pulumi_snowflake",
        "pulumi_databricks",
        "pulumi_tls",
    ),
    "examples": ("sklearn", "pandas"),
}

# what each extra enables, in a user's words (`mlstack doctor` lists the missing ones with these)
EXTRA_USES: dict[str, str] = {
    "local": "the local stack: demo, run --local, data load/query, artifacts",
    "examples": "mlstack demo's churn pipeline (scikit-learn)",
    "components": "plan, up/preview/destroy/outputs, doctor --preflight, mlstack.components",
    "k8s": "render --argo, run --argo, doctor job",
    "aws": "S3 artifact stores, doctor --preflight",
    "snowflake": "Snowflake data layers",
    "databricks": "Databricks data layers",
    "lakehouse": "S3 lakehouse (Glue + Athena) data layers",
}

# the extra to name when a top-level module is missing; where two extras bring a module, the smaller one
_MODULE_EXTRA: dict[str, str] = {"pyarrow": "local", "pandas": "local", "boto3": "aws", "botocore": "aws"}
for _extra, _mods in EXTRA_MODULES.items():
    for _mod in _mods:
        _MODULE_EXTRA.setdefault(_mod.split(".")[0], _extra)
for _top in ("databricks", "snowflake"):
    _MODULE_EXTRA[_top] = _top


def extra_for_module(name: str | None) -> str | None:
    """The extra that installs the (top-level) module ``name``, or None when no extra brings it."""
    if not name:
        return None
    top = name.split(".")[0]
    if top.startswith("pulumi"):  # a provider SDK a stack program imports: Pulumi lives in components
        return "components"
    return _MODULE_EXTRA.get(top)


def known_kinds(layer: str) -> list[str]:
    return sorted(BACKENDS.get(layer, {}))


def load_backend(layer: str, kind: str) -> Any:
    """Return the backend class registered for ``layer``/``kind``, importing its module now."""
    try:
        target, extra = BACKENDS[layer][kind]
    except KeyError:
        raise ConfigError(
            f"no {layer} backend for kind {kind!r}",
            fix=f"use one of: {', '.join(known_kinds(layer)) or '(none)'}",
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and not missing.startswith("mlstack"):
            raise MissingExtraError(missing, extra, f"the {kind} {layer} backend") from exc
        raise
    return getattr(module, attr)

"""mlstack's components as a Pulumi package for every language (YAML, TypeScript, Go, C#, Java, Python).

Pulumi's Python SDK hosts Python components as a provider: :class:`ComponentProvider` infers the package
schema from the components' type annotations (the ``XxxArgs`` TypedDicts, the str Enums, the ``Output``
annotations on each class) and serves ``GetSchema`` and ``Construct`` over gRPC. The repository root holds
``PulumiPlugin.yaml`` and ``__main__.py``, so ``pulumi package add <path to this repository>`` generates an SDK
for the calling program's language; ``schema.json`` beside this module is the checked-in schema
(tests/components/test_provider.py keeps it equal to what the analyzer builds, docs/components is generated
from it).

Wiring components together from another language (design, docs/components/README.md):

- **References that resolve.** Inputs that take another component (``EksGpuCluster.artifactStore``,
  ``ArgoWorkflows.cluster``, ``MLStack.data/compute/orchestrator/artifacts``) are typed ``Any`` in the schema;
  the calling program passes the component itself (``${cluster}`` in YAML, ``cluster`` in TypeScript/Go), which
  reaches the provider as a resource reference. The engine sends every Construct of one deployment to the same
  provider process, so the reference resolves to the live component built there moments before, with its
  methods (``grant_write``, ``irsa_role``, ``publish_manifest``) and its Kubernetes provider. A reference the
  process did not build (another stack's component, or one built by another provider version) is refused with
  an error naming the input: pass plain values (names, ARNs, ``ExistingEksCluster``) instead.
- **Plain outputs.** Every component exports names, ARNs and its manifest section as ordinary outputs
  (``clusterName``, ``bucketName``, ``jobsRoleArn``, ``manifestSection``, ...), for wiring into resources of
  other packages.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import itertools
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pulumi
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case
from pulumi.runtime.rpc import ResourceModule, register_resource_module

from mlstack import _astutil

from ._tokens import PACKAGE

SCHEMA_PATH = Path(__file__).with_name("schema.json")
SCHEMA_VERSION = "0.1.0"
"""The package version in the schema (SDKs generated from it carry it); bump with breaking schema changes."""

# what the package exports, in docs order (the Python-only helpers, e.g. ExistingS3ArtifactStore, stay out)
COMPONENTS = {
    "S3ArtifactStore": "mlstack.components.artifacts.s3",
    "EksGpuCluster": "mlstack.components.compute.eks",
    "ExistingEksCluster": "mlstack.components.compute.existing",
    "DatabricksDataLayer": "mlstack.components.data.databricks",
    "S3Lakehouse": "mlstack.components.data.lakehouse",
    "SnowflakeDataLayer": "mlstack.components.data.snowflake",
    "ArgoWorkflows": "mlstack.components.orchestrator.argo",
    "MLStack": "mlstack.components.stack",
}


SECRET_OUTPUTS = {
    "EksGpuCluster": ("kubeconfig",),
    "ExistingEksCluster": ("kubeconfig",),
    "DatabricksDataLayer": ("clientSecret",),
    "SnowflakeDataLayer": ("privateKeyPem",),
}
"""Outputs each component returns as Pulumi secrets, marked ``"secret": true`` in the schema.

Pulumi's analyzer has no way to say an output is secret (it reads ``Output[T]`` and ``Optional``, nothing
more), so the schema it builds is completed here; SDKs generated from it then wrap these outputs as secrets
(``additionalSecretOutputs``). tests/components/test_provider.py checks each is returned as a secret by
Construct and that no other output is. The manifest sections hold names and endpoints only, never these."""


def component_classes() -> list[type[pulumi.ComponentResource]]:
    return [getattr(importlib.import_module(mod), name) for name, mod in COMPONENTS.items()]


class _Live:
    """Components this process constructed, by (type token, name): what resource references resolve to."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], pulumi.ComponentResource] = {}

    def construct(self, cls: type[pulumi.ComponentResource], name: str, args: Any, opts: Any) -> Any:
        instance = cls(name, _whole_numbers(args), opts)
        self.by_key[(f"{PACKAGE}:index:{cls.__name__}", name)] = instance  # the host serves index tokens
        return instance


def _whole_numbers(value: Any) -> Any:
    """Numbers cross gRPC as doubles (protobuf Struct): give integer-valued ones back as ints, as a Python
    caller would pass them (the schema types these fields integer; 2.5 stays 2.5 and is refused by name)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


class _References(ResourceModule):
    """Resolves a reference to an ``mlstack:index:*`` component to the live object (see the module docstring)."""

    def __init__(self, live: _Live) -> None:
        self.live = live

    def version(self) -> None:
        return None

    def construct(self, name: str, typ: str, urn: str) -> pulumi.Resource:
        found = self.live.by_key.get((typ, name))
        if found is None:
            raise UnresolvedReference(typ, name, urn)
        return found


class UnresolvedReference(Exception):
    def __init__(self, typ: str, name: str, urn: str) -> None:
        super().__init__(
            f"{urn}: a reference to {typ} {name!r} that this deployment did not construct through the mlstack "
            "provider; pass a component built in the same program, or plain values (names, ARNs, or an "
            "ExistingEksCluster for a cluster built elsewhere)"
        )


class MLStackProvider(ComponentProvider):
    """ComponentProvider whose component references resolve to the components it built."""

    def __init__(self, version: str = SCHEMA_VERSION) -> None:
        # the schema served to `pulumi package add`: built with the retrying parse, as in build_schema
        with _astutil.retrying_parse():
            super().__init__(component_classes(), PACKAGE, version=version)
            self.schema = json.dumps(complete(json.loads(self.schema or "{}")))
        self.live = _Live()
        # the host calls self._components[type](name, args, opts): remember each instance it builds
        for key, cls in list(self._components.items()):
            self._components[key] = functools.partial(self.live.construct, cls)  # type: ignore[assignment]
        register_resource_module(PACKAGE, "index", _References(self.live))


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """What the analyzer's schema lacks: inherited output descriptions and secret marks (in place; returned)."""
    return mark_secrets(inherit_descriptions(schema))


def inherit_descriptions(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every component output the analyzer left undescribed given the docstring of the base
    class that declares it (in place; returned).

    The analyzer collects outputs through the whole MRO but reads attribute docstrings from the component's
    own class body only, so the outputs both clusters inherit from ``JobsClusterBase`` (``jobsRoleArn``,
    ``manifestSection``, ...) would reach the schema, SDKs and docs without a description. Read here from the
    base, they are written once."""
    for cls in component_classes():
        props = schema["resources"][f"{PACKAGE}:index:{cls.__name__}"].get("properties", {})
        # the class itself too: the analyzer's own parse can fail spuriously under CPython 3.11 (a shared AST
        # recursion counter, see mlstack._astutil) and then silently leaves a description out
        for base in cls.__mro__:
            if base is object or base.__module__.split(".")[0] == "pulumi":
                continue
            for attr, doc in _attribute_docs(base).items():
                prop = props.get(camel_case(attr))
                if prop is not None:
                    _describe(prop, doc)
    return schema


def _describe(spec: dict[str, Any], doc: str) -> None:
    """Set ``doc`` where it is missing on a property and, as the analyzer does, on its element and value types
    (the first class in the MRO that describes an attribute wins, as Python's lookup does)."""
    spec.setdefault("description", doc)
    for key in ("items", "additionalProperties"):
        if isinstance(spec.get(key), dict):
            _describe(spec[key], doc)


def _attribute_docs(cls: type) -> dict[str, str]:
    """``{attribute: docstring}`` of the annotated attributes in ``cls``'s own body, read as the analyzer reads
    them (the string literal right after the annotation, verbatim)."""
    body = _astutil.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(body, ast.ClassDef)
    stmts = body.body
    return {
        a.target.id: b.value.value
        for a, b in itertools.pairwise(stmts)
        if isinstance(a, ast.AnnAssign)
        and isinstance(a.target, ast.Name)
        and isinstance(b, ast.Expr)
        and isinstance(b.value, ast.Constant)
        and isinstance(b.value.value, str)
    }


def mark_secrets(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the outputs in :data:`SECRET_OUTPUTS` marked secret (in place; returned)."""
    for name, outputs in SECRET_OUTPUTS.items():
        props = schema["resources"][f"{PACKAGE}:index:{name}"]["properties"]
        for output in outputs:
            props[output]["secret"] = True  # a KeyError names an output the component no longer has
    return schema


def build_schema() -> dict[str, Any]:
    """The package schema as Pulumi's analyzer infers it, plus the secret marks it cannot infer
    (:data:`SECRET_OUTPUTS`); no provider registration side effects."""
    # the analyzer swallows a failed parse and drops the description: make the spurious 3.11 one retry
    # (inspect.getsource, used by the analyzer and by complete(), parses too)
    with _astutil.retrying_parse():
        provider = ComponentProvider(component_classes(), PACKAGE, version=SCHEMA_VERSION)
        return complete(json.loads(provider.schema or "{}"))


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Serve the package the way the engine starts a plugin: print the port, answer over gRPC."""
    from pulumi.provider import main as serve

    serve(MLStackProvider(), list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # python -m mlstack.components.provider [--write-schema]
    if sys.argv[1:] == ["--write-schema"]:
        SCHEMA_PATH.write_text(schema_text(build_schema()))
        print(f"wrote {SCHEMA_PATH}")
    else:
        main()

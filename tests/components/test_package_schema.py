"""components/schema.json against the rules of Pulumi's package metaschema that our schema can break.

Pulumi's metaschema (pkg/codegen/schema/pulumi.json in pulumi/pulumi, JSON Schema 2020-12) is what
`pulumi package add` and the SDK generators load a package schema with. Its file is not copied here; these
checks restate the parts that matter for a component package, written for this repository:

- the top level holds only the metaschema's keys, ``name`` and ``version`` match its patterns;
- every type and resource token matches the metaschema's token pattern (and is ``mlstack:index:*``);
- every property is exactly one of the metaschema's type references (primitive, array, map, named, union),
  recursively through ``items`` and ``additionalProperties``;
- object types have ``type: object``, enums a primitive ``type`` and values of it;
- and, as Pulumi's binder requires beyond the metaschema: ``required``/``requiredInputs`` name existing
  properties and every ``#/types/...`` reference resolves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

SCHEMA = Path(__file__).resolve().parents[2] / "components" / "schema.json"

TOP_LEVEL = {
    "name", "displayName", "version", "description", "keywords", "homepage", "license", "attribution",
    "repository", "logoUrl", "pluginDownloadURL", "configurationDocsUrl", "validateCredentialsOnNew",
    "publisher", "namespace", "meta", "config", "types", "dependencies", "provider", "resources", "functions",
    "language", "parameterization", "allowedPackageNames",
}  # fmt: skip
NAME = re.compile(r"^[a-zA-Z][-a-zA-Z0-9_]*$")
SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
TOKEN = re.compile(r"^[a-zA-Z][-a-zA-Z0-9_]*:([^0-9][a-zA-Z0-9._/-]*)?:[^0-9][a-zA-Z0-9._/-]*$")
PRIMITIVES = {"boolean", "integer", "number", "string"}
BUILTIN_REFS = {"pulumi.json#/Any", "pulumi.json#/Archive", "pulumi.json#/Asset", "pulumi.json#/Json"}


def type_spec_problems(spec: Any, where: str, schema: dict[str, Any]) -> list[str]:
    """Problems of one type reference (a property, or the items/values of one): it must match exactly one
    of the metaschema's typeSpec alternatives."""
    if not isinstance(spec, dict):
        return [f"{where}: not an object"]
    kinds = []
    if "$ref" in spec:
        kinds.append("named")
    if "oneOf" in spec:
        kinds.append("union")
    if "$ref" not in spec and "oneOf" not in spec:
        kinds.append({"array": "array", "object": "map"}.get(spec.get("type"), "primitive"))
    if len(kinds) != 1:
        return [f"{where}: both a $ref and a oneOf"]
    kind, out = kinds[0], []
    if kind == "named":
        ref = spec["$ref"]
        if "items" in spec or "additionalProperties" in spec or "oneOf" in spec:
            out.append(f"{where}: a $ref with items/additionalProperties/oneOf")
        if ref.startswith("#/types/"):
            if ref[len("#/types/") :] not in schema.get("types", {}):
                out.append(f"{where}: $ref {ref} does not resolve")
        elif ref.startswith("#/resources/"):
            if ref[len("#/resources/") :] not in schema.get("resources", {}):
                out.append(f"{where}: $ref {ref} does not resolve")
        elif ref not in BUILTIN_REFS and not re.match(r"^(/|https?://).*#/(types|resources)/", ref):
            out.append(f"{where}: $ref {ref} is not a reference Pulumi understands")
    elif kind == "union":
        if not isinstance(spec["oneOf"], list) or len(spec["oneOf"]) < 2:
            out.append(f"{where}: oneOf needs at least two types")
        else:
            for i, s in enumerate(spec["oneOf"]):
                out += type_spec_problems(s, f"{where}.oneOf[{i}]", schema)
    elif kind == "array":
        if "items" not in spec or "additionalProperties" in spec:
            out.append(f"{where}: an array needs items and no additionalProperties")
        else:
            out += type_spec_problems(spec["items"], f"{where}.items", schema)
    elif kind == "map":
        if "items" in spec:
            out.append(f"{where}: a map with items")
        if "additionalProperties" in spec:
            out += type_spec_problems(spec["additionalProperties"], f"{where}.additionalProperties", schema)
    else:
        if spec.get("type") not in PRIMITIVES or "items" in spec or "additionalProperties" in spec:
            out.append(f"{where}: type {spec.get('type')!r} is not boolean, integer, number or string")
    if "plain" in spec and not isinstance(spec["plain"], bool):
        out.append(f"{where}: plain must be a boolean")
    for flag in ("secret", "replaceOnChanges", "willReplaceOnChanges"):
        if flag in spec and not isinstance(spec[flag], bool):
            out.append(f"{where}: {flag} must be a boolean")
    if "description" in spec and not isinstance(spec["description"], str):
        out.append(f"{where}: description must be a string")
    return out


def schema_problems(schema: dict[str, Any]) -> list[str]:
    out = [f"top level: {k!r} is not a metaschema key" for k in sorted(set(schema) - TOP_LEVEL)]
    if not NAME.match(str(schema.get("name", ""))):
        out.append(f"name {schema.get('name')!r} does not match {NAME.pattern}")
    if "version" in schema and not SEMVER.match(schema["version"]):
        out.append(f"version {schema['version']!r} is not semver")
    for section in ("types", "resources"):
        for token in schema.get(section, {}):
            if not TOKEN.match(token):
                out.append(f"{section}: {token!r} is not a token")
    for token, typ in schema.get("types", {}).items():
        where = f"types[{token}]"
        if "enum" in typ:
            if typ.get("type") not in PRIMITIVES:
                out.append(f"{where}: an enum's type must be primitive")
            py = {"string": str, "integer": int, "number": (int, float), "boolean": bool}.get(typ.get("type"))
            for i, e in enumerate(typ["enum"]):
                if "value" not in e or (py is not None and not isinstance(e["value"], py)):
                    out.append(f"{where}.enum[{i}]: needs a value of type {typ.get('type')}")
        else:
            if typ.get("type") != "object":
                out.append(f"{where}: an object type needs type 'object'")
            out += _object_problems(typ, "properties", "required", where, schema)
    for token, res in schema.get("resources", {}).items():
        where = f"resources[{token}]"
        if not isinstance(res.get("isComponent", False), bool):
            out.append(f"{where}: isComponent must be a boolean")
        out += _object_problems(res, "properties", "required", where, schema)
        out += _object_problems(res, "inputProperties", "requiredInputs", where, schema)
    return out


def _object_problems(
    obj: dict[str, Any], props_key: str, req_key: str, where: str, schema: dict
) -> list[str]:
    out: list[str] = []
    props = obj.get(props_key, {})
    for name, spec in props.items():
        out += type_spec_problems(spec, f"{where}.{props_key}.{name}", schema)
    required = obj.get(req_key, [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        out.append(f"{where}.{req_key}: must be a list of names")
    else:
        out += [f"{where}.{req_key}: {r!r} is not in {props_key}" for r in required if r not in props]
    return out


def test_the_checked_in_schema_keeps_the_metaschema_rules() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema_problems(schema) == []
    assert all(t.startswith("mlstack:index:") for t in [*schema["types"], *schema["resources"]])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.update(extra=1), "'extra' is not a metaschema key"),
        (lambda s: s.update(version="0.1"), "is not semver"),
        (lambda s: s["types"].update({"mlstack:index:1Bad": {"type": "object"}}), "is not a token"),
        (
            lambda s: s["resources"]["mlstack:index:MLStack"]["inputProperties"]["data"].update(
                {"items": {"type": "string"}}
            ),
            "a $ref with items",
        ),
        (
            lambda s: s["resources"]["mlstack:index:S3ArtifactStore"]["inputProperties"]["prefix"].update(
                type="str"
            ),
            "'str' is not boolean, integer, number or string",
        ),
        (
            lambda s: s["resources"]["mlstack:index:ExistingEksCluster"]["requiredInputs"].append("nope"),
            "'nope' is not in inputProperties",
        ),
        (
            lambda s: s["resources"]["mlstack:index:EksGpuCluster"]["inputProperties"]["gpuNodeGroups"][
                "items"
            ].update({"$ref": "#/types/mlstack:index:Missing"}),
            "does not resolve",
        ),
        (
            lambda s: s["types"]["mlstack:index:CapacityType"]["enum"].append({"value": 3}),
            "needs a value of type string",
        ),
        (
            lambda s: s["resources"]["mlstack:index:EksGpuCluster"]["properties"]["kubeconfig"].update(
                secret="yes"
            ),
            "secret must be a boolean",
        ),
    ],
)
def test_each_rule_catches_what_it_is_for(change, expected) -> None:
    schema = json.loads(SCHEMA.read_text())
    change(schema)
    problems = schema_problems(schema)
    assert any(expected in p for p in problems), problems

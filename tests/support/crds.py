"""Validate a custom resource object against its CRD, the way the API server would on create.

``kubernetes-validate`` only warns about custom resources, so the tests use the pinned CRDs in ``tests/crds/``
(source, version and date in its README) and this helper:

1. ``apiVersion``/``kind`` name a served version of a pinned CRD;
2. ``metadata``: a name that is a DNS subdomain (or ``generateName``), label keys and values in the
   Kubernetes syntax, string annotations;
3. the schema's defaults are applied (as the API server does before validating);
4. the version's ``openAPIV3Schema`` with ``jsonschema``, converted from the Kubernetes dialect: ``nullable``,
   ``x-kubernetes-int-or-string``, ``x-kubernetes-list-type: set`` (unique items) and ``map`` (unique keys),
   and **strict about unknown fields**: an object schema that lists ``properties`` and neither allows
   ``additionalProperties`` nor sets ``x-kubernetes-preserve-unknown-fields`` rejects any other field (the API
   server would prune it silently, or reject it under ``kubectl --validate=strict``);
5. the ``x-kubernetes-validations`` CEL rules with ``cel-python``, plus the two Kubernetes CEL library
   functions the pinned CRDs use (``string.find(regex)``, ``string.split(sep)``). Transition rules (those
   reading ``oldSelf``) do not apply on create and are skipped, as the API server skips them.

``validate(obj)`` returns the problems (empty when valid); ``assert_valid(obj)`` fails with all of them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

CRDS = Path(__file__).resolve().parents[1] / "crds"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CRD document, for every pinned CRD file."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for f in sorted(CRDS.glob("*.yaml")):
        doc = yaml.load(f.read_text(encoding="utf-8"), Loader=loader)
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        out[(spec["group"], spec["names"]["kind"])] = doc
    return out


def crd(api_version: str, kind: str) -> dict[str, Any]:
    """The pinned CRD for ``apiVersion``'s group and ``kind``; KeyError naming what is pinned."""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    found = _crds().get((group, kind))
    if found is None:
        raise KeyError(f"no pinned CRD for {kind} in group {group!r}; pinned: {sorted(_crds())}")
    return found


def schema(api_version: str, kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of the served version ``apiVersion`` names."""
    doc = crd(api_version, kind)
    version = api_version.split("/", 1)[1]
    for v in doc["spec"]["versions"]:
        if v["name"] == version:
            if not v.get("served", False):
                raise KeyError(f"{api_version} {kind} is not served by the pinned CRD")
            return v["schema"]["openAPIV3Schema"]
    served = [v["name"] for v in doc["spec"]["versions"] if v.get("served")]
    raise KeyError(f"{kind}: version {version!r} not in the pinned CRD (served: {served})")


# ---------------------------------------------------------------- the Kubernetes dialect -> JSON Schema
def to_json_schema(s: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A Draft 4 JSON Schema for a structural OpenAPI v3 schema (see the module doc)."""
    out: dict[str, Any] = {}
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    for key, value in s.items():
        if key == "properties":
            out[key] = {p: to_json_schema(v, strict=strict) for p, v in value.items()}
        elif key == "items":
            out[key] = to_json_schema(value, strict=strict)
        elif key == "additionalProperties":
            out[key] = to_json_schema(value, strict=strict) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v, strict=strict) for v in value]
        elif key == "not":
            out[key] = to_json_schema(value, strict=strict)
        elif key.startswith("x-kubernetes-") or key in ("description", "default", "example", "nullable"):
            continue
        elif key == "format":
            continue  # Kubernetes formats (int64, date-time, duration...) are advisory here
        else:
            out[key] = value
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    is_object = s.get("type") == "object"
    if strict and is_object and not preserve and "additionalProperties" not in s:
        if s.get("x-kubernetes-embedded-resource"):
            out.setdefault("properties", {})
            for k in ("apiVersion", "kind", "metadata"):
                out["properties"].setdefault(k, {})
        out["additionalProperties"] = False
    return out


def apply_defaults(value: Any, s: dict[str, Any]) -> Any:
    """``value`` with the schema's defaults filled in where a field is absent (a copy)."""
    value = copy.deepcopy(value)
    _default(value, s)
    return value


def _default(value: Any, s: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for name, sub in (s.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(value[name], sub)
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            for k, v in value.items():
                if k not in (s.get("properties") or {}):
                    _default(v, extra)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for item in value:
            _default(item, s["items"])


# ---------------------------------------------------------------- CEL
def _cel_env() -> tuple[Any, dict[str, Any]]:
    import celpy
    from celpy import celtypes

    def find(text: Any, pattern: Any) -> Any:  # Kubernetes regex library: first match, or ""
        m = re.search(str(pattern), str(text))
        return celtypes.StringType(m.group(0) if m else "")

    def split(text: Any, sep: Any) -> Any:  # Kubernetes strings library
        return celtypes.ListType([celtypes.StringType(x) for x in str(text).split(str(sep))])

    return celpy.Environment(), {"find": find, "split": split}


@lru_cache(maxsize=2048)
def _program(rule: str) -> Any:
    env, functions = _cel_env()
    return env.program(env.compile(rule), functions=functions)


def _walk_rules(value: Any, s: dict[str, Any], path: str) -> Iterator[str]:
    for v in s.get("x-kubernetes-validations") or []:
        rule = v["rule"]
        if re.search(r"\boldSelf\b", rule):
            continue  # a transition rule: not checked on create
        import celpy
        from celpy.evaluation import CELEvalError

        try:
            ok = _program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as exc:
            ok = exc
        if isinstance(ok, CELEvalError | Exception):  # the API server counts an evaluation error as a failure
            yield f"{path or '<root>'}: rule {rule!r} could not be evaluated: {ok}"
        elif not bool(ok):
            yield f"{path or '<root>'}: {v.get('message') or 'failed rule: ' + rule}"
    if isinstance(value, dict):
        props = s.get("properties") or {}
        for k, sub in props.items():
            if k in value:
                yield from _walk_rules(value[k], sub, f"{path}.{k}" if path else k)
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            for k, v in value.items():
                if k not in props:
                    yield from _walk_rules(v, extra, f"{path}[{k!r}]")
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for i, item in enumerate(value):
            yield from _walk_rules(item, s["items"], f"{path}[{i}]")


def _walk_list_maps(value: Any, s: dict[str, Any], path: str) -> Iterator[str]:
    if isinstance(value, list) and s.get("x-kubernetes-list-type") == "map":
        keys = s.get("x-kubernetes-list-map-keys") or []
        seen: set[tuple[Any, ...]] = set()
        for item in value:
            if isinstance(item, dict):
                k = tuple(repr(item.get(key)) for key in keys)
                if k in seen:
                    yield f"{path}: duplicate entry for keys {dict(zip(keys, k, strict=True))}"
                seen.add(k)
    if isinstance(value, dict):
        for k, sub in (s.get("properties") or {}).items():
            if k in value:
                yield from _walk_list_maps(value[k], sub, f"{path}.{k}" if path else k)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for i, item in enumerate(value):
            yield from _walk_list_maps(item, s["items"], f"{path}[{i}]")


# ---------------------------------------------------------------- metadata
def _metadata(md: Any) -> Iterator[str]:
    if not isinstance(md, dict):
        yield "metadata: must be an object"
        return
    name = md.get("name")
    if not name and not md.get("generateName"):
        yield "metadata.name: required (or metadata.generateName)"
    if name is not None and (not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
        yield f"metadata.name: {name!r} is not a DNS subdomain (lowercase letters, digits, '-', '.')"
    for key in ("labels", "annotations"):
        m = md.get(key)
        if m is None:
            continue
        if not isinstance(m, dict):
            yield f"metadata.{key}: must be a map of strings"
            continue
        for k, v in m.items():
            if not isinstance(v, str):
                yield f"metadata.{key}[{k!r}]: value must be a string, got {v!r}"
            prefix, _, nm = str(k).rpartition("/")
            if not _LABEL_NAME.match(nm) or len(nm) > 63 or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
                yield f"metadata.{key}: key {k!r} is not a qualified name"
            if key == "labels" and isinstance(v, str) and (len(v) > 63 or not _LABEL_VALUE.match(v)):
                yield f"metadata.labels[{k!r}]: value {v!r} is not a valid label value"


# ---------------------------------------------------------------- entry points
def validate(obj: dict[str, Any], *, strict: bool = True) -> list[str]:
    """Every problem the API server would report creating ``obj`` (empty: valid)."""
    import jsonschema

    if not isinstance(obj, dict):
        return ["the object must be a mapping"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or "/" not in api_version or not isinstance(kind, str):
        return [f"apiVersion/kind missing or malformed: {api_version!r} {kind!r}"]
    try:
        s = schema(api_version, kind)
    except KeyError as exc:
        return [str(exc.args[0])]
    problems = list(_metadata(obj.get("metadata")))
    body = apply_defaults({k: v for k, v in obj.items() if k != "metadata"}, s)
    js = to_json_schema(s, strict=strict)
    # metadata is ObjectMeta, checked above: the CRD lists it as a bare object
    js.setdefault("properties", {})["metadata"] = {"type": "object"}
    validator = jsonschema.Draft4Validator(js)
    for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        problems.append(f"{where}: {err.message}")
    problems += list(_walk_list_maps(body, s, ""))
    if not problems:  # CEL rules assume a schema-valid object
        problems += list(_walk_rules(body, s, ""))
    return problems


def assert_valid(obj: dict[str, Any]) -> None:
    problems = validate(obj)
    assert not problems, f"{obj.get('kind')} {obj.get('metadata', {}).get('name')} invalid:\n" + "\n".join(
        problems
    )

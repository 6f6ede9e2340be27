from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack import manifest
from mlstack.errors import ManifestError


def s3_manifest(**artifacts: Any) -> dict[str, Any]:
    a = {"kind": "s3", "bucket": "ml-artifacts", "prefix": "team", "region": "us-east-1"}
    a.update(artifacts)
    return {
        "version": 1,
        "project": "p",
        "stack": "prod",
        "artifacts": a,
        "data": {
            "kind": "snowflake",
            "account": "org-acct",
            "warehouse": "ML_WH",
            "database": "ML",
            "schema": "PUBLIC",
            "role": "ML_READER",
            "user": "ML_SVC",
        },
        "compute": {
            "kind": "kubernetes",
            "cluster_name": "gpu",
            "region": "us-east-1",
            "namespace": "ml-jobs",
            "service_account": "ml-jobs",
            "gpu": {
                "resource": "nvidia.com/gpu",
                "node_selector": {"mlstack.dev/gpu": "true"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
                ],
            },
        },
        "orchestrator": {"kind": "argo", "namespace": "argo", "service_account": "ml-workflows"},
    }


def test_full_manifest_round_trips() -> None:
    data = s3_manifest()
    m = manifest.from_dict(data)
    assert m.artifacts.kind == "s3" and m.artifacts.bucket == "ml-artifacts"
    assert m.data.schema_ == "PUBLIC"
    out = m.to_dict()
    assert out["data"]["schema"] == "PUBLIC"  # serialised by its contract name, not the Python one
    assert manifest.from_dict(out) == m


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d["artifacts"].pop("bucket"), "artifacts.bucket", "required"),
        (lambda d: d["artifacts"].update(kind="gcs"), "artifacts.kind", "'s3'"),
        (lambda d: d["artifacts"].update(bucket=123), "artifacts.bucket", "string"),
        (lambda d: d["compute"].update(flavour="x"), "compute.flavour", "allowed keys"),
        (lambda d: d.update(version=2), "version", "1"),
        (
            lambda d: d["compute"]["gpu"]["tolerations"][0].update(effect="Sometimes"),
            "compute.gpu.tolerations[0].effect",
            "NoSchedule",
        ),
        (lambda d: d["artifacts"].update(region="Mars"), "artifacts.region", "pattern"),
    ],
)
def test_errors_name_path_value_and_allowed(mutate: Any, path: str, fragment: str) -> None:
    data = s3_manifest()
    mutate(data)
    with pytest.raises(ManifestError) as ei:
        manifest.from_dict(data, source="m.json")
    paths = [p for p, _, _ in ei.value.problems]
    assert path in paths, paths
    assert path in str(ei.value) and fragment in str(ei.value)
    assert ei.value.exit_code == 2


@pytest.mark.parametrize(
    "key",
    ["password", "aws_secret_access_key", "token", "private_key", "PRIVATE-KEY", "client_secret", "api_key"],
)
def test_credentials_are_refused_with_where_they_go(key: str) -> None:
    data = s3_manifest()
    data["data"][key] = "hunter2"
    with pytest.raises(ManifestError) as ei:
        manifest.from_dict(data)
    msg = str(ei.value)
    assert f"data.{key}" in msg
    assert "connections.toml" in msg and "credential chain" in msg
    assert "hunter2" not in msg  # the secret itself is never echoed


def test_kms_key_arn_is_not_mistaken_for_a_secret() -> None:
    m = manifest.from_dict(s3_manifest(kms_key_arn="arn:aws:kms:us-east-1:1:key/abc"))
    assert m.artifacts.kms_key_arn.endswith("key/abc")


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path / "home"))
    assert manifest.resolve().source_kind == "default"
    assert manifest.resolve().manifest.artifacts.root == str(tmp_path / "home" / "artifacts")

    (tmp_path / "mlstack.json").write_text(json.dumps(s3_manifest(prefix="file")))
    assert manifest.resolve().source_kind == "file"
    assert manifest.resolve().manifest.artifacts.prefix == "file"

    other = tmp_path / "other.json"
    other.write_text(json.dumps(s3_manifest(prefix="envpath")))
    monkeypatch.setenv("MLSTACK_MANIFEST", str(other))
    assert manifest.resolve().manifest.artifacts.prefix == "envpath"
    monkeypatch.setenv("MLSTACK_MANIFEST", json.dumps(s3_manifest(prefix="inline")))
    loaded = manifest.resolve()
    assert loaded.source_kind == "env-inline" and loaded.manifest.artifacts.prefix == "inline"

    flag = tmp_path / "flag.json"
    flag.write_text(json.dumps(s3_manifest(prefix="flag")))
    assert manifest.resolve(flag).manifest.artifacts.prefix == "flag"


def test_relative_local_paths_are_relative_to_the_manifest_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "m.json").write_text(
        json.dumps(
            {
                "version": 1,
                "project": "p",
                "stack": "s",
                "artifacts": {"kind": "local", "root": "store"},
                "data": {"kind": "local", "path": "wh.duckdb", "lake_root": "lake"},
                "compute": {"kind": "local"},
                "orchestrator": {"kind": "local"},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    m = manifest.load_file(d / "m.json")
    assert m.artifacts.root == str(d / "store")
    assert m.data.path == str(d / "wh.duckdb") and m.data.lake_root == str(d / "lake")


def test_bad_json_and_missing_file() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        manifest.loads('{"version": 1,}')
    with pytest.raises(ManifestError, match="does not exist"):
        manifest.load_file("/nonexistent/m.json")


def test_validate_section_for_components() -> None:
    out = manifest.validate_section("artifacts", {"kind": "s3", "bucket": "b-1x", "region": "eu-west-1"})
    assert out == {"kind": "s3", "bucket": "b-1x", "prefix": "", "region": "eu-west-1"}
    with pytest.raises(ManifestError, match=r"artifacts\.token"):
        manifest.validate_section(
            "artifacts", {"kind": "s3", "bucket": "b-1x", "region": "eu-west-1", "token": "x"}
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_any_json_loads_or_fails_with_manifest_error(value: Any) -> None:
    try:
        manifest.from_dict(value)
    except ManifestError as exc:
        assert str(exc)
        assert exc.problems


section_keys = st.sampled_from(
    [
        "kind",
        "bucket",
        "prefix",
        "region",
        "root",
        "path",
        "account",
        "schema",
        "namespace",
        "gpu",
        "tolerations",
        "password",
        "host",
        "warehouse_id",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(section_keys, json_values, max_size=6), st.sampled_from(list(manifest.LAYERS)))
def test_near_valid_manifests_load_or_fail_cleanly(section: dict[str, Any], layer: str) -> None:
    data = s3_manifest()
    data[layer] = section
    try:
        manifest.from_dict(data)
    except ManifestError as exc:
        assert exc.problems
        for path, _value, allowed in exc.problems:
            assert path and allowed


SNOWFLAKE = {
    "kind": "snowflake",
    "account": "acme-ml",
    "warehouse": "ML_WH",
    "database": "ML",
    "schema": "ML",
    "role": "ML_WRITER",
    "user": "ML_SVC",
}
DATABRICKS = {
    "kind": "databricks",
    "host": "https://dbc-1.cloud.databricks.com",
    "warehouse_id": "abc",
    "catalog": "ml",
    "schema": "features",
}


@pytest.mark.parametrize(
    ("section", "key", "good", "bad"),
    [
        (
            SNOWFLAKE,
            "stage",
            ["MLSTACK_STAGE", "ML.MLSTACK_STAGE", "ML.ML.MLSTACK_STAGE"],
            ["@stage", "a.b.c.d", "my stage"],
        ),
        (
            DATABRICKS,
            "volume",
            ["files", "ml.features.files", "raw-files"],
            ["/Volumes/ml/features/files", "a.b.c.d", "f s"],
        ),
    ],
)
def test_bulk_write_locations_are_optional_names(
    section: dict[str, Any], key: str, good: list[str], bad: list[str]
) -> None:
    assert key not in manifest.validate_section("data", section)  # optional: old manifests stay valid
    for value in good:
        assert manifest.validate_section("data", {**section, key: value})[key] == value
    for value in bad:
        with pytest.raises(ManifestError) as err:
            manifest.validate_section("data", {**section, key: value})
        assert f"data.{key}" in str(err.value)

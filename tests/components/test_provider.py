"""mlstack as a multi-language Pulumi package, proven without the Pulumi CLI.

- Pulumi's own analyzer builds the schema for every exported component, with ``mlstack:index:<Type>``
  tokens; the checked-in ``components/schema.json`` equals what it builds.
- The provider is started the way the engine starts a plugin (a subprocess printing its port, given the
  engine's address), and over gRPC (Pulumi's generated proto stubs) the test calls GetSchema and Construct
  for S3ArtifactStore, EksGpuCluster (taking a reference to the store), ArgoWorkflows (taking a reference
  to the cluster) and MLStack (references to all four layers), against a resource monitor and an engine
  implemented here. It asserts the children each Construct registered and the outputs returned.

Regenerate the schema after changing a component's args or outputs:
``.venv/bin/python -m mlstack.components.provider --write-schema`` (then ``python -m mlstack._docgen``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from google.protobuf import empty_pb2, struct_pb2  # noqa: E402
from pulumi.runtime import rpc  # noqa: E402
from pulumi.runtime.proto import (  # noqa: E402
    engine_pb2,
    engine_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ schema
def test_the_analyzer_builds_the_schema_of_every_exported_component() -> None:
    from mlstack.components import __all__ as exported
    from mlstack.components import provider

    schema = provider.build_schema()
    components = {n for n in exported if not n.endswith("Args")}
    assert components == set(provider.COMPONENTS)
    assert set(schema["resources"]) == {f"mlstack:index:{n}" for n in components}
    for token, res in schema["resources"].items():
        assert res["isComponent"] is True
        assert res["properties"].get("manifestSection") or token == "mlstack:index:MLStack", token
    # choices are enums in every language, nested args are object types
    types = schema["types"]
    assert [e["value"] for e in types["mlstack:index:CapacityType"]["enum"]] == ["ON_DEMAND", "SPOT"]
    eks = schema["resources"]["mlstack:index:EksGpuCluster"]["inputProperties"]
    assert eks["natGateways"]["$ref"] == "#/types/mlstack:index:NatGateways"
    assert eks["gpuNodeGroups"]["items"]["$ref"] == "#/types/mlstack:index:GpuNodeGroupArgs"
    # component references are Any in the schema (resolved by the provider, see components/provider.py)
    assert schema["resources"]["mlstack:index:ArgoWorkflows"]["inputProperties"]["cluster"]["$ref"] == (
        "pulumi.json#/Any"
    )


def test_the_checked_in_schema_is_what_the_analyzer_builds() -> None:
    from mlstack.components import provider

    built = provider.schema_text(provider.build_schema())
    assert provider.SCHEMA_PATH.read_text() == built, (
        "components/schema.json is stale: run .venv/bin/python -m mlstack.components.provider --write-schema"
    )


def test_the_schema_survives_spurious_parse_failures() -> None:
    """Under CPython 3.11 a parse racing another thread's can fail spuriously; the analyzer (and
    ``inspect.getsource``) swallow that and drop a description. Every third parse here fails that way once:
    the schema built must still be the checked-in one, every description in place."""
    import ast

    from mlstack.components import provider

    real = ast.parse
    calls = {"n": 0, "failed": 0}

    def flaky(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            calls["failed"] += 1
            raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")
        return real(source, *args, **kwargs)

    ast.parse = flaky  # type: ignore[assignment]
    try:
        built = provider.schema_text(provider.build_schema())
    finally:  # restored before any assertion: pytest's own reporting parses source
        ast.parse = real  # type: ignore[assignment]
    assert calls["failed"] > 0  # the failures did happen, inside the analyzer's parses
    assert provider.SCHEMA_PATH.read_text() == built


def test_required_inputs_are_required_in_the_schema() -> None:
    """Fields the components refuse to build without are ``Required[...]`` in their TypedDicts, which the
    analyzer turns into ``requiredInputs`` / a type's ``required``; everything with a default stays optional."""
    schema = json.loads(provider_module().SCHEMA_PATH.read_text())
    res, types = schema["resources"], schema["types"]
    assert res["mlstack:index:ExistingEksCluster"]["requiredInputs"] == [
        "clusterName",
        "oidcIssuerUrl",
        "oidcProviderArn",
    ]
    assert res["mlstack:index:EksGpuCluster"]["requiredInputs"] == []  # every field has a default
    assert types["mlstack:index:GpuNodeGroupArgs"]["required"] == ["instanceTypes", "name"]
    assert "required" not in types["mlstack:index:SystemNodeGroupArgs"]


def test_the_schema_marks_exactly_the_secret_outputs_secret() -> None:
    provider = provider_module()
    schema = json.loads(provider.SCHEMA_PATH.read_text())
    marked = {
        token.rsplit(":", 1)[-1]: tuple(sorted(k for k, p in res["properties"].items() if p.get("secret")))
        for token, res in schema["resources"].items()
    }
    assert {k: v for k, v in marked.items() if v} == provider.SECRET_OUTPUTS
    # nothing an input or a manifest section carries is marked (the manifest holds no secrets by design)
    for res in schema["resources"].values():
        assert not any(p.get("secret") for p in res["inputProperties"].values())
        assert not res["properties"].get("manifestSection", {}).get("secret")


def test_secret_outputs_are_exactly_what_the_components_return_as_secrets(pulumi_run) -> None:
    """Every exported component built under the mock runtime (with the options that create its secrets):
    the outputs it registers as Pulumi secrets are exactly those the schema marks."""
    from pulumi.runtime import settings

    from mlstack.components import (
        ArgoWorkflows,
        DatabricksDataLayer,
        EksGpuCluster,
        ExistingEksCluster,
        MLStack,
        S3ArtifactStore,
        S3Lakehouse,
        SnowflakeDataLayer,
    )
    from mlstack.plan.mock_runtime import is_secret

    provider = provider_module()

    def program() -> None:
        store = S3ArtifactStore("art", {})
        lake = S3Lakehouse("lake", {})
        cluster = EksGpuCluster("gpu", {"artifact_store": store})
        argo = ArgoWorkflows("argo", {"cluster": cluster})
        MLStack("ml", {"data": lake, "compute": cluster, "orchestrator": argo, "artifacts": store})
        SnowflakeDataLayer("sf", {"account": "acme-ml"})  # no rsa_public_key: a key pair is generated
        DatabricksDataLayer("dbx", {"host": "https://dbc-1.cloud.databricks.com", "create_oauth_secret": True})
        ExistingEksCluster(
            "byo",
            {
                "cluster_name": "platform",
                "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/A",
                "oidc_issuer_url": "https://oidc.eks.us-east-1.amazonaws.com/id/A",
                "kubeconfig": "apiVersion: v1\nkind: Config\n",
            },
        )

    settings.ROOT.set(None)
    rec = pulumi_run(program)
    secrets: dict[str, tuple[str, ...]] = {}
    for name in provider.COMPONENTS:
        outputs = rec.one(f"mlstack:index:{name}").outputs
        assert outputs, name
        found = tuple(sorted(_camel(k) for k, v in outputs.items() if is_secret(v)))
        if found:
            secrets[name] = found
    assert secrets == provider.SECRET_OUTPUTS


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def provider_module() -> Any:
    from mlstack.components import provider

    return provider


def test_the_plugin_manifest_and_entry_point() -> None:
    import yaml

    manifest = yaml.safe_load((ROOT / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert "mlstack.components.provider import main" in (ROOT / "__main__.py").read_text()


# ------------------------------------------------------------------ an engine and a resource monitor
class Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """Registers whatever the provider asks for: URNs built like the engine's, outputs echo the inputs."""

    FEATURES = {"secrets", "resourceReferences", "outputValues", "aliasSpecs", "deletedWith"}

    def __init__(self, project: str, stack: str) -> None:
        self.project, self.stack = project, stack
        self.lock = threading.Lock()
        self.resources: list[dict[str, Any]] = []
        self.outputs: dict[str, dict[str, Any]] = {}

    def SupportsFeature(self, request, context):
        return resource_pb2.SupportsFeatureResponse(hasSupport=request.id in self.FEATURES)

    def RegisterResource(self, request, context):
        qualified = request.type
        if request.parent:
            qualified = request.parent.split("::")[2] + "$" + request.type
        urn = f"urn:pulumi:{self.stack}::{self.project}::{qualified}::{request.name}"
        with self.lock:
            self.resources.append(
                {
                    "urn": urn,
                    "type": request.type,
                    "name": request.name,
                    "parent": request.parent,
                    "custom": request.custom,
                    "inputs": rpc.deserialize_properties(request.object, keep_unknowns=True),
                    "aliases": [a.spec.type for a in request.aliases if a.spec.type],
                }
            )
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=f"{request.name}-id" if request.custom else "", object=request.object
        )

    def RegisterResourceOutputs(self, request, context):
        with self.lock:
            self.outputs[request.urn] = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return empty_pb2.Empty()

    def Invoke(self, request, context):
        return resource_pb2.InvokeResponse(**{"return": struct_pb2.Struct()})

    def RegisterPackage(self, request, context):
        return resource_pb2.RegisterPackageResponse(ref=f"{request.name}-ref")

    def SignalAndWaitForShutdown(self, request, context):
        return empty_pb2.Empty()


class Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self) -> None:
        self.logs: list[str] = []

    def Log(self, request, context):
        self.logs.append(f"{request.severity}: {request.message}")
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):
        return engine_pb2.GetRootResourceResponse(urn="")

    def SetRootResource(self, request, context):
        return engine_pb2.SetRootResourceResponse()


def _ref(urn: str, type_: str, name: str) -> dict[str, Any]:
    """A resource reference as the engine passes a component from another language's program."""
    return {rpc._special_sig_key: rpc._special_resource_sig, "urn": urn, "type": type_, "name": name}


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


@pytest.fixture(scope="module")
def served():
    """The provider as the engine runs it, plus our engine and monitor (one gRPC server each)."""
    monitor, engine = Monitor("proj", "dev"), Engine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(monitor, server)
    engine_pb2_grpc.add_EngineServicer_to_server(engine, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {**os.environ, "PULUMI_CONFIG": "{}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlstack.components.provider", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline().decode().strip()  # type: ignore[union-attr]
        assert line.isdigit(), f"the provider printed {line!r}; stderr: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        yield provider_pb2_grpc.ResourceProviderStub(channel), monitor, engine, port
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.stop(None)


def _construct(served, type_name: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    stub, _monitor, _engine, port = served
    request = provider_pb2.ConstructRequest(
        project="proj",
        stack="dev",
        config={"aws:region": "us-east-1"},
        dryRun=True,
        parallel=4,
        monitorEndpoint=f"127.0.0.1:{port}",
        type=f"mlstack:index:{type_name}",
        name=name,
        inputs=_struct(inputs),
    )
    response = stub.Construct(request, timeout=120)
    return response.urn, rpc.deserialize_properties(response.state, keep_unknowns=True)


def test_get_schema_over_grpc_is_the_checked_in_schema(served) -> None:
    from mlstack.components import provider

    stub = served[0]
    response = stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60)
    assert json.loads(response.schema) == json.loads(provider.SCHEMA_PATH.read_text())


def test_construct_components_wired_by_reference(served) -> None:
    _stub, monitor, _engine, _port = served

    def children(urn: str) -> set[str]:
        return {r["type"] for r in monitor.resources if r["parent"] == urn}

    store_urn, store = _construct(served, "S3ArtifactStore", "art", {"bucketName": "ml-artifacts"})
    assert store_urn == "urn:pulumi:dev::proj::mlstack:index:S3ArtifactStore::art"
    assert {"aws:s3/bucket:Bucket", "aws:kms/key:Key"} <= children(store_urn)
    assert store["prefix"] == "mlstack" or isinstance(store["prefix"], str)

    cluster_urn, cluster = _construct(
        served,
        "EksGpuCluster",
        "gpu0",
        {
            "artifactStore": _ref(store_urn, "mlstack:index:S3ArtifactStore", "art"),
            "natGateways": "per_zone",  # a plain string for an enum, as YAML sends it
            "gpuNodeGroups": [{"name": "a10g", "instanceTypes": ["g5.xlarge"], "maxSize": 3}],
        },
    )
    made = children(cluster_urn)
    assert {"aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "kubernetes:core/v1:Namespace"} <= made
    nat = [r for r in monitor.resources if r["type"] == "aws:ec2/natGateway:NatGateway"]
    assert len(nat) == 2  # per_zone reached the component as the enum
    # the reference resolved to the live store: it granted the cluster's jobs role (a child of the store)
    grants = [
        r
        for r in monitor.resources
        if r["parent"] == store_urn and r["type"] == "aws:iam/rolePolicy:RolePolicy"
    ]
    assert [g["name"] for g in grants] == ["art-write-gpu0-jobs"]
    assert cluster["jobsServiceAccountName"] == "mlstack-jobs" and cluster["region"] == "us-east-1"
    # secrets cross Construct as secrets: exactly the outputs the schema marks (components/provider.py)
    assert {k for k, v in cluster.items() if rpc.is_rpc_secret(v)} == {"kubeconfig"}
    assert not any(rpc.is_rpc_secret(v) for v in store.values())
    assert cluster["gpuNodeGroupSpecs"][0]["max_size"] == 3
    aliases = next(r["aliases"] for r in monitor.resources if r["urn"] == cluster_urn)
    assert aliases == ["mlstack:compute:EksGpuCluster"]

    lake_urn, _ = _construct(
        served,
        "S3Lakehouse",
        "lake0",
        {"artifactStore": _ref(store_urn, "mlstack:index:S3ArtifactStore", "art")},
    )
    assert "aws:glue/catalogDatabase:CatalogDatabase" in children(lake_urn)

    argo_urn, argo = _construct(
        served,
        "ArgoWorkflows",
        "argo0",
        {"cluster": _ref(cluster_urn, "mlstack:index:EksGpuCluster", "gpu0")},
    )
    assert "kubernetes:helm.sh/v3:Release" in children(argo_urn)
    assert argo["serverUrl"] == "https://argo-workflows-server.argo.svc:2746"

    stack_urn, stack = _construct(
        served,
        "MLStack",
        "ml",
        {
            "data": _ref(lake_urn, "mlstack:index:S3Lakehouse", "lake0"),
            "compute": _ref(cluster_urn, "mlstack:index:EksGpuCluster", "gpu0"),
            "orchestrator": _ref(argo_urn, "mlstack:index:ArgoWorkflows", "argo0"),
            "artifacts": _ref(store_urn, "mlstack:index:S3ArtifactStore", "art"),
        },
    )
    assert stack_urn == "urn:pulumi:dev::proj::mlstack:index:MLStack::ml"
    # MLStack granted the jobs role read on the lakehouse (a child of the lakehouse) and published the manifest
    assert any(
        r["parent"] == lake_urn and r["type"] == "aws:iam/rolePolicy:RolePolicy" for r in monitor.resources
    )
    assert any(
        r["type"] == "kubernetes:core/v1:ConfigMap" and r["name"] == "argo0-manifest"
        for r in monitor.resources
    )
    assert "manifest" in stack
    assert stack_urn in monitor.outputs


def test_a_reference_the_provider_did_not_build_is_refused_by_name(served) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _construct(
            served,
            "ArgoWorkflows",
            "argo2",
            {
                "cluster": _ref(
                    "urn:pulumi:dev::proj::mlstack:index:EksGpuCluster::other",
                    "mlstack:index:EksGpuCluster",
                    "other",
                )
            },
        )
    assert "did not construct" in str(err.value.details())


def test_the_yaml_example_constructs_through_the_provider(served) -> None:
    """examples/yaml-platform, resource by resource in its order, as the YAML engine would call Construct:
    every type and property is in the schema, references become resource references, outputs exist."""
    import re

    import yaml

    from mlstack.components import provider

    schema = json.loads(provider.SCHEMA_PATH.read_text())
    program = yaml.safe_load((ROOT / "examples" / "yaml-platform" / "Pulumi.yaml").read_text())
    assert program["runtime"] == "yaml"
    built: dict[str, tuple[str, str, dict[str, Any]]] = {}
    whole_ref = re.compile(r"^\$\{(\w+)\}$")

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and (m := whole_ref.match(value)):
            urn, token, _state = built[m.group(1)]
            return _ref(urn, token, m.group(1))
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    for name, res in program["resources"].items():
        token = res["type"]
        inputs = schema["resources"][token]["inputProperties"]
        assert set(res.get("properties", {})) <= set(inputs), (name, set(res["properties"]) - set(inputs))
        urn, state = _construct(served, token.rsplit(":", 1)[-1], name, resolve(res.get("properties", {})))
        built[name] = (urn, token, state)
    assert len(built) == 5
    for key, expr in program["outputs"].items():
        res_name, prop = re.fullmatch(r"\$\{(\w+)\.(\w+)\}", expr).groups()  # type: ignore[union-attr]
        assert prop in schema["resources"][built[res_name][1]]["properties"], key
        assert prop in built[res_name][2], (key, sorted(built[res_name][2]))

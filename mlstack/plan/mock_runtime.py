"""Run a Pulumi program in-process under Pulumi's mock runtime and record every resource it registers.

This is the engine behind ``mlstack plan`` and the component tests: no Pulumi CLI, no provider plugins,
no credentials. Each :class:`Resource` keeps the type token, name, parent, inputs (wire format: camelCase
keys, numbers as floats, secrets as :data:`SECRET_SIG` envelopes), the options that matter for review
(protect, retainOnDelete, ignoreChanges, aliases, additionalSecretOutputs, deleteBeforeReplace, provider,
dependencies) and, for components, the outputs they registered.

Provider-computed attributes (ARNs, ids, endpoints) are faked by :data:`FAKERS` per type token, and invokes
are answered by :data:`CALLS`; add an entry there when a component reads a new attribute or invoke.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _ensure_event_loop

SECRET_SIG = rpc._special_sig_key if hasattr(rpc, "_special_sig_key") else "4dabf18193072939515e22adb298388d"
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass
class Resource:
    """One registered resource, as the engine would have seen it."""

    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None  # components: what register_outputs received
    id: str | None = None

    @property
    def is_component(self) -> bool:
        return not self.custom and not self.type.startswith("pulumi:providers:")

    @property
    def package(self) -> str:
        return self.type.split(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "custom": self.custom,
            "inputs": self.inputs,
            "options": self.options,
            "outputs": self.outputs,
        }


@dataclass
class Recording:
    """Everything a program registered, in registration order."""

    project: str
    stack: str
    resources: list[Resource] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)

    def by_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> Resource:
        found = [r for r in self.by_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.by_type(type_token)]
            raise AssertionError(
                f"expected one {type_token}{f' named {name!r}' if name else ''}, found {names}"
            )
        return found[0]

    def by_urn(self, urn: str) -> Resource | None:
        for r in self.resources:
            if r.urn == urn:
                return r
        return None

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def descendants(self, parent: Resource) -> list[Resource]:
        out: list[Resource] = []
        todo = [parent.urn]
        while todo:
            urn = todo.pop()
            for r in self.resources:
                if r.parent == urn:
                    out.append(r)
                    todo.append(r.urn)
        return out

    def components(self) -> list[Resource]:
        return [r for r in self.resources if r.is_component]

    def duplicate_urns(self) -> list[str]:
        seen: set[str] = set()
        dups = []
        for r in self.resources:
            if r.urn in seen:
                dups.append(r.urn)
            seen.add(r.urn)
        return dups


def _arn(service: str, name: str, kind: str = "", region: str = DEFAULT_REGION, global_: bool = False) -> str:
    reg = "" if global_ else region
    acct = ACCOUNT_ID
    res = f"{kind}/{name}" if kind else name
    return f"arn:aws:{service}:{reg}:{acct}:{res}"


def _fake_id(name: str) -> str:
    return name + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]


# type token -> function(name, inputs) -> extra state the provider would compute
FAKERS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "aws:s3/bucket:Bucket": lambda n, i: {
        "bucket": i.get("bucket") or n,
        "arn": f"arn:aws:s3:::{i.get('bucket') or n}",
        "bucketDomainName": f"{i.get('bucket') or n}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{i.get('bucket') or n}.s3.us-east-1.amazonaws.com",
        "region": DEFAULT_REGION,
    },
    "aws:s3/bucketV2:BucketV2": lambda n, i: {
        "bucket": i.get("bucket") or n,
        "arn": f"arn:aws:s3:::{i.get('bucket') or n}",
    },
    "aws:kms/key:Key": lambda n, i: {"keyId": _fake_id(n), "arn": _arn("kms", _fake_id(n), "key")},
    "aws:kms/alias:Alias": lambda n, i: {"arn": _arn("kms", i.get("name", n), "")},
    "aws:iam/role:Role": lambda n, i: {
        "name": i.get("name") or n,
        "arn": _arn("iam", i.get("name") or n, "role", global_=True),
        "uniqueId": "AROA" + hashlib.sha1(n.encode()).hexdigest()[:16].upper(),
    },
    "aws:iam/policy:Policy": lambda n, i: {
        "name": i.get("name") or n,
        "arn": _arn("iam", i.get("name") or n, "policy", global_=True),
    },
    "aws:iam/rolePolicy:RolePolicy": lambda n, i: {"name": i.get("name") or n},
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda n, i: {
        "arn": _arn(
            "iam",
            (i.get("url") or "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE").replace("https://", ""),
            "oidc-provider",
            global_=True,
        )
    },
    "aws:iam/instanceProfile:InstanceProfile": lambda n, i: {
        "name": i.get("name") or n,
        "arn": _arn("iam", n, "instance-profile", global_=True),
    },
    "aws:eks/cluster:Cluster": lambda n, i: {
        "name": i.get("name") or n,
        "arn": _arn("eks", i.get("name") or n, "cluster"),
        "endpoint": f"https://{hashlib.sha1(n.encode()).hexdigest()[:32].upper()}.gr7.us-east-1.eks.amazonaws.com",
        "certificateAuthority": {
            "data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFWTVJNd0VRWURWUVFERXdwcmRXSmwKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
        },
        "identities": [
            {
                "oidcs": [
                    {
                        "issuer": f"https://oidc.eks.us-east-1.amazonaws.com/id/{hashlib.sha1(n.encode()).hexdigest()[:32].upper()}"
                    }
                ]
            }
        ],
        "vpcConfig": {
            **(i.get("vpcConfig") or {}),
            "clusterSecurityGroupId": "sg-" + hashlib.sha1(n.encode()).hexdigest()[:17],
        },
        "version": i.get("version") or "1.33",
        "status": "ACTIVE",
    },
    "aws:eks/nodeGroup:NodeGroup": lambda n, i: {
        "arn": _arn("eks", n, "nodegroup"),
        "nodeGroupName": i.get("nodeGroupName") or n,
        "resources": [{"autoscalingGroups": [{"name": f"eks-{n}-asg"}]}],
    },
    "aws:ec2/vpc:Vpc": lambda n, i: {
        "arn": _arn("ec2", _fake_id(n), "vpc"),
        "defaultSecurityGroupId": "sg-" + _fake_id(n)[-8:],
    },
    "aws:ec2/subnet:Subnet": lambda n, i: {"arn": _arn("ec2", _fake_id(n), "subnet")},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda n, i: {
        "arn": _arn("ec2", _fake_id(n), "launch-template"),
        "latestVersion": 1.0,
    },
    "aws:ec2/securityGroup:SecurityGroup": lambda n, i: {"arn": _arn("ec2", _fake_id(n), "security-group")},
    "aws:cloudwatch/logGroup:LogGroup": lambda n, i: {"arn": _arn("logs", i.get("name") or n, "log-group")},
    "aws:glue/catalogDatabase:CatalogDatabase": lambda n, i: {
        "arn": _arn("glue", i.get("name") or n, "database")
    },
    "aws:athena/workgroup:Workgroup": lambda n, i: {"arn": _arn("athena", i.get("name") or n, "workgroup")},
    "aws:sqs/queue:Queue": lambda n, i: {
        "name": i.get("name") or _fake_id(n),
        "arn": _arn("sqs", i.get("name") or _fake_id(n)),
        "url": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_ID}/{i.get('name') or _fake_id(n)}",
    },
    "aws:cloudwatch/eventRule:EventRule": lambda n, i: {
        "name": i.get("name") or _fake_id(n),
        "arn": _arn("events", i.get("name") or _fake_id(n), "rule"),
    },
    "aws:eks/accessEntry:AccessEntry": lambda n, i: {"accessEntryArn": _arn("eks", _fake_id(n), "access-entry")},
    # pulumi-databricks: ids the workspace assigns
    "databricks:index/servicePrincipal:ServicePrincipal": lambda n, i: {
        "applicationId": "-".join(
            hashlib.sha1(n.encode()).hexdigest()[a:b]
            for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
        ),
    },
    "databricks:index/servicePrincipalSecret:ServicePrincipalSecret": lambda n, i: {
        "secret": "dose" + hashlib.sha256(n.encode()).hexdigest()[:32],
    },
    "databricks:index/clusterPolicy:ClusterPolicy": lambda n, i: {
        "policyId": hashlib.sha1(n.encode()).hexdigest()[:16].upper(),
    },
    "databricks:index/sqlEndpoint:SqlEndpoint": lambda n, i: {
        "jdbcUrl": f"jdbc:spark://dbc-fake.cloud.databricks.com:443/default;httpPath=/sql/1.0/warehouses/{_fake_id(n)}",
        "state": "STOPPED",
    },
    # pulumi-tls: fixed, obviously fake key material (never a usable key)
    "tls:index/privateKey:PrivateKey": lambda n, i: {
        "privateKeyPem": f"-----BEGIN RSA PRIVATE KEY-----\nFAKE-{n}\n-----END RSA PRIVATE KEY-----\n",
        "privateKeyPemPkcs8": f"-----BEGIN PRIVATE KEY-----\nFAKE-{n}\n-----END PRIVATE KEY-----\n",
        "privateKeyOpenssh": f"-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE-{n}\n-----END OPENSSH PRIVATE KEY-----\n",
        "publicKeyPem": f"-----BEGIN PUBLIC KEY-----\nMIIFAKE{hashlib.sha1(n.encode()).hexdigest()}\nIDAQAB\n-----END PUBLIC KEY-----\n",
        "publicKeyOpenssh": f"ssh-rsa AAAAFAKE{hashlib.sha1(n.encode()).hexdigest()}\n",
        "publicKeyFingerprintSha256": "SHA256:" + hashlib.sha256(n.encode()).hexdigest()[:43],
    },
}

# invoke token -> function(args) -> result
CALLS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda a: {
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/planner",
        "userId": "AIDAPLANNER",
        "id": ACCOUNT_ID,
    },
    "aws:index/getRegion:getRegion": lambda a: {
        "name": a.get("region") or a.get("name") or DEFAULT_REGION,
        "region": a.get("region") or DEFAULT_REGION,
        "id": DEFAULT_REGION,
        "endpoint": "ec2.us-east-1.amazonaws.com",
        "description": "US East (N. Virginia)",
    },
    "aws:index/getPartition:getPartition": lambda a: {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "id": "aws",
        "reverseDnsPrefix": "com.amazonaws",
    },
    "aws:index/getAvailabilityZones:getAvailabilityZones": lambda a: {
        "names": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
        "id": DEFAULT_REGION,
        "groupNames": [DEFAULT_REGION],
    },
}


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as state and add what the provider would compute (see FAKERS / CALLS)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def new_resource(self, args: _mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        faker = FAKERS.get(args.typ)
        if faker is not None:
            for k, v in faker(args.name, args.inputs).items():
                if isinstance(v, dict) and isinstance(state.get(k), dict):
                    # an input block the provider adds computed fields to (vpcConfig.clusterSecurityGroupId)
                    state[k] = {**v, **state[k]}
                else:
                    state.setdefault(k, v)
        elif args.typ.startswith("aws:"):
            service = args.typ.split(":")[1].split("/")[0]
            state.setdefault("arn", _arn(service, args.name))
        state.setdefault("name", args.inputs.get("name") or args.name)
        rid = args.resource_id or _fake_id(args.name)
        if args.typ == "aws:s3/bucket:Bucket":
            rid = state["bucket"]
        return rid, state

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        # pulumi's MockMonitor.Invoke iterates the failures: an empty list, never None
        self.recording.invokes.append((args.token, dict(args.args)))
        fn = CALLS.get(args.token)
        if fn is not None:
            return fn(dict(args.args)), []
        if args.token == "aws:iam/getPolicyDocument:getPolicyDocument":
            import json

            return {
                "json": json.dumps({"Version": "2012-10-17", "Statement": args.args.get("statements", [])}),
                "id": "policy",
            }, []
        return {}, []


class RecordingMonitor(_mocks.MockMonitor):
    """A MockMonitor that keeps what the stock one throws away: options, parents and component outputs."""

    def __init__(self, mocks: RecordingMocks, recording: Recording) -> None:
        super().__init__(mocks)
        self.recording = recording
        self._lock = threading.Lock()

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        options: dict[str, Any] = {
            "protect": bool(request.protect),
            "retainOnDelete": bool(request.retainOnDelete),
            "ignoreChanges": list(request.ignoreChanges),
            "additionalSecretOutputs": list(request.additionalSecretOutputs),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "replaceOnChanges": list(request.replaceOnChanges),
            "dependencies": list(request.dependencies),
            "provider": request.provider or None,
            "providers": dict(request.providers),
            "aliases": [_alias_to_dict(a) for a in request.aliases] + list(request.aliasURNs),
            "version": request.version or None,
            "importId": request.importId or None,
        }
        res = Resource(
            type=request.type,
            name=request.name,
            urn=response.urn,
            parent=request.parent or None,
            custom=bool(request.custom),
            inputs=inputs,
            options=options,
            state=self.resources[response.urn].state if response.urn in self.resources else {},
            id=response.id or None,
        )
        with self._lock:
            self.recording.resources.append(res)
        return response

    def RegisterResourceOutputs(self, request):
        _ensure_event_loop()
        outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        with self._lock:
            if request.urn.split("::")[-2].endswith("pulumi:pulumi:Stack"):
                self.recording.stack_outputs.update(outputs)
            else:
                for r in self.recording.resources:
                    if r.urn == request.urn:
                        r.outputs = outputs
        return super().RegisterResourceOutputs(request)


def _alias_to_dict(a: Any) -> dict[str, Any]:
    if getattr(a, "urn", ""):
        return {"urn": a.urn}
    spec = getattr(a, "spec", a)
    out: dict[str, Any] = {}
    for f in ("name", "type", "stack", "project", "parentUrn", "noParent"):
        v = getattr(spec, f, None)
        if v:
            out[f] = v
    return out


def unwrap_secrets(value: Any) -> Any:
    """Replace secret envelopes with their plain values (for reports that say which values are secret)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG and "value" in value:
            return unwrap_secrets(value["value"])
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def contains_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


_run_lock = threading.Lock()


def run(
    program: Callable[[], Any],
    *,
    project: str = "mlstack",
    stack: str = "plan",
    config: dict[str, str] | None = None,
    require_resources: bool = True,
) -> Recording:
    """Run ``program`` (a function that declares resources) under the mock runtime and return the recording.

    ``config`` keys are full Pulumi config keys (``"<project>:key"``, ``"aws:region"``), values strings.
    Raises AssertionError when the program registered nothing and ``require_resources`` is set: a test that
    forgot to build anything must fail, not pass.
    """
    recording = Recording(project=project, stack=stack)
    with _run_lock:  # the Pulumi runtime settings are process-global
        mocks = RecordingMocks(recording)
        monitor = RecordingMonitor(mocks, recording)
        cfg = {"aws:region": DEFAULT_REGION}
        cfg.update(config or {})
        pulumi.runtime.set_all_config(cfg)
        # a fresh root stack per run: otherwise one program's exports (or failing export) leak into the next
        from pulumi.runtime import settings as _settings

        _settings.ROOT.set(None)
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
        captured: dict[str, Any] = {}

        @pulumi.runtime.test
        def _main():
            captured["result"] = program()
            # pulumi.export() values live on the root stack resource; the mock engine never registers
            # them, so resolve them here (remembering which ones are secret)
            root = pulumi.runtime.get_root_resource()
            exported = dict(getattr(root, "outputs", {}) or {})

            async def _collect() -> None:
                for key, value in exported.items():
                    out = pulumi.Output.from_input(value)
                    plain = await out.future(with_unknowns=True)
                    secret = await out.is_secret()
                    recording.stack_outputs[key] = (
                        {SECRET_SIG: SECRET_VALUE_SIG, "value": plain} if secret else plain
                    )

            import asyncio

            return pulumi.Output.from_input(asyncio.ensure_future(_collect())).apply(
                lambda _: captured.get("result")
            )

        try:
            _main()
        finally:
            pulumi.runtime.set_all_config({})
    if require_resources and not recording.resources:
        raise AssertionError("the program registered no resources under the mock runtime")
    return recording

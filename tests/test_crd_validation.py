"""The CRD helper (tests/support/crds.py) accepts the agreed Karpenter and JobSet shapes and rejects bad
objects the way the API server would: schema types and enums, unknown fields, required fields, CEL rules."""

from __future__ import annotations

import pytest

from tests.support import crds
from tests.support import karpenter_objects as ko


@pytest.mark.parametrize(
    "obj",
    [
        ko.ec2_node_class(),
        ko.ec2_node_class(alias="bottlerocket@latest"),
        ko.node_pool(),
        ko.node_pool(
            "h100",
            instance_types=["p5.48xlarge"],
            capacity_types=("on-demand",),
            limits={"nvidia.com/gpu": "16"},
            sharing={"mlstack.dev/gpu-sharing": "mig", "nvidia.com/mig.config": "all-1g.10gb"},
        ),
        ko.node_pool(
            "t4-shared",
            families=["g4dn"],
            sharing={"mlstack.dev/gpu-sharing": "time-slicing", "mlstack.dev/gpu-replicas": "4"},
            extra_requirements=[
                {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}
            ],
        ),
        ko.node_claim(),
        ko.jobset(),
    ],
    ids=[
        "nodeclass",
        "nodeclass-bottlerocket",
        "nodepool",
        "nodepool-mig",
        "nodepool-timeslicing",
        "nodeclaim",
        "jobset",
    ],
)
def test_agreed_shapes_are_valid(obj: dict) -> None:
    crds.assert_valid(obj)


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        # schema: enum, type, pattern, required, unknown field (strict), nested unknown field
        (ko.edited(ko.ec2_node_class(), "spec.metadataOptions.httpTokens", "sometimes"), "httpTokens"),
        (
            ko.edited(ko.ec2_node_class(), "spec.metadataOptions.httpPutResponseHopLimit", "one"),
            "is not of type",
        ),
        (ko.edited(ko.node_pool(), "spec.template.spec.expireAfter", "2 weeks"), "does not match"),
        (
            ko.edited(ko.node_pool(), "spec.template.spec.nodeClassRef", {"name": "gpu"}),
            "'group' is a required",
        ),
        (
            ko.edited(ko.node_pool(), "spec.template.spec.instanceTypes", ["g5.xlarge"]),
            "Additional properties",
        ),
        (ko.edited(ko.ec2_node_class(), "spec.metadataOptions.hopLimit", 1), "Additional properties"),
        (ko.edited(ko.node_pool(), "spec.template.spec.taints.0.effect", "NoScheduleAtAll"), "effect"),
        (
            ko.edited(ko.jobset(), "spec.replicatedJobs.0.template.spec.template.spec.containers.0.gpu", 1),
            "Additional properties",
        ),
        (ko.edited(ko.jobset(), "spec.successPolicy.operator", "Most"), "operator"),
        # CEL: restricted requirement keys, In without values, alias + amiFamily rules, exactly one of role/profile
        (
            ko.node_pool(
                extra_requirements=[{"key": "karpenter.sh/instance-gpus", "operator": "In", "values": ["1"]}]
            ),
            'label domain "karpenter.sh" is restricted',
        ),
        (
            ko.node_pool(
                extra_requirements=[
                    {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": []}
                ]
            ),
            "requirements with operator 'In' must have a value defined",
        ),
        (
            ko.edited(ko.ec2_node_class(), "spec.instanceProfile", "KarpenterNodeProfile"),
            "must specify exactly one of",
        ),
        (
            ko.edited(ko.ec2_node_class(), "spec.amiSelectorTerms.0.alias", "ubuntu@latest"),
            "amiSelectorTerms",
        ),
        # metadata
        (ko.edited(ko.node_pool(), "metadata.name", "GPU_pool"), "not a DNS subdomain"),
        (ko.edited(ko.node_pool(), "metadata.labels", {"mlstack.dev/gpu": True}), "value must be a string"),
        # apiVersion / kind
        (ko.edited(ko.node_pool(), "apiVersion", "karpenter.sh/v1beta1"), "not in the pinned CRD"),
        (ko.edited(ko.node_pool(), "kind", "Provisioner"), "no pinned CRD for Provisioner"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_objects_are_rejected(obj: dict, needle: str) -> None:
    problems = crds.validate(obj)
    assert problems, "accepted a bad object"
    assert any(needle in p for p in problems), problems


def test_cel_rules_run_only_on_schema_valid_objects_and_skip_transition_rules() -> None:
    # NodeClaim's nodeClassRef.group/kind rules compare with oldSelf: not checked on create
    assert crds.validate(ko.node_claim()) == []
    bad = ko.edited(ko.node_claim(), "spec.requirements.0.operator", "Gte")
    assert any("no values" in p or "requirements" in p for p in crds.validate(bad)), crds.validate(bad)


def test_defaults_are_applied_before_validation() -> None:
    nc = ko.ec2_node_class()
    del nc["spec"]["metadataOptions"]
    s = crds.schema(nc["apiVersion"], nc["kind"])
    withdefaults = crds.apply_defaults(nc, s)
    assert withdefaults["spec"]["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpProtocolIPv6": "disabled",
        "httpPutResponseHopLimit": 1,
        "httpTokens": "required",
    }
    assert "metadataOptions" not in nc["spec"]  # a copy
    assert crds.validate(nc) == []


def test_strictness_follows_preserve_unknown_fields() -> None:
    s = {
        "type": "object",
        "properties": {
            "open": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"a": {"type": "string"}},
            },
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
            "ios": {"x-kubernetes-int-or-string": True},
        },
    }
    import jsonschema

    v = jsonschema.Draft4Validator(crds.to_json_schema(s))
    assert not list(v.iter_errors({"open": {"a": "x", "b": 1}, "map": {"k": "v"}, "ios": 3}))
    assert not list(v.iter_errors({"ios": "50%"}))
    assert list(v.iter_errors({"closed": {"a": "x", "b": 1}}))
    assert list(v.iter_errors({"ios": 1.5}))
    assert list(v.iter_errors({"map": {"k": 1}}))

"""Bad and good programs for the Karpenter policy rules (KARP-*), merged into test_policy_rules.CASES.

Every object is also valid against the pinned CRDs: the rules flag what the API server would accept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import crds
from tests.support import karpenter_objects as ko


def _cr(obj: dict[str, Any]) -> Callable[[], None]:
    def prog() -> None:
        import pulumi_kubernetes as k8s

        crds.assert_valid(obj)
        k8s.apiextensions.CustomResource(
            obj["metadata"]["name"],
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=obj["metadata"],
            spec=obj["spec"],
        )

    return prog


_NO_METADATA_OPTIONS = ko.ec2_node_class()
del _NO_METADATA_OPTIONS["spec"]["metadataOptions"]  # the CRD defaults it to required / hop limit 1
_NO_MAPPINGS = ko.ec2_node_class()
del _NO_MAPPINGS["spec"]["blockDeviceMappings"]  # al2023: Karpenter's default volumes are encrypted
_CUSTOM_NO_MAPPINGS = ko.edited(_NO_MAPPINGS, "spec.amiFamily", "Custom")
_CUSTOM_NO_MAPPINGS["spec"]["amiSelectorTerms"] = [{"tags": {"mlstack.dev/ami": "gpu"}}]
_UNENCRYPTED_DATA = ko.ec2_node_class(
    alias="bottlerocket@latest",
    block_device_mappings=[
        {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True}},
        {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": "200Gi", "volumeType": "gp3"}},
    ],
)

KARPENTER_CASES: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "KARP-001": (
        _cr(ko.ec2_node_class(metadata_options={"httpTokens": "optional", "httpPutResponseHopLimit": 1})),
        _cr(_NO_METADATA_OPTIONS),
    ),
    "KARP-002": (
        _cr(ko.ec2_node_class(metadata_options={"httpTokens": "required", "httpPutResponseHopLimit": 2})),
        _cr(ko.ec2_node_class()),
    ),
    "KARP-003": (_cr(_UNENCRYPTED_DATA), _cr(_NO_MAPPINGS)),
    "KARP-004": (_cr(ko.node_pool(limits={})), _cr(ko.node_pool())),
}

# more bad shapes that must fire (beyond the one bad program per rule)
EXTRA_BAD: list[tuple[str, Callable[[], Any]]] = [
    ("KARP-003", _cr(_CUSTOM_NO_MAPPINGS)),
    (
        "KARP-003",
        _cr(
            ko.ec2_node_class(
                block_device_mappings=[
                    {
                        "deviceName": "/dev/xvda",
                        "rootVolume": True,
                        "ebs": {"volumeSize": "100Gi", "volumeType": "gp3", "encrypted": False},
                    }
                ]
            )
        ),
    ),
]

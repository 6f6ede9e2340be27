"""The recording monitor itself: it must see inputs, options, parents and component outputs."""

from __future__ import annotations

import pytest


def test_records_inputs_options_parents_and_outputs(pulumi_run) -> None:
    import pulumi
    import pulumi_aws as aws

    class Box(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__("mlstack:test:Box", name)
            self.bucket = aws.s3.Bucket(
                f"{name}-b", opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=True)
            )
            self.key = aws.kms.Key(
                f"{name}-k", enable_key_rotation=True, opts=pulumi.ResourceOptions(parent=self)
            )
            self.register_outputs({"bucket_name": self.bucket.bucket, "secret": pulumi.Output.secret("s")})

    def program() -> None:
        box = Box("x")
        pulumi.export("bucket", box.bucket.bucket)

    rec = pulumi_run(program)
    box = rec.one("mlstack:test:Box")
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert bucket.parent == box.urn
    assert bucket.options["retainOnDelete"] and bucket.options["protect"]
    assert rec.one("aws:kms/key:Key").inputs["enableKeyRotation"] is True
    assert box.outputs is not None and box.outputs["bucket_name"] == "x-b"
    from mlstack.plan.mock_runtime import is_secret

    assert is_secret(box.outputs["secret"])
    assert rec.stack_outputs["bucket"] == "x-b"


def test_an_empty_program_fails(pulumi_run) -> None:
    with pytest.raises(AssertionError, match="no resources"):
        pulumi_run(lambda: None)


def test_records_aliases(pulumi_run) -> None:
    import pulumi
    import pulumi_aws as aws

    def program() -> None:
        aws.kms.Key("k", opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-k")]))

    rec = pulumi_run(program)
    assert {"name": "old-k"} in rec.one("aws:kms/key:Key").options["aliases"]


def test_exported_secrets_stay_marked(pulumi_run) -> None:
    import pulumi
    import pulumi_aws as aws

    from mlstack.plan.mock_runtime import is_secret

    def program() -> None:
        aws.kms.Key("k")
        pulumi.export("plain", "v")
        pulumi.export("hidden", pulumi.Output.secret("pk"))

    rec = pulumi_run(program)
    assert rec.stack_outputs["plain"] == "v"
    assert is_secret(rec.stack_outputs["hidden"])


def test_invokes_are_answered(pulumi_run) -> None:
    import pulumi_aws as aws

    def program() -> None:
        ident = aws.get_caller_identity_output()
        aws.kms.Key("k", description=ident.account_id)

    rec = pulumi_run(program)
    assert rec.one("aws:kms/key:Key").inputs["description"] == "123456789012"
    assert rec.invokes and rec.invokes[0][0] == "aws:index/getCallerIdentity:getCallerIdentity"


def test_runs_do_not_share_exports(pulumi_run) -> None:
    import pulumi
    import pulumi_aws as aws

    def first() -> None:
        aws.kms.Key("k1")
        pulumi.export("only_in_first", "x")

    def second() -> None:
        aws.kms.Key("k2")

    pulumi_run(first)
    assert "only_in_first" not in pulumi_run(second).stack_outputs

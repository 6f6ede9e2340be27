"""Steps that ask for a GPU slice: ``@step(gpus=1, node_pool=..., gpu_resource=...)`` on Argo (issue #14)."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("hera")

from mlstack import manifest
from mlstack.errors import UsageError
from mlstack.pipeline import step
from mlstack.pipeline.argo import to_workflow_template
from tests.pipeline.test_argo import EKS_MANIFEST

SLICES = """
pipeline = Pipeline("slices")

@pipeline.step(gpus=1, node_pool="t4-shared", gpu_resource="nvidia.com/gpu.shared")
def sliced():
    return 1

@pipeline.step(gpus=2, node_pool="a100-mig", gpu_resource="nvidia.com/mig-1g.5gb")
def mig(sliced):
    return sliced

@pipeline.step(gpus=1, nodes=2, node_pool="h100")
def train(mig):
    return mig

@pipeline.step(node_pool="a10g")
def cpu_on_pool(train):
    return train
"""


def _render(write_pipeline) -> dict:
    from mlstack.pipeline import load

    f = write_pipeline(SLICES)
    return yaml.safe_load(to_workflow_template(load(f), manifest=manifest.from_dict(EKS_MANIFEST)).to_yaml())


def _t(doc: dict, name: str) -> dict:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def test_slice_steps_request_the_shared_resource_on_their_pool(local_home, write_pipeline) -> None:
    import json

    import kubernetes_validate

    doc = _render(write_pipeline)
    sliced = _t(doc, "sliced")
    res = sliced["container"]["resources"]
    assert res["limits"] == {"nvidia.com/gpu.shared": "1"} and "nvidia.com/gpu" not in res.get("requests", {})
    assert sliced["nodeSelector"] == {"mlstack.io/role": "gpu", "mlstack.dev/node-pool": "t4-shared"}
    assert sliced["tolerations"] == EKS_MANIFEST["compute"]["gpu"]["tolerations"]
    mig = _t(doc, "mig")
    assert mig["container"]["resources"]["limits"] == {"nvidia.com/mig-1g.5gb": "2"}
    assert mig["nodeSelector"]["mlstack.dev/node-pool"] == "a100-mig"
    # a CPU step pinned to a pool tolerates the GPU taint (else it could never land there), requests no GPU
    cpu = _t(doc, "cpu-on-pool")
    assert cpu["nodeSelector"]["mlstack.dev/node-pool"] == "a10g" and cpu["tolerations"]
    assert "resources" not in cpu["container"] or "nvidia.com/gpu" not in json.dumps(
        cpu["container"]["resources"]
    )
    # the multi-node step's JobSet pods go to their pool too
    js = json.loads(_t(doc, "train")["resource"]["manifest"])
    pod = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"mlstack.io/role": "gpu", "mlstack.dev/node-pool": "h100"}
    for t in (sliced, mig, cpu):
        c = dict(t["container"], name="main")
        c["args"] = [str(a) for a in c.get("args", [])]
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": t["name"]},
                "spec": {
                    "containers": [c],
                    "nodeSelector": t["nodeSelector"],
                    "tolerations": t["tolerations"],
                    "volumes": doc["spec"]["volumes"],
                },
            },
            "1.35.0",
            strict=True,
        )


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        (
            {"gpus": 2, "gpu_resource": "nvidia.com/gpu.shared"},
            "a time-sliced pool gives one slice per container",
        ),
        ({"gpus": 0, "gpu_resource": "nvidia.com/mig-1g.10gb"}, "set gpus to the count to request"),
        ({"gpus": 1, "gpu_resource": "gpu"}, "an extended resource name such as 'nvidia.com/gpu.shared'"),
        ({"gpus": 1, "node_pool": "T4_Shared"}, "node_pool='T4_Shared': a pool name"),
    ],
)
def test_bad_slice_requests_are_errors_naming_the_key(kw, needle) -> None:
    with pytest.raises(UsageError) as exc:
        step(name="s", **kw)(lambda: None)
    assert needle in exc.value.message


def test_the_default_stays_whole_gpus_from_the_manifest(local_home, write_pipeline) -> None:
    from mlstack.pipeline import load

    f = write_pipeline('pipeline = Pipeline("p")\n\n@pipeline.step(gpus=1)\ndef t():\n    return 1\n')
    doc = yaml.safe_load(to_workflow_template(load(f), manifest=manifest.from_dict(EKS_MANIFEST)).to_yaml())
    t = _t(doc, "t")
    assert t["container"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert t["nodeSelector"] == {"mlstack.io/role": "gpu"}

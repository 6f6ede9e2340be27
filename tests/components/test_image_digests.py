"""Every image the stacks run is pinned as ``tag@sha256:<64 hex>``, and versions.py says where each came from.

Walks every recorded input of every shipped stack (workloads' ``image`` fields anywhere, the Argo chart's
image values) so a new image added without a digest fails here, not in review.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mlstack.plan.mock_runtime import unwrap_secrets

REPO = Path(__file__).resolve().parents[2]
PINNED = re.compile(r"^[a-z0-9.\-/:_]+:[A-Za-z0-9._\-]+@sha256:[0-9a-f]{64}$")
TAG_PINNED = re.compile(r"^[A-Za-z0-9._\-]+@sha256:[0-9a-f]{64}$")
STACKS = ("stacks/aws-lakehouse", "stacks/aws-snowflake", "stacks/aws-databricks", "examples/platform-repo")


def _images(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, image) for every ``image`` string and every chart image block found in ``value``."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}.{k}" if path else str(k)
            if k == "image" and isinstance(v, str):
                out.append((p, v))
            elif k == "image" and isinstance(v, dict) and ("repository" in v or "tag" in v):
                repo = "/".join(x for x in (v.get("registry"), v.get("repository")) if x)
                out.append((p, f"{repo or 'chart-default'}:{v.get('tag') or ''}"))
            else:
                out.extend(_images(v, p))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_images(v, f"{path}[{i}]"))
    return out


@pytest.fixture(scope="module", params=STACKS)
def plan(request: pytest.FixtureRequest) -> Any:
    from mlstack.plan import run_plan

    return run_plan(REPO / request.param, None)


def test_every_recorded_image_carries_a_digest(plan: Any) -> None:
    found = []
    for r in plan.recording.resources:
        if not r.type.startswith("kubernetes:"):
            continue
        for path, image in _images(unwrap_secrets(r.inputs)):
            found.append((r.name, path, image))
    assert found, "no images recorded: the walk found nothing to check"
    bad = [f for f in found if not PINNED.match(f[2])]
    assert not bad, "\n".join(f"{n} {p}: {i}" for n, p, i in bad)


def test_the_argo_chart_runs_only_pinned_images(plan: Any) -> None:
    rel = [r for r in plan.recording.resources if r.type == "kubernetes:helm.sh/v3:Release"]
    for r in rel:
        values = unwrap_secrets(r.inputs)["values"]
        tags = [values[p]["image"]["tag"] for p in ("controller", "server", "executor")]
        tags.append(values["crds"]["upgradeJob"]["image"]["tag"])
        assert all(TAG_PINNED.match(t) for t in tags), tags


def test_the_walk_catches_an_unpinned_image() -> None:
    """Guard: an image without a digest, anywhere in the inputs, is found and refused."""
    inputs = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}
    ((path, image),) = _images(inputs)
    assert path.endswith("containers[0].image") and not PINNED.match(image)
    assert _images({"controller": {"image": {"registry": "quay.io", "repository": "a/b", "tag": "v1"}}}) == [
        ("controller.image", "quay.io/a/b:v1")
    ]


def test_every_digest_has_its_source_and_date_beside_it() -> None:
    for f in ("components/compute/versions.py", "components/orchestrator/versions.py"):
        text = (REPO / f).read_text()
        digests = re.findall(r"sha256:[0-9a-f]{64}", text)
        assert digests, f
        assert "Recorded 2026-" in text or "recorded 2026-" in text, f"{f}: no recording date"
        assert "github.com/" in text or "search tool" in text, f"{f}: no source"

"""The run report (`mlstack runs show RUN --html FILE`): cards written by steps on every store tier, the page's
content and safety, and the page opened in headless Chromium (DOM checks and a screenshot's pixels)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import mlstack.runs as runs
from mlstack.pipeline import load
from mlstack.pipeline.local import LocalRunner
from mlstack.runs import _report
from tests.test_card import png

# a solid 160x100 magenta PNG: the card image the screenshot must show
MAGENTA = (255, 0, 255)

FLOW = """
import base64, os
import mlstack
import mlstack.artifacts as artifacts
import mlstack.run

pipeline = Pipeline("report", params={"xs": [1, 2], "fail": True})

@pipeline.step
def prepare():
    mlstack.run.record_input("table", "customers", "4", source="test")
    mlstack.card.markdown(
        "## Data quality\\nRows: **42**, nulls: `0`\\n\\n<script>document.title='pwned'</script>\\n\\n"
        "<img src=x onerror=\\"document.title='pwned'\\">\\n\\n"
        "[bad](javascript:alert(1)) [docs](https://example.com/docs) ![remote](https://example.com/x.png)\\n\\n"
        "| col | n |\\n|---|---|\\n| a | 1 |"
    )
    mlstack.card.table([{"metric": "auc", "value": 0.912345678}, {"metric": "loss", "value": 0.3}], title="metrics")
    return {"rows": 42}

@pipeline.step(foreach="xs")
def train(prepare, xs):
    v = artifacts.put("model", f"model {xs}".encode())
    mlstack.card.image(base64.b64decode(os.environ["CARD_PNG"]), title=f"curve {xs}")
    return {"x": xs, "version": v.version}

@pipeline.step
def evaluate(train, fail):
    best = max(train, key=lambda r: r["x"])
    artifacts.promote("model", best["version"], "production", when=not fail, reason="gate: fail=" + str(fail))
    mlstack.card.markdown(f"best branch: **{best['x']}**")
    if fail:
        print("evaluation failed: the gate said no")
        raise RuntimeError("below the threshold")
    return best

@pipeline.step
def publish(evaluate):
    return evaluate
"""


def test_cards_live_where_the_run_store_reserved_them() -> None:
    from mlstack.card import CARDS
    from mlstack.runs._store import RECORDS

    assert CARDS.format(run="r1") == f"{RECORDS}r1/cards/"


@pytest.fixture
def card_png(monkeypatch: pytest.MonkeyPatch) -> bytes:
    data = png(160, 100, MAGENTA)
    monkeypatch.setenv("CARD_PNG", base64.b64encode(data).decode())
    return data


def _run(pipeline_file, params=None):
    result = LocalRunner(max_parallel=2).run(load(pipeline_file(FLOW)), params or {})
    assert result.record_errors == []
    return runs.get(result.run_id)


def test_cards_are_stored_with_the_run_and_reported_on_every_tier(
    stack, pipeline_file, cli, card_png, tmp_path
) -> None:
    run = _run(pipeline_file)
    assert run.status == "failed"
    cards = _report.cards_of(run)
    assert sorted(cards) == ["evaluate", "prepare", "train[0]", "train[1]"]
    assert [i["type"] for i in cards["prepare"]["items"]] == ["markdown", "table"]
    (img,) = cards["train[1]"]["items"]
    assert img["width"] == 160 and img["height"] == 100 and run.store.get_blob(img["blob"]) == card_png

    out = tmp_path / "out" / "report.html"
    code, stdout, err = cli("runs", "show", "latest", "--html", str(out))
    assert code == 0, err
    assert f"Report: {out}" in stdout
    page = out.read_text()
    # the DAG: every step drawn with its status; the fan-out step with one dot per branch
    nodes = dict(re.findall(r'<g class="node" data-step="([^"]+)" data-status="([^"]+)"', page))
    assert nodes == {"prepare": "succeeded", "train": "succeeded", "evaluate": "failed", "publish": "skipped"}
    assert (
        len(re.findall(r'<circle class="branch" data-label="train\[\d\]" data-status="succeeded"', page)) == 2
    )
    # the timeline: a bar per step and branch that ran
    bars = re.findall(r'<g class="bar" data-label="([^"]+)" data-status="([^"]+)"', page)
    assert bars == [
        ("prepare", "succeeded"),
        ("train[0]", "succeeded"),
        ("train[1]", "succeeded"),
        ("evaluate", "failed"),
    ]
    # params, results, the failed step's log tail
    assert "<td>fail</td><td>true</td>" in page
    assert "evaluation failed: the gate said no" in page and "RuntimeError: below the threshold" in page
    assert "evaluate: failed, exit code 1" in page
    assert "{&quot;rows&quot;: 42}" in page
    # lineage: read at its version -> steps -> written with versions, the gate's decision and why
    assert 'data-text="customers@4"' in page
    assert 'data-text="model@1"' in page and 'data-text="model@2"' in page
    best = run.steps["train[1]"].result["version"]  # the branches ran in parallel: either got version 1
    assert f"model:production not moved to v{best}" in page and "gate: fail=True" in page
    # cards: Markdown rendered, tables, the image embedded as a data: URI of the very bytes the step gave
    assert "<h2>Data quality</h2>" in page and "<strong>42</strong>" in page and "<code>0</code>" in page
    assert "<caption>metrics</caption>" in page and '<td class="num">0.912346</td>' in page
    assert f"data:image/png;base64,{base64.b64encode(card_png).decode()}" in page
    # safety: raw HTML is text, unsafe links are not links, no remote image, nothing fetched
    assert (
        "<script>document.title" not in page and "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in page
    )
    assert "<img src=x" not in page and 'href="javascript' not in page.lower()
    assert '<a href="https://example.com/docs">docs</a>' in page
    assert not re.search(r'<(img|script|link|iframe)[^>]+(src|href)="(https?:)?//', page)
    assert "Content-Security-Policy" in page and "img-src data:" in page


def test_json_show_names_the_report_and_a_retry_keeps_only_the_last_attempts_card(
    local_stack, pipeline_file, cli, tmp_path
) -> None:
    f = pipeline_file(
        """
import os
from pathlib import Path
import mlstack

pipeline = Pipeline("retry")

@pipeline.step(retries=1)
def flaky():
    marker = Path(os.environ["MARKER"])
    first = not marker.exists()
    marker.write_text("x")
    mlstack.card.markdown("attempt one" if first else "attempt two")
    if first:
        raise SystemExit(1)
    return 1
"""
    )
    os.environ["MARKER"] = str(tmp_path / "marker")
    try:
        result = LocalRunner().run(load(f), {})
    finally:
        del os.environ["MARKER"]
    assert result.ok
    run = runs.get(result.run_id)
    (item,) = _report.cards_of(run)["flaky"]["items"]
    assert item["text"] == "attempt two"
    code, out, err = cli("runs", "show", result.run_id, "--html", str(tmp_path / "r.html"), "--json")
    assert code == 0, err
    assert json.loads(out)["report"] == str(tmp_path / "r.html")
    assert "attempt two" in (tmp_path / "r.html").read_text()


def test_a_corrupt_card_is_reported_and_the_rest_of_the_page_stands(
    local_stack, pipeline_file, card_png
) -> None:
    run = _run(pipeline_file, {"fail": "false"})
    assert run.status == "succeeded"
    run.store.backend.replace_doc(
        f"runs/records/{run.id}/cards/prepare.json",
        b"{not json",
        run.store.backend.read_doc(f"runs/records/{run.id}/cards/prepare.json")[1],
    )
    page = _report.render(runs.get(run.id))
    assert "card unreadable" in page and "curve 1" in page
    best = run.steps["train[1]"].result["version"]
    assert f"model:production -&gt; v{best}" in page  # the gate moved it this time


ARGO_FLOW = """
import mlstack

pipeline = Pipeline("wfc", params={"xs": [1, 2, 3], "k": 10}, image="ghcr.io/acme/ml:1")

@pipeline.step
def start(k):
    mlstack.card.markdown("start in a pod")
    return {"k": k}

@pipeline.step(foreach="xs")
def branch(start, xs):
    mlstack.card.table([{"xs": xs, "value": start["k"] * xs}])
    return start["k"] * xs
"""


def test_cards_from_argo_pods_land_on_their_branch(local_stack, pipeline_file, monkeypatch, tmp_path) -> None:
    from tests.runs.test_argo_runs import Pods

    monkeypatch.setattr("mlstack.card._current", None)
    pods = Pods(pipeline_file(ARGO_FLOW), "wfc-abc12", monkeypatch, tmp_path / "out")
    pods.env["MLSTACK_PIPELINE"] = "wfc"
    assert pods("start", "--param", "k=10") == 0
    start = pods.result()
    # Argo gives every branch pod MLSTACK_STEP=branch; the pod finds its branch, and its card goes there
    assert [pods("branch", "--input", f"start={start}", "--item", str(x)) for x in (3, 1, 2)] == [0, 0, 0]
    assert pods.exit("Succeeded") == 0
    run = runs.get("wfc-abc12")
    cards = _report.cards_of(run)
    assert sorted(cards) == ["branch[0]", "branch[1]", "branch[2]", "start"]
    assert cards["branch[2]"]["items"][0]["rows"] == [[3, 30]]
    page = _report.render(run)
    assert "start in a pod" in page and "argo wfc-abc12" not in page  # namespace shown: ml-jobs/wfc-abc12
    assert "ml-jobs/wfc-abc12" in page


@pytest.mark.parametrize(
    ("md", "absent", "present"),
    [
        ("<b onmouseover=x>hi</b>", "<b ", "&lt;b onmouseover=x&gt;hi&lt;/b&gt;"),
        ("[x](javascript:alert(1))", "<a", "[x](javascript:alert(1))"),
        ("[x](vbscript:msgbox)", "<a", "[x]"),
        ("[x](data:text/html,hi)", "<a", "[x]"),
        ("![img](http://evil.example/x.png)", "<img", "img"),
        ("<iframe src='https://evil.example'></iframe>", "<iframe", "&lt;iframe"),
        ("[ok](#cards)", "javascript", '<a href="#cards">ok</a>'),
    ],
)
def test_markdown_is_rendered_safely(md: str, absent: str, present: str) -> None:
    out = _report.markdown_html(md)
    assert absent not in out and present in out


# ---------------------------------------------------------------- in a real browser
def _chromium() -> str:
    exe = next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (apt-get install -y chromium); CI must run this test")
        pytest.skip("chromium is not installed")
    return exe


def _browse(exe: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--metrics-recording-only",
            "--force-color-profile=srgb",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )


@pytest.mark.chromium
def test_report_in_headless_chromium_shows_the_dag_and_a_card(
    local_stack, pipeline_file, cli, card_png, tmp_path
) -> None:
    exe = _chromium()
    run = _run(pipeline_file)
    page = tmp_path / "report.html"
    code, _, err = cli("runs", "show", run.id, "--html", str(page))
    assert code == 0, err

    dom = _browse(exe, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-ready="1"' in html, "the page's script did not run"
    assert 'data-nodes-drawn="4"' in html and 'data-cards-drawn="4"' in html
    assert re.search(r'<g class="node" data-step="evaluate" data-status="failed"', html)
    assert "<title>report · " in html and "pwned" not in html.split("</title>")[0]  # no card script ran

    shot = tmp_path / "report.png"
    res = _browse(exe, tmp_path, f"--screenshot={shot}", "--window-size=1400,3400", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)  # rows x columns x RGB
    fail_red = _report.COLOURS["failed"][0]
    ok_green = _report.COLOURS["succeeded"][0]
    rgb = {
        name: tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))
        for name, c in (("red", fail_red), ("green", ok_green))
    }

    def bands(colour: tuple[int, int, int], min_px: int = 60) -> list[tuple[int, int]]:
        """(first row, height) of each band of consecutive screenshot rows holding ``min_px`` pixels of
        ``colour``: a DAG box is 58 rows tall, a lineage box 28, a timeline bar 15, a card image 100."""
        near = (np.abs(pixels - np.array(colour, dtype=np.int16)) <= 8).all(axis=2)
        per_row = near.sum(axis=1)
        out: list[tuple[int, int]] = []
        start = None
        for y in range(len(per_row) + 1):
            hit = y < len(per_row) and per_row[y] >= min_px
            if hit and start is None:
                start = y
            elif not hit and start is not None:
                out.append((start, y - start))
                start = None
        return out

    # the DAG: a failed box and succeeded boxes, solid fills 58 px tall (nothing else on the page is as tall)
    red = [b for b in bands(rgb["red"]) if 50 <= b[1] <= 66]
    green = [b for b in bands(rgb["green"]) if 50 <= b[1] <= 66]
    assert red and green, (
        f"no DAG box on the screenshot: red {bands(rgb['red'])}, green {bands(rgb['green'])}"
    )
    assert red[0][0] == green[0][0], "the DAG's boxes are not side by side"
    # a card: the 160x100 magenta image each train branch added, below the DAG
    magenta = [b for b in bands(MAGENTA, 150) if 95 <= b[1] <= 105]
    assert len(magenta) == 2, f"card images not drawn: {bands(MAGENTA, 150)}"
    assert magenta[0][0] > red[0][0]
    keep = os.environ.get("MLSTACK_REPORT_SCREENSHOT")
    if keep:  # CI can keep the picture as an artifact
        shutil.copy(shot, keep)

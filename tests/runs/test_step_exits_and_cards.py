"""Two gaps of the run records: a step's cards in `runs show --json` and the client, and steps that fail
without an Exception (sys.exit() in user code, Ctrl-C) keeping what they wrote before failing."""

from __future__ import annotations

import json

import pytest

import mlstack.runs as runs
from mlstack.pipeline import load
from mlstack.pipeline.local import LocalRunner
from tests.runs.conftest import cli_json
from tests.runs.test_report import FLOW as CARD_FLOW
from tests.runs.test_report import card_png  # noqa: F401  (fixture)


def test_runs_show_json_and_the_client_list_each_steps_card(local_stack, pipeline_file, cli, card_png) -> None:  # noqa: F811
    result = LocalRunner(max_parallel=2).run(load(pipeline_file(CARD_FLOW)), {})
    assert result.record_errors == []
    run = runs.get(result.run_id)

    # the client: each step (and branch) its card's items; none where a step added nothing
    assert [i["type"] for i in run.steps["prepare"].cards] == ["markdown", "table"]
    assert run.steps["prepare"].cards[1]["rows"] == [["auc", 0.912345678], ["loss", 0.3]]
    (img,) = run.steps["train[1]"].cards
    assert img["type"] == "image" and run.store.get_blob(img["blob"]) == card_png
    assert run.steps["evaluate"].cards[0]["text"] == "best branch: **2**"  # stored before the step failed
    assert run.steps["publish"].card is None and run.steps["publish"].cards == []
    assert run.steps["train"].card is None  # the fan-out step's cards are its branches'
    assert sorted(run.cards) == ["evaluate", "prepare", "train[0]", "train[1]"]

    # `runs show --json`: the same items on each step object
    doc = cli_json(cli, "runs", "show", result.run_id)
    by = {(s["name"], s["branch"]): s for s in doc["steps"]}
    assert [i["type"] for i in by[("prepare", None)]["cards"]] == ["markdown", "table"]
    assert by[("train", 0)]["cards"][0]["title"] == "curve 1"
    assert by[("train", 1)]["cards"][0]["blob"] == img["blob"]
    assert "cards" not in by[("publish", None)]
    # and the plain text says which steps have cards and how to see them
    code, out, _ = cli("runs", "show", result.run_id)
    assert code == 0
    assert "prepare: 2 items (markdown, table)" in out and "train[1]: 1 items (image)" in out
    assert f"mlstack runs show {result.run_id} --html report.html" in out

    # a card that cannot be read is named, the rest still shows
    key = f"runs/records/{run.id}/cards/prepare.json"
    run.store.backend.replace_doc(key, b"{not json", run.store.backend.read_doc(key)[1])
    doc = cli_json(cli, "runs", "show", result.run_id)
    by = {(s["name"], s["branch"]): s for s in doc["steps"]}
    assert by[("prepare", None)]["cards"] == [] and "JSONDecodeError" in by[("prepare", None)]["cards_error"]
    assert by[("train", 1)]["cards"][0]["blob"] == img["blob"]


EXITS = """
import sys
import mlstack
import mlstack.artifacts as artifacts
import mlstack.run

pipeline = Pipeline("exits", params={"how": "exit3"})

@pipeline.step
def train(how):
    v = artifacts.put("model", b"weights")
    artifacts.promote("model", v.version, "candidate")
    mlstack.run.record_output("table", "scores", "7", rows=3, mode="append")
    mlstack.card.markdown("trained, about to leave")
    print("about to leave", flush=True)
    if how == "exit3":
        sys.exit(3)
    if how == "exit0":
        sys.exit(0)
    if how == "exit-text":
        sys.exit("no GPU today")
    if how == "interrupt":
        raise KeyboardInterrupt
    return 1

@pipeline.step
def after(train):
    return train
"""


@pytest.mark.parametrize(
    ("how", "code", "error"),
    [
        ("exit3", 3, "the step called sys.exit(3) before returning a result"),
        ("exit0", 1, "the step called sys.exit(0) before returning a result"),
        ("exit-text", 1, "the step exited: no GPU today"),
        ("interrupt", 130, "the step was interrupted (KeyboardInterrupt)"),
    ],
)
def test_a_step_leaving_by_sys_exit_or_ctrl_c_is_failed_and_keeps_what_it_wrote(
    local_stack, pipeline_file, how, code, error
) -> None:
    result = LocalRunner().run(load(pipeline_file(EXITS)), {"how": how})
    assert not result.ok and result.record_errors == []
    run = runs.get(result.run_id)
    assert run.status == "failed"
    train = run.steps["train"]
    assert (train.status, train.exit_code) == ("failed", code)
    assert run.steps["after"].status == "skipped"
    assert "about to leave" in train.doc["log_tail"] and error in train.doc["log_tail"]
    outs = {(o["type"], o["name"], o.get("version"), o.get("alias")) for o in run.outputs}
    assert outs == {
        ("artifact", "model", "1", None),
        ("alias", "model", "1", "candidate"),
        ("table", "scores", "7", None),
    }
    assert train.cards[0]["text"] == "trained, about to leave"


def test_an_argo_step_leaving_by_sys_exit_records_itself_failed_with_what_it_wrote(
    local_stack, pipeline_file, monkeypatch, tmp_path
) -> None:
    from tests.runs.test_argo_runs import Pods

    pods = Pods(pipeline_file(EXITS), "exits-x1y2z", monkeypatch, tmp_path / "out")
    pods.env["MLSTACK_PIPELINE"] = "exits"
    pods.env["MLSTACK_RUN_PARAMS"] = json.dumps([{"name": "how", "value": "exit3"}])
    assert pods("train", "--param", "how=exit3") == 3  # the pod's exit code is the step's
    assert pods.exit("Failed") == 0
    run = runs.get("exits-x1y2z")
    train = run.steps["train"]
    assert train.status == "failed" and "sys.exit(3)" in train.doc["error"]
    assert {(o["type"], o["name"]) for o in run.outputs} == {
        ("artifact", "model"),
        ("alias", "model"),
        ("table", "scores"),
    }

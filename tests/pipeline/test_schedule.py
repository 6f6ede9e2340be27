"""Schedules: cron and timezone checks (Argo's rules), CronWorkflow rendering (hera models, golden files), and
`mlstack schedule` / `schedule ls` / `schedule rm` against the fake Argo server (tests/support/argo.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hera")

from hera.workflows import CronWorkflow
from hera.workflows.models import CronWorkflow as CronWorkflowModel

from mlstack import manifest
from mlstack.cli.main import main
from mlstack.errors import BackendError, UsageError
from mlstack.pipeline import Pipeline, Schedule, load
from mlstack.pipeline.argo import ArgoRunner, to_cron_workflow, to_workflow_template
from mlstack.pipeline.schedule import CronError, parse_cron
from tests.pipeline.test_argo import EKS_MANIFEST, REPO, _check_golden


@pytest.fixture
def in_repo(local_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)  # the step command names the pipeline file relative to here
    return REPO


def _eks() -> manifest.Manifest:
    return manifest.from_dict(EKS_MANIFEST)


# ---------------------------------------------------------------- cron expressions, as Argo's controller reads them
@pytest.mark.parametrize(
    "expr",
    [
        "0 3 * * *",
        "*/15 9-17 * * MON-FRI",
        "0 0 1,15 * *",
        "5/20 * * * *",
        "0 0 * JAN-MAR,dec sun",
        "? * * * ?",
        "59 23 31 12 6",
        "0-59/30 0-23/6 1-31/10 1-12/3 0-6/2",
        "  0 3 * * *  ",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@every 1h30m",
        "@every 90s",
        "@every 1.5h",
    ],
)
def test_valid_cron_expressions_parse(expr: str) -> None:
    parse_cron(expr)
    Schedule(expr)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 3 * *", "has 4 fields, not 5"),
        ("0 0 3 * * *", "has 6 fields, not 5"),
        ("", "empty"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month 0 is out of range 1-31"),
        ("0 0 32 * *", "day of month 32 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 7", "day of week 7 is out of range 0-6 (Sunday is 0 or SUN)"),
        ("0 0 * * FUN", "day of week 'FUN' is not a number or a name (SUN, MON"),
        ("0 0 * FOO *", "month 'FOO' is not a number or a name (JAN"),
        ("-1 * * * *", "minute '-1' is not a number or a range"),
        ("1- * * * *", "minute '' is not a number"),
        ("*/0 * * * *", "step '0' must be a whole number above 0"),
        ("*/x * * * *", "step 'x' must be a whole number above 0"),
        ("*/5/2 * * * *", "more than one '/'"),
        ("1-2-3 * * * *", "more than one '-'"),
        ("5-1 * * * *", "range '5-1' starts after it ends"),
        ("1,,2 * * * *", "empty list item"),
        ("0 12 L * *", "day of month 'L' is not a number"),
        ("@fortnightly", "unknown descriptor"),
        ("@DAILY", "unknown descriptor"),
        ("@every", "@every needs a duration"),
        ("@every 5x", "'5x' is not a duration"),
        ("@every 0s", "above zero"),
        ("CRON_TZ=Asia/Tokyo 0 3 * * *", "Schedule(timezone=...)"),
    ],
)
def test_bad_cron_expressions_name_the_field_and_why(expr: str, says: str) -> None:
    with pytest.raises(CronError) as e:
        parse_cron(expr)
    assert says in str(e.value)
    with pytest.raises(UsageError) as u:
        Schedule(expr)
    assert says in u.value.message and "minute hour day-of-month month day-of-week" in (u.value.fix or "")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 3 * * *", "2026-01-01 02:59", "2026-01-01 03:00"),
        ("0 3 * * *", "2026-01-01 03:00", "2026-01-02 03:00"),  # strictly after
        ("5/20 * * * *", "2026-01-01 10:26", "2026-01-01 10:45"),  # a/n: from a to the end, every n
        ("0 0 * * MON", "2026-01-01 00:00", "2026-01-05 00:00"),  # 2026-01-01 is a Thursday
        # both day fields restricted: either matches (robfig/cron, like Vixie cron)
        ("0 0 1 * MON", "2026-01-05 00:00", "2026-01-12 00:00"),
        ("0 0 1 * MON", "2026-01-26 00:00", "2026-02-01 00:00"),
        # */2 is not '*': day 3 (odd days) wins over Monday the 5th
        ("0 0 */2 * MON", "2026-01-01 00:00", "2026-01-03 00:00"),
        # '*' day of month: the weekday must match too
        ("0 0 * * 1", "2026-01-01 00:00", "2026-01-05 00:00"),
        ("30 9 * FEB-MAR *", "2026-01-15 00:00", "2026-02-01 09:30"),
        ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"),
        ("@hourly", "2026-01-01 10:00", "2026-01-01 11:00"),
        ("@weekly", "2026-01-01 00:00", "2026-01-04 00:00"),  # Sunday
    ],
)
def test_next_fire_time_follows_robfig_cron(expr: str, after: str, expected: str) -> None:
    assert parse_cron(expr).next_after(_at(after)) == _at(expected)


def test_schedules_fire_in_their_timezone_and_every_is_an_interval() -> None:
    paris = Schedule("0 3 * * *", timezone="Europe/Paris")
    (t,) = paris.next_runs(after=_at("2026-01-01 00:00"))
    assert t.astimezone(UTC) == _at("2026-01-01 02:00")  # 03:00 CET
    (summer,) = paris.next_runs(after=_at("2026-07-01 00:00"))
    assert summer.astimezone(UTC) == _at("2026-07-01 01:00")  # 03:00 CEST
    two = Schedule(["0 3 * * *", "30 12 * * *"]).next_runs(after=_at("2026-01-01 04:00"), count=3)
    assert [x.astimezone(UTC) for x in two] == [
        _at("2026-01-01 12:30"),
        _at("2026-01-02 03:00"),
        _at("2026-01-02 12:30"),
    ]
    assert Schedule("@every 1h30m").next_runs(after=_at("2026-01-01 00:00")) == [
        _at("2026-01-01 00:00") + timedelta(minutes=90)
    ]


def test_schedule_checks_timezone_concurrency_and_deadline_together() -> None:
    s = Schedule(["0 3 * * *", "0 15 * * SAT"], timezone="America/New_York", concurrency="replace")
    assert s.concurrency == "Replace" and s.crons == ("0 3 * * *", "0 15 * * SAT")
    assert Schedule("@daily").timezone == "UTC" and Schedule("@daily").concurrency == "Forbid"
    with pytest.raises(UsageError) as e:
        Schedule("0 3 * * *", timezone="Mars/Olympus", concurrency="sometimes", starting_deadline=-5)
    msg = e.value.message
    assert "'Mars/Olympus' is not a known IANA timezone" in msg
    assert "concurrency='sometimes' is not one of Forbid, Allow, Replace" in msg
    assert "starting_deadline=-5" in msg
    assert "Europe/Paris" in (e.value.fix or "")
    for tz in ("Local", "", " UTC", "../etc/passwd"):
        with pytest.raises(UsageError, match="timezone"):
            Schedule("0 3 * * *", timezone=tz)
    with pytest.raises(UsageError, match="twice"):
        Schedule(["0 3 * * *", "0 3 * * *"])
    with pytest.raises(UsageError, match="cron is empty"):
        Schedule([])


def test_pipeline_schedule_errors_name_the_pipeline_and_the_param() -> None:
    with pytest.raises(UsageError) as e:
        Pipeline("nightly", schedule="0 3 * * 8")
    assert e.value.message.startswith("pipeline 'nightly': schedule: cron '0 3 * * 8': day of week 8")
    with pytest.raises(UsageError, match="not a cron expression or a Schedule"):
        Pipeline("nightly", schedule=3)
    with pytest.raises(UsageError) as e:
        Pipeline("nightly", params={"n": 1}, schedule=Schedule("@daily", params={"m": 2}))
    assert "'m'" in e.value.message and "n" in (e.value.fix or "")
    p = Pipeline("nightly", schedule=["0 3 * * *", "0 4 * * *"])
    assert p.schedule is not None and p.schedule.crons == ("0 3 * * *", "0 4 * * *")


# ---------------------------------------------------------------- CronWorkflow rendering
def _validate_cron(text: str) -> dict:
    doc = yaml.safe_load(text)
    CronWorkflowModel.model_validate(doc)  # hera's models, generated from Argo's OpenAPI
    assert CronWorkflow.from_yaml(text).to_yaml() == text  # and it round-trips
    return doc


@pytest.mark.parametrize("stack", ["local", "eks"])
def test_churn_cron_workflow_matches_golden_and_runs_the_template(in_repo, stack) -> None:
    mf = _eks() if stack == "eks" else manifest.local_default()
    pipe = load(REPO / "examples" / "churn")
    cron = to_cron_workflow(pipe, manifest=mf)
    text = cron.to_yaml()
    _check_golden(f"churn-cron-{stack}.yaml", text)
    doc = _validate_cron(text)
    template = yaml.safe_load(to_workflow_template(pipe, manifest=mf).to_yaml())
    assert doc["kind"] == "CronWorkflow" and doc["metadata"]["name"] == "churn"
    assert doc["metadata"]["namespace"] == template["metadata"]["namespace"]
    spec = doc["spec"]
    assert spec["schedules"] == ["0 3 * * *"] and spec["timezone"] == "UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    # by reference: the template's pod settings (service account, security context) are the runs' settings
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": template["metadata"]["name"]}
    assert "templates" not in spec["workflowSpec"] and "arguments" not in spec["workflowSpec"]
    assert spec["workflowSpec"]["workflowMetadata"]["labels"]["mlstack.io/pipeline"] == "churn"


def test_a_full_schedule_renders_every_setting(in_repo) -> None:
    sched = Schedule(
        ["0 3 * * MON-FRI", "30 6 * * SAT"],
        timezone="Europe/Paris",
        concurrency="replace",
        starting_deadline=600,
        params={"threshold": "0.9", "C": [1.0]},
        suspend=True,
    )
    cron = to_cron_workflow(load(REPO / "examples" / "churn"), manifest=_eks(), schedule=sched)
    text = cron.to_yaml()
    _check_golden("churn-cron-full-eks.yaml", text)
    spec = _validate_cron(text)["spec"]
    assert spec["schedules"] == ["0 3 * * MON-FRI", "30 6 * * SAT"]
    assert spec["timezone"] == "Europe/Paris" and spec["concurrencyPolicy"] == "Replace"
    assert spec["startingDeadlineSeconds"] == 600 and spec["suspend"] is True
    # params typed like their defaults, then passed as text (JSON for lists) like `run -p`
    args = {p["name"]: p["value"] for p in spec["workflowSpec"]["arguments"]["parameters"]}
    assert args == {"threshold": "0.9", "C": "[1.0]"}
    assert cron.params == {"threshold": 0.9, "C": [1.0]}


def test_a_pipeline_without_a_schedule_has_no_cron_workflow(write_pipeline) -> None:
    f = write_pipeline(
        """
pipeline = Pipeline("plain")

@pipeline.step
def one():
    return 1
"""
    )
    with pytest.raises(UsageError, match="has no schedule"):
        to_cron_workflow(load(f), manifest=manifest.local_default())
    with pytest.raises(UsageError, match="param 'nope'"):
        to_cron_workflow(load(f), manifest=manifest.local_default(), schedule="@daily", params={"nope": 1})


# ---------------------------------------------------------------- against the fake Argo server
def _runner(url: str) -> ArgoRunner:
    return ArgoRunner(_eks(), server_url=url, token="s3cret")


def test_schedule_applies_the_template_then_the_cron_workflow_and_updates_both(in_repo, fake_argo) -> None:
    url, handler = fake_argo
    pipe = load(REPO / "examples" / "churn")
    info = _runner(url).schedule(pipe, {"threshold": "0.8"})
    assert info["created"] is True and info["cron_workflow"] == "churn" and info["namespace"] == "ml-jobs"
    assert info["url"] == f"{url}/cron-workflows/ml-jobs/churn" and info["params"] == {"threshold": 0.8}
    assert [(m, p) for m, p, _, _ in handler.requests] == [
        ("POST", "/api/v1/workflow-templates/ml-jobs"),
        ("POST", "/api/v1/cron-workflows/ml-jobs"),
    ]
    create = handler.requests[1][2]
    assert create["namespace"] == "ml-jobs" and create["cronWorkflow"]["kind"] == "CronWorkflow"
    stored = handler.cron_workflows["ml-jobs/churn"]
    assert stored["spec"]["workflowSpec"]["workflowTemplateRef"] == {"name": "churn"}
    assert stored["spec"]["workflowSpec"]["arguments"]["parameters"] == [
        {"name": "threshold", "value": "0.8"}
    ]
    assert "ml-jobs/churn" in handler.templates
    # the controller ran it once; applying again updates both in place and keeps that status
    stored["status"] = {"lastScheduledTime": "2026-01-02T03:00:00Z"}
    first_uid = stored["metadata"]["uid"]
    info2 = _runner(url).schedule(pipe, schedule=Schedule("0 4 * * *", timezone="Asia/Tokyo"))
    assert info2["created"] is False
    assert [(m, p) for m, p, _, _ in handler.requests[2:]] == [
        ("POST", "/api/v1/workflow-templates/ml-jobs"),
        ("GET", "/api/v1/workflow-templates/ml-jobs/churn"),
        ("PUT", "/api/v1/workflow-templates/ml-jobs/churn"),
        ("POST", "/api/v1/cron-workflows/ml-jobs"),
        ("GET", "/api/v1/cron-workflows/ml-jobs/churn"),
        ("PUT", "/api/v1/cron-workflows/ml-jobs/churn"),
    ]
    put = handler.requests[-1][2]
    assert put["name"] == "churn" and put["namespace"] == "ml-jobs"
    stored = handler.cron_workflows["ml-jobs/churn"]
    assert stored["spec"]["schedules"] == ["0 4 * * *"] and stored["spec"]["timezone"] == "Asia/Tokyo"
    assert stored["metadata"]["uid"] == first_uid and stored["metadata"]["generation"] == 2
    assert stored["status"]["lastScheduledTime"] == "2026-01-02T03:00:00Z"


def test_an_update_racing_another_writer_reads_again_and_retries(in_repo, fake_argo, monkeypatch) -> None:
    url, handler = fake_argo
    pipe = load(REPO / "examples" / "churn")
    _runner(url).schedule(pipe)
    original = handler._object
    raced = {"n": 0}

    def racing(self, method, resource, ns, name, body, query):  # another writer lands between GET and PUT
        if method == "PUT" and resource == "cron-workflows" and raced["n"] == 0:
            raced["n"] += 1
            handler.cron_workflows[f"{ns}/{name}"]["metadata"]["resourceVersion"] = "999"
        return original(self, method, resource, ns, name, body, query)

    monkeypatch.setattr(handler, "_object", racing)
    _runner(url).schedule(pipe, schedule="@hourly")
    cron_calls = [(m, p) for m, p, _, _ in handler.requests if "cron-workflows" in p][1:]
    assert cron_calls == [
        ("POST", "/api/v1/cron-workflows/ml-jobs"),
        ("GET", "/api/v1/cron-workflows/ml-jobs/churn"),
        ("PUT", "/api/v1/cron-workflows/ml-jobs/churn"),  # 409: modified since the GET
        ("GET", "/api/v1/cron-workflows/ml-jobs/churn"),
        ("PUT", "/api/v1/cron-workflows/ml-jobs/churn"),
    ]
    assert handler.cron_workflows["ml-jobs/churn"]["spec"]["schedules"] == ["@hourly"]


def test_list_shows_only_mlstack_cron_workflows_and_rm_deletes_one(in_repo, fake_argo) -> None:
    url, handler = fake_argo
    runner = _runner(url)
    assert runner.schedules() == []  # Argo answers "items": null for an empty list
    runner.schedule(load(REPO / "examples" / "churn"))
    handler.cron_workflows["ml-jobs/someone-elses"] = {
        "metadata": {"name": "someone-elses", "namespace": "ml-jobs", "labels": {"team": "x"}},
        "spec": {"schedules": ["* * * * *"], "workflowSpec": {"templates": []}},
    }
    handler.cron_workflows["ml-jobs/churn"]["status"] = {
        "lastScheduledTime": "2026-01-02T03:00:00Z",
        "active": [{"name": "churn-1767322800", "namespace": "ml-jobs"}],
        "succeeded": 4,
        "failed": 1,
    }
    (item,) = runner.schedules()
    assert item["name"] == "churn" and item["pipeline"] == "churn" and item["template"] == "churn"
    assert item["cron"] == ["0 3 * * *"] and item["timezone"] == "UTC" and item["concurrency"] == "Forbid"
    assert item["last_scheduled"] == "2026-01-02T03:00:00Z" and item["active"] == ["churn-1767322800"]
    assert item["succeeded"] == 4 and item["failed"] == 1 and item["suspended"] is False
    list_path = [p for m, p, _, _ in handler.requests if m == "GET"][-1]
    assert "listOptions.labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmlstack" in list_path
    assert runner.unschedule("churn")["deleted"] is True
    assert "ml-jobs/churn" not in handler.cron_workflows and "ml-jobs/churn" in handler.templates
    with pytest.raises(BackendError, match="no CronWorkflow 'churn'") as e:
        runner.unschedule("churn")
    assert "schedule ls" in (e.value.fix or "")


# ---------------------------------------------------------------- the CLI
@pytest.fixture
def eks_cli(in_repo, fake_argo, tmp_path, monkeypatch):
    url, handler = fake_argo
    mf = tmp_path / "eks.json"
    mf.write_text(json.dumps(EKS_MANIFEST))
    monkeypatch.setenv("ARGO_SERVER", url)
    monkeypatch.setenv("ARGO_TOKEN", "s3cret")
    return mf, handler


def test_cli_schedule_ls_rm_on_argo(eks_cli, capsys) -> None:
    mf, handler = eks_cli
    assert (
        main(["schedule", "examples/churn", "-m", str(mf), "--tz", "Europe/Paris", "-p", "threshold=0.9"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Created CronWorkflow churn in ml-jobs: 0 3 * * * (Europe/Paris), concurrency Forbid" in out
    assert "next run 20" in out and "threshold=0.9" in out
    assert handler.cron_workflows["ml-jobs/churn"]["spec"]["timezone"] == "Europe/Paris"
    assert main(["schedule", "apply", "examples/churn", "-m", str(mf), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["created"] is False and doc["cron"] == ["0 3 * * *"] and doc["next_run"]
    assert main(["schedule", "ls", "-m", str(mf), "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)["cron_workflows"]
    assert item["name"] == "churn" and item["timezone"] == "UTC"
    assert main(["schedule", "ls", "-m", str(mf)]) == 0
    out = capsys.readouterr().out
    assert "churn" in out and "0 3 * * *" in out and "never" in out
    assert main(["schedule", "rm", "examples/churn", "-m", str(mf)]) == 0
    assert "Deleted CronWorkflow churn" in capsys.readouterr().out
    assert main(["schedule", "rm", "churn", "-m", str(mf)]) == 1
    assert "no CronWorkflow 'churn'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cron", "0 3 * *"], "cron '0 3 * *' has 4 fields, not 5"),
        (["--cron", "0 3 * * 7"], "day of week 7 is out of range 0-6"),
        (["--cron", "@sometimes"], "unknown descriptor"),
        (["--tz", "Europe/Pariss"], "timezone 'Europe/Pariss' is not a known IANA timezone"),
        (["--concurrency", "Queue"], "concurrency='Queue'"),
        (["-p", "nope=1"], "no param 'nope'"),
    ],
)
def test_cli_bad_schedule_is_a_usage_error_before_anything_is_sent(eks_cli, capsys, args, says) -> None:
    mf, handler = eks_cli
    assert main(["schedule", "examples/churn", "-m", str(mf), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert handler.requests == []


def test_cli_local_stack_says_it_has_no_scheduler(in_repo, fake_argo, capsys, monkeypatch) -> None:
    _, handler = fake_argo
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    assert main(["schedule", "examples/churn"]) == 2
    err = capsys.readouterr().err
    assert "the local stack has no scheduler" in err and "0 3 * * * (UTC)" in err and "next 20" in err
    assert "mlstack run examples/churn --local" in err
    assert main(["schedule", "rm", "churn"]) == 2
    assert "no scheduler" in capsys.readouterr().err
    # ls on the local stack: the schedules declared by the pipelines under the current folder
    assert main(["schedule", "ls"]) == 0
    out = capsys.readouterr().out
    assert "has no scheduler" in out and "churn" in out and "0 3 * * *" in out
    assert "gpu-finetune" not in out  # declares no schedule
    assert main(["schedule", "ls", "--json"]) == 0
    (declared,) = json.loads(capsys.readouterr().out)["declared"]
    assert declared["pipeline"] == "churn" and declared["path"] == "examples/churn/pipeline.py"
    assert main(["schedule", "ls", "examples/churn", "examples/gpu-finetune", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scheduler"] is None and [d["pipeline"] for d in doc["declared"]] == ["churn"]
    assert doc["declared"][0]["next_run"]
    assert handler.requests == []


def test_cli_schedule_without_a_declared_schedule_needs_cron(in_repo, capsys) -> None:
    assert main(["schedule", "examples/gpu-finetune"]) == 2
    assert "declares no schedule" in capsys.readouterr().err


def test_render_emits_the_cron_workflow_after_the_template(in_repo, capsys) -> None:
    assert main(["render", "examples/churn", "--argo"]) == 0
    out, err = capsys.readouterr()
    wt, cron = list(yaml.safe_load_all(out))
    assert wt["kind"] == "WorkflowTemplate" and cron["kind"] == "CronWorkflow"
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == wt["metadata"]["name"]
    assert "note: CronWorkflow churn: 0 3 * * * (UTC)" in err
    assert main(["render", "examples/churn", "--argo", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "List" and [i["kind"] for i in doc["items"]] == ["WorkflowTemplate", "CronWorkflow"]
    # no schedule: the template only
    assert main(["render", "examples/gpu-finetune", "--argo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "WorkflowTemplate"


def test_local_run_shows_the_schedule_it_does_not_apply(write_pipeline, local_home, capsys) -> None:
    f = write_pipeline(
        """
pipeline = Pipeline("nightly", schedule="30 2 * * *")

@pipeline.step
def one():
    return 1
"""
    )
    assert main(["run", str(f), "--local"]) == 0
    out = capsys.readouterr().out
    assert (
        "schedule 30 2 * * * (UTC), concurrency Forbid: not applied here, the local stack has no scheduler"
        in out
    )

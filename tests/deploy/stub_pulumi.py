"""A stand-in ``pulumi`` executable for the deploy tests (copied to ``DIR/bin/pulumi`` by the fixture).

It answers the commands the Automation API sends for a *local* program the way the real CLI does (output
shapes, error texts the API parses, exit codes), keeps the stacks it knows in ``$STUB_STATE/state.json`` and
appends every call (argv, cwd, selected env) to ``$STUB_STATE/calls.jsonl``. ``$STUB_STATE/outputs.json``
holds the outputs ``stack output`` returns: ``{"name": {"value": ..., "secret": bool}}``. ``$STUB_FAIL``
names a command (``up``, ``preview``, ``destroy``) that fails like an engine error, or is ``locked``
(every update fails as a stack held by another update does).
"""

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["STUB_STATE"])
VERSION = os.environ.get("STUB_VERSION", "v3.200.0")  # <= 3.205: the API reads the event log from a file
HISTORY_TIME = "2026-01-01T00:00:00.000Z"


def load() -> dict:
    p = STATE / "state.json"
    return json.loads(p.read_text()) if p.exists() else {"stacks": {}}


def save(state: dict) -> None:
    (STATE / "state.json").write_text(json.dumps(state))


def flag(args: list, name: str):
    return args[args.index(name) + 1] if name in args else None


def fail(message: str, code: int = 255) -> None:
    sys.stderr.write(message + "\n")
    sys.exit(code)


def main(argv: list) -> None:
    env_keys = (
        "PULUMI_BACKEND_URL",
        "PULUMI_AUTOMATION_API",
        "PULUMI_SKIP_UPDATE_CHECK",
        "PULUMI_CONFIG_PASSPHRASE",
    )
    with open(STATE / "calls.jsonl", "a") as fh:
        fh.write(
            json.dumps({"argv": argv, "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in env_keys}})
            + "\n"
        )
    args = [a for a in argv if a != "--non-interactive"]
    state = load()
    stack = flag(args, "--stack")
    head = args[:2]

    if args[:1] == ["version"]:
        print(VERSION)
        return
    if head == ["stack", "select"]:
        if stack not in state["stacks"]:
            fail(f"error: no stack named '{stack}' found")
        return
    if head == ["stack", "init"]:
        name = args[2]
        if name in state["stacks"]:
            fail(f"error: stack '{name}' already exists")
        state["stacks"][name] = {"config": {}, "updates": 0}
        save(state)
        return
    if head == ["stack", "rm"]:
        stack = stack or args[-1]
    if stack is not None and stack not in state["stacks"]:
        fail(f"error: no stack named '{stack}' found")
    if head == ["config", "set-all"]:
        cfg = state["stacks"][stack]["config"]
        for i, a in enumerate(args):
            if a in ("--plaintext", "--secret"):
                key, _, value = args[i + 1].partition("=")
                cfg[key] = {"value": value, "secret": a == "--secret"}
        save(state)
        return
    if args[:1] in (["up"], ["preview"], ["destroy"]):
        cmd = args[0]
        if os.environ.get("STUB_FAIL") == "locked":  # the text a file/S3 backend prints for a held lock
            fail(
                "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end"
            )
        if os.environ.get("STUB_FAIL") == cmd:
            print(f"{'Updating' if cmd == 'up' else 'Previewing'} ({stack})")
            print(
                "    error: creating S3 Bucket (data): AccessDenied: not authorized to perform s3:CreateBucket"
            )
            fail("error: update failed")
        print(f"{'Updating' if cmd == 'up' else cmd.capitalize() + 'ing'} ({stack})")
        print(" +  mlstack:index:MLStack platform create")
        print("Resources:\n    + 3 to create" if cmd != "destroy" else "Resources:\n    - 3 deleted")
        changes = {"create": 3} if cmd != "destroy" else {"delete": 3}
        log = flag(args, "--event-log")
        if log:  # preview always asks for one: its change summary comes from the summary event
            with open(log, "a") as fh:
                fh.write(json.dumps({"sequence": 0, "timestamp": 0, "preludeEvent": {"config": {}}}) + "\n")
                ev = {
                    "maybeCorrupt": False,
                    "durationSeconds": 1,
                    "resourceChanges": changes,
                    "PolicyPacks": {},
                }
                fh.write(json.dumps({"sequence": 1, "timestamp": 1, "summaryEvent": ev}) + "\n")
        if cmd != "preview":
            entry = state["stacks"][stack]
            entry["updates"] += 1
            entry["last"] = {"kind": "update" if cmd == "up" else cmd, "changes": changes}
            save(state)
        return
    if head == ["stack", "output"]:
        outputs_file = STATE / "outputs.json"
        outs = json.loads(outputs_file.read_text()) if outputs_file.exists() else {}
        show = "--show-secrets" in args
        print(json.dumps({k: v["value"] if show or not v["secret"] else "[secret]" for k, v in outs.items()}))
        return
    if head == ["stack", "history"]:
        entry = state["stacks"][stack]
        if not entry["updates"]:
            print("[]")
            return
        last = entry["last"]
        print(
            json.dumps(
                [
                    {
                        "version": entry["updates"],
                        "kind": last["kind"],
                        "startTime": HISTORY_TIME,
                        "endTime": HISTORY_TIME,
                        "message": "",
                        "environment": {"exec.kind": "auto.local"},
                        "config": {},
                        "result": "succeeded",
                        "resourceChanges": last["changes"],
                    }
                ]
            )
        )
        return
    if head == ["stack", "rm"]:
        del state["stacks"][stack or args[-1]]
        save(state)
        return
    fail(f"stub pulumi: unexpected command {argv}", 2)


if __name__ == "__main__":
    main(sys.argv[1:])

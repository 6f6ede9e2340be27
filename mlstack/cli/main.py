"""Entry point of the ``mlstack`` command.

Errors are one clear message with the fix, never a traceback (``--debug`` or ``MLSTACK_DEBUG=1`` shows it):
usage and configuration errors exit 2, failed operations and checks exit 1.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

try:  # recent typer vendors its own click; older releases use the click package
    from typer._click.exceptions import ClickException  # type: ignore[import-not-found]
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgs  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[assignment]
    from click.exceptions import NoArgsIsHelpError as _NoArgs  # type: ignore[assignment,no-redef]

from mlstack._version import __version__

app = typer.Typer(
    name="mlstack",
    help="The ML stack as code: provision data, GPU compute, orchestration and artifacts; run jobs on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# verb groups, each a module with register(app); imported at start, their heavy imports stay inside commands
COMMAND_MODULES = (
    "mlstack.cli.core_cmd",  # init, manifest, demo
    "mlstack.cli.artifacts_cmd",  # artifacts ...
    "mlstack.cli.data_cmd",  # data ...
    "mlstack.cli.pipeline_cmd",  # run, render
    "mlstack.cli.schedule_cmd",  # schedule PATH, schedule ls, schedule rm
    "mlstack.cli.runs_cmd",  # runs ls|show|logs
    "mlstack.cli.plan_cmd",  # plan
    "mlstack.cli.deploy_cmd",  # up, preview, destroy, outputs
    "mlstack.cli.doctor_cmd",  # doctor
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlstack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    if debug:
        os.environ["MLSTACK_DEBUG"] = "1"


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def command():  # type: ignore[no-untyped-def]
    """The click command tree of the app, with the shared help-page rules applied (see _common.tidy_help)."""
    from mlstack.cli._common import tidy_help

    return tidy_help(typer.main.get_command(app))


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) the process exit code."""
    from mlstack.errors import MissingExtraError, MlstackError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MLSTACK_DEBUG") == "1"
    code = 0
    root = None
    try:
        root = command()
        rv = root.main(args=args, prog_name="mlstack", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except MissingExtraError as exc:  # said the same way by every verb: "mlstack VERB needs mlstack[EXTRA]"
        verb = _verb(root, args)
        # a verb that named itself more precisely ("mlstack doctor --preflight") keeps its words
        feature = exc.feature if exc.feature.startswith(verb + " ") else verb
        err = MissingExtraError(exc.module, exc.extra, feature)
        code = _report(err.message, err.fix, type(err).__name__, err.exit_code, args, debug, exc)
    except MlstackError as exc:
        code = _report(exc.message, exc.fix, type(exc).__name__, exc.exit_code, args, debug, exc)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        code = 130
    except _NoArgs as exc:  # `mlstack` or a group alone: the help text, as click prints it
        sys.stdout.write(exc.format_message() + "\n")
        code = 0
    except ClickException as exc:
        # usage errors: unknown option, missing argument, bad value
        ctx = getattr(exc, "ctx", None)
        hint = f"run `{ctx.command_path} --help`" if ctx is not None else "run `mlstack --help`"
        code = _report(exc.format_message(), hint, "UsageError", 2, args, debug, exc)
    except ModuleNotFoundError as exc:
        # an optional dependency missing somewhere inside a verb: name the extra that brings it, the same
        # way every verb does (errors.MissingExtraError), instead of an "unexpected error"
        from mlstack.registry import extra_for_module

        extra = extra_for_module(exc.name)
        if extra is None:
            code = _unexpected(exc, args, debug)
        else:
            err = MissingExtraError((exc.name or "").split(".")[0], extra, _verb(root, args))
            code = _report(err.message, err.fix, type(err).__name__, err.exit_code, args, debug, exc)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        code = 130
    except Exception as exc:  # the last line of defence: never a bare traceback, never a secret it quotes
        code = _unexpected(exc, args, debug)
    sys.stdout.flush()
    if argv is None:
        sys.exit(code)
    return code


def _unexpected(exc: BaseException, args: list[str], debug: bool) -> int:
    from mlstack._redact import redact

    return _report(
        f"unexpected error: {type(exc).__name__}: {redact(str(exc))}",
        "run again with --debug for the traceback, and report it if it looks like a bug",
        "InternalError",
        1,
        args,
        debug,
        exc,
    )


def _verb(root, args: list[str]) -> str:  # type: ignore[no-untyped-def]
    """``mlstack plan`` / ``mlstack doctor job``: the command words of ``args``, for messages."""
    words = ["mlstack"]
    cmd = root
    for a in args:
        sub = getattr(cmd, "commands", {}).get(a) if cmd is not None else None
        if sub is None:
            if a.startswith("-"):
                continue  # a root option such as --debug
            break
        words.append(a)
        cmd = sub
    return " ".join(words)


def _report(
    message: str, fix: str | None, kind: str, code: int, args: list[str], debug: bool, exc: BaseException
) -> int:
    from rich.markup import escape

    from mlstack.cli._common import emit_json, err_console

    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if _wants_json(args):
        emit_json({"error": kind, "message": message, "fix": fix, "exit_code": code})
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if fix and fix not in message:  # a message that already says the fix is one line
        err_console.print(f"[bold]fix:[/] {escape(fix)}", markup=True, highlight=False)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``referee`` command line. Each command group lives in its own module and registers on ``app``.

User errors (RefereeError) print one line and exit with status 2; nothing prints a traceback for them.
The terminal shows referee's own progress and results: third-party warnings, logs and progress bars are
kept off it (in RUN/third_party.log where a run folder exists) unless ``--verbose``.
"""

from __future__ import annotations

import signal
import sys

import typer

from referee import noise, progress
from referee.distributed import is_main_process
from referee.errors import RefereeError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="referee: LLM judges, reward models, verifiers and oversight protocols.")


@app.callback()
def _root(ctx: typer.Context,
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines."),
          verbose: bool = typer.Option(False, "--verbose", help="Also show the warnings, logs and progress bars "
                                       "of transformers, datasets, TRL, ... (else in RUN/third_party.log).")):
    if quiet or not is_main_process():  # under a launcher, one process shows progress
        progress.set_quiet(True)
    if not verbose:
        ctx.with_resource(noise.quiet_third_party())  # until the command ends


def _register_commands() -> None:
    """Import every module of this package: each one adds its commands to ``app``."""
    import importlib
    import pkgutil

    import referee.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: (m.name != "core", m.name)):
        importlib.import_module(f"referee.cli.{info.name}")


class Terminated(BaseException):
    """SIGTERM (a timeout, a container stop, a cluster preemption), raised where the process is, so it
    unwinds like Ctrl-C: every open run writes its ledger and manifest on the way out."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        app(args=argv, standalone_mode=False)
    except Terminated:
        print("terminated (SIGTERM): finished model calls and stages are kept; run the same command again to "
              "resume", file=sys.stderr)
        sys.exit(143)
    except RefereeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished model calls are in the cache; run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # usage errors (bad option, bad value) arrive here in non-standalone mode
        usage, abort = _click_errors()
        if isinstance(e, usage):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, abort):
            sys.exit(1)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """The usage-error and abort classes of click and of the copy of click that newer typer releases
    carry (their commands raise that copy's exceptions)."""
    import click
    import typer

    usage, abort = [click.exceptions.ClickException], [click.exceptions.Abort]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        ClickException = None
    usage += [ClickException] if ClickException is not None else []
    abort += [c for c in (getattr(getattr(typer, "exceptions", None), "Abort", None),) if c is not None]
    return tuple(usage), tuple(abort)

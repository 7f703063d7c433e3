"""The ``referee`` command line. Each command group lives in its own module and registers on ``app``.

User errors (RefereeError) print one line and exit with status 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import sys

import typer

from referee import progress
from referee.errors import RefereeError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="referee: LLM judges, reward models, verifiers and oversight protocols.")


@app.callback()
def _root(quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines.")):
    if quiet:
        progress.set_quiet(True)


def _register_commands() -> None:
    """Import every module of this package: each one adds its commands to ``app``."""
    import importlib
    import pkgutil

    import referee.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: (m.name != "core", m.name)):
        importlib.import_module(f"referee.cli.{info.name}")


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except RefereeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished model calls are in the cache; run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise

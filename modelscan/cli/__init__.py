"""The ``modelscan`` command line: a thin click group over library functions.

Each command lives in its own module here and imports heavy libraries inside
its function body, so ``modelscan --help`` and ``--version`` stay fast.

Example:
    $ modelscan fingerprint model.safetensors --json
"""

from __future__ import annotations

import logging
from typing import IO, Any

import click

from modelscan import __version__
from modelscan.errors import ModelscanError


class CommandError(click.ClickException):
    """A failure a user can act on: one line ``modelscan: error: ...``, exit 1.

    A hint (chosen by the exception's type, modelscan/cli/options.py) follows
    on a second line ``hint: ...``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one-line message (and the hint) on stderr."""
        click.echo(f"modelscan: error: {self.format_message()}", err=True, file=file)
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True, file=file)


class _Group(click.Group):
    """Turn a ModelscanError escaping a command into one line and exit 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ModelscanError as exc:
            from modelscan.cli.options import hint_for

            raise CommandError(str(exc), hint=hint_for(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelscan")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def cli(verbose: int) -> None:
    """Model-file provenance: fingerprint weights, crawl hosts, measure spread."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _keep_example_lines(command: click.Command) -> None:
    r"""Turn a literal ``\b`` line (raw docstrings) into click's no-rewrap marker.

    Docstrings are raw strings (ruff D301), where ``\b`` stays two characters;
    click only keeps a paragraph's lines as written after a real backspace.
    """
    if command.help:
        command.help = command.help.replace("\\b\n", "\b\n")
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _keep_example_lines(sub)


def _register() -> None:
    from modelscan.cli import (
        crawl_cmd,
        fingerprint_cmd,
        index_cmd,
        lineage_cmd,
        spread_cmd,
        status_cmd,
        worker_cmd,
    )

    modules = (
        fingerprint_cmd,
        index_cmd,
        crawl_cmd,
        lineage_cmd,
        spread_cmd,
        status_cmd,
        worker_cmd,
    )
    for module in modules:
        for command in module.COMMANDS:
            _keep_example_lines(command)
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="modelscan")

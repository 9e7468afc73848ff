"""The ``modelscan`` command line: a thin click group over library functions.

Each command lives in its own module here, imported only when that command
runs (:data:`LAZY_COMMANDS`), and imports heavy libraries inside its function
body, so ``modelscan fingerprint`` starts without SQLAlchemy, numpy or requests.

Example:
    $ modelscan fingerprint model.safetensors --json
"""

from __future__ import annotations

import importlib
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


# Which module defines each top-level command. The group imports a command's
# module only when that command runs (or when help lists them all), so
# `modelscan fingerprint` never pays for SQLAlchemy, requests or Celery: click's
# documented lazy loading (click docs, "Complex Applications", LazyGroup).
LAZY_COMMANDS: dict[str, str] = {
    "fingerprint": "fingerprint_cmd",
    "where": "index_cmd",
    "sql": "index_cmd",
    "db": "index_cmd",
    "crawl": "crawl_cmd",
    "link": "lineage_cmd",
    "lineage": "lineage_cmd",
    "spread": "spread_cmd",
    "report": "report_cmd",
    "serve": "serve_cmd",
    "status": "status_cmd",
    "worker": "worker_cmd",
}


class _Group(click.Group):
    """Load commands on first use; turn a ModelscanError into one line and exit 1.

    A command named in ``lazy`` imports only its module. Any other name, help,
    and ``commands`` (click's dict, read by code that walks every command)
    import every ``*_cmd`` module here, so a module missing from the map still
    has its commands found, only later.
    """

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        self._lazy = dict(lazy)
        self._imported: set[str] = set()
        self._loaded: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        """Every command, each module imported."""
        self._load_all()
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name (help and completion: imports every module)."""
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing only the module that defines it when known."""
        module_name = self._lazy.get(cmd_name)
        if module_name is not None:
            self._load_module(module_name)
        if cmd_name not in self._loaded:
            self._load_all()
        return self._loaded.get(cmd_name)

    def _load_all(self) -> None:
        import pkgutil  # only here: help and unknown names, not a command's run

        found = {
            m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd")
        }
        for module_name in sorted(found):
            self._load_module(module_name)

    def _load_module(self, module_name: str) -> None:
        if module_name in self._imported:
            return
        self._imported.add(module_name)
        module = importlib.import_module(f"modelscan.cli.{module_name}")
        for command in module.COMMANDS:
            _keep_example_lines(command)
            assert command.name is not None
            self._loaded[command.name] = command

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a ModelscanError becomes a :class:`CommandError`."""
        try:
            return super().invoke(ctx)
        except ModelscanError as exc:
            from modelscan.cli.options import hint_for

            raise CommandError(str(exc), hint=hint_for(exc)) from exc


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


@click.group(
    cls=_Group,
    lazy=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="modelscan")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Model-file provenance: fingerprint weights, crawl hosts, measure spread."""
    ctx.meta[_VERBOSE] = verbose
    if ctx.invoked_subcommand not in LOGS_ON_DEMAND:
        configure_logging()


# Commands that call configure_logging() themselves, on the paths where something
# may log: `modelscan fingerprint` of local files without --save runs the scanner
# alone, which never logs, so it does not import logging (5 ms of start-up).
LOGS_ON_DEMAND = frozenset({"fingerprint"})
_VERBOSE = "modelscan.verbose"  # the group's -v count, in click's shared ctx.meta
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def verbosity() -> int:
    """How many ``-v`` the group was given (0 outside a ``modelscan`` run)."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.meta.get(_VERBOSE, 0)) if ctx is not None else 0


def configure_logging() -> None:
    """Log at the level ``-v``/``-vv`` asks for (WARNING without), in LOG_FORMAT."""
    import logging

    level = logging.WARNING - 10 * min(verbosity(), 2)
    logging.basicConfig(level=level, format=LOG_FORMAT)


class _NoBar:
    """What a disabled progress bar does: nothing (tqdm's calls that we use)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        """Ignore progress."""

    def clear(self) -> None:
        """Nothing to clear."""


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar (tqdm's keyword arguments), or a silent stand-in when disabled.

    tqdm is imported only for a bar that shows: its import (importlib.metadata
    included) is a third of ``modelscan fingerprint --json``'s start-up.
    """
    if kwargs.get("disable"):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(**kwargs)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="modelscan")

"""Every command has help text with an example and is documented in README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from modelscan.cli import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, prefix + name + " "))
    return out


@pytest.mark.parametrize(("name", "command"), _commands(cli))
def test_command_has_help_and_readme_entry(name: str, command: click.Command) -> None:
    """Each command has a docstring and README mentions `modelscan <command>`."""
    assert command.help
    assert command.help.strip()
    assert f"modelscan {name}" in README

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


@pytest.mark.parametrize(("name", "command"), _commands(cli))
def test_help_keeps_example_lines(name: str, command: click.Command) -> None:
    """`--help` shows each Example line as written, with no stray backslash-b."""
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert "\\b" not in result.output
    assert "Example:\n" in result.output
    example = result.output.split("Example:\n", 1)[1]
    assert example.splitlines()[0].strip().startswith("modelscan ")

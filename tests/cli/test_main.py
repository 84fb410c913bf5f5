"""The top-level ``mvm`` group: its command list is read from the sources, as click would show it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from mvmdb.cli.main import COMMANDS, listed_help


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_help_is_the_commands_own(name):
    """For every command, the help read from its source gives click's one-line help at any width."""
    module, attr = COMMANDS[name].split(":")
    cmd = getattr(importlib.import_module(module), attr)
    text = listed_help(COMMANDS[name])
    assert text is not None, f"{name}: its help is not plain in the source (mvm --help would import it)"
    for limit in (30, 45, 68, 120):
        assert click.Command(name, help=text).get_short_help_str(limit) == cmd.get_short_help_str(limit)


def test_help_lists_every_command_without_importing_them():
    code = ("import sys; from mvmdb.cli.main import cli\n"
            "try:\n    cli.main(['--help'], prog_name='mvm')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('mvmdb.cli.') and m != 'mvmdb.cli.main'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in out
    assert out.strip().splitlines()[-1] == "[]"  # no command module was imported

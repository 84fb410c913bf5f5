"""Click options shared by several ``mvm`` commands, each defined once (as daf_butler's ``cli/opt``).

Each is a function returning the decorator, so that a command can word the help for
itself while the flag, its destination and its type stay the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["json_option", "out_dir_option", "out_file_option", "layer_set_argument", "layer_skycell_option"]


def json_option(help: str = "Machine-readable JSON on stdout."):
    """``--json`` -> ``as_json: bool``."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def out_dir_option(help: str, default: Path | None = None):
    """``--out DIR`` -> ``out_dir: Path`` (a directory; made when needed by the command's function)."""
    return click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=default,
                        show_default=default is not None, help=help)


def out_file_option(metavar: str, help: str | None = None):
    """``--out FILE`` (required) -> ``out: Path``."""
    return click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar=metavar,
                        help=help)


def layer_set_argument():
    """``SET`` (year | exptime | epochs) -> ``name: str``."""
    return click.argument("name", metavar="SET", type=click.Choice(["year", "exptime", "epochs"]))


def layer_skycell_option(help: str):
    """``--skycell NAME`` -> ``skycell: str | None`` (one sky cell; default the whole catalog)."""
    return click.option("--skycell", "skycell", metavar="NAME", default=None, help=help)

"""Files the package ships besides its modules: alembic migrations and readable SQL.

In the checkout they are the top-level ``migrations/`` and ``schema/`` folders; an
installed wheel carries them inside the package (``mvmdb/migrations``, ``mvmdb/schema``,
mapped by ``pyproject.toml``). :func:`resource_dir` finds them either way, relative to
this module, never from the working directory.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from mvmdb.errors import ConfigError

__all__ = ["resource_dir", "sql_statements"]

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``mvmdb/<name>`` of an installed package, else ``<checkout>/<name>`` beside the package."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"{name}/ is neither in the package ({_PACKAGE}) nor beside it: a broken installation")


@functools.cache
def sql_statements(filename: str) -> dict[str, str]:
    """The named statements of ``schema/<filename>``: each starts at a ``-- name <statement>`` line.

    Full-line ``--`` comments are dropped, and the trailing ``;`` of each statement.
    """
    sql: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (resource_dir("schema") / filename).read_text().splitlines():
        header = re.fullmatch(r"--\s*name\s+(\w+)\s*", line.strip())
        if header:
            current = sql.setdefault(header.group(1), [])
        elif current is not None and not line.strip().startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip().rstrip(";") for name, lines in sql.items()}

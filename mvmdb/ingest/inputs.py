"""Ingest's inputs: files, directories and list files -> absolute paths; the switches; default workers.

Files are ingested whatever their name; directories are scanned recursively for
``*_flt.fits`` and ``*_flc.fits``; text files list paths (one per line, ``#`` comments;
relative paths are relative to the list file). Paths are absolute (``os.path.abspath``,
symlinks kept).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mvmdb import rules
from mvmdb.fitsio.exposure import looks_like_fits

__all__ = ["SCAN_SUFFIXES", "expand_inputs", "switches_from_env", "default_jobs"]

SCAN_SUFFIXES = ("_flt.fits", "_flc.fits")
"""What a directory scan picks up."""
_FITS_NAMES = (".fits", ".fit", ".fts", ".fits.gz")


def expand_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """Input arguments -> (absolute file paths in order, without duplicates; [(path, error)]).

    A directory is scanned recursively for ``*_flt.fits``/``*_flc.fits`` (sorted). A file
    named ``*.fits`` (or one that starts like FITS) is an input; another readable text file
    is a list of paths, one per line (blank lines and ``#`` comments skipped; relative
    paths relative to the list's directory).

    Nothing is skipped silently: a directory that cannot be read, a path the system cannot
    open (too long), a name that is not UTF-8, a path a poller cannot list (comma, line
    break: :func:`mvmdb.rules.path_problem`) and a list line longer than any path are
    errors, reported with the path in printable form (:func:`mvmdb.rules.display_path`).
    """
    files: list[str] = []
    seen: set[str] = set()
    errors: list[tuple[str, str]] = []

    def add(p: str) -> None:
        if p in seen:
            return
        seen.add(p)
        if (problem := rules.path_problem(p)) is not None:
            errors.append((rules.display_path(p), problem))
        else:
            files.append(p)

    def walk_error(exc: OSError) -> None:
        where = exc.filename if isinstance(exc.filename, str) else str(exc.filename or "?")
        errors.append((rules.display_path(where), f"cannot read directory ({exc.strerror or exc})"))

    def visit(raw: str, allow_list: bool) -> None:
        path = os.path.abspath(os.path.expanduser(raw))
        if (problem := rules.path_problem(path)) is not None:
            errors.append((rules.display_path(path), problem))
        elif os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path, onerror=walk_error):
                dirs.sort()
                found.extend(os.path.join(root, n) for n in names if n.endswith(SCAN_SUFFIXES))
            for p in sorted(found):
                add(p)
        elif os.path.isfile(path):
            if not allow_list or path.lower().endswith(_FITS_NAMES) or looks_like_fits(path):
                add(path)
                return
            lines = _read_list(path)
            if lines is None:
                add(path)  # binary, not FITS: reading it reports why
                return
            base = os.path.dirname(path)
            for number, line in lines:
                if len(line) > rules.MAX_PATH_BYTES:
                    errors.append((f"{rules.display_path(path)}:{number}",
                                   f"line {number} of the list holds {len(line)} characters, longer than any path "
                                   f"({rules.MAX_PATH_BYTES} bytes)"))
                    continue
                visit(line if os.path.isabs(line) else os.path.join(base, line), allow_list=False)
        elif os.path.lexists(path):
            errors.append((rules.display_path(path), "not a regular file or directory"))
        else:
            errors.append((rules.display_path(path), "no such file or directory"))

    for raw in paths:
        visit(os.fspath(raw), allow_list=True)
    return files, errors


def _read_list(path: str) -> list[tuple[int, str]] | None:
    """``(line number, path)`` of a list file's entries; None when it is not UTF-8 text."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out


def switches_from_env(environ: dict[str, str] | None = None) -> tuple[bool, bool]:
    """``(include_small, only_cte)`` from ``MVM_INCLUDE_SMALL`` (default on) and ``MVM_ONLY_CTE`` (default off).

    ``ValueError`` with one clear line for values other than on/yes/true/off/no/false.
    """
    env = os.environ if environ is None else environ
    return (rules.switch_from_env(env, "MVM_INCLUDE_SMALL", True), rules.switch_from_env(env, "MVM_ONLY_CTE", False))


def default_jobs() -> int:
    """Worker processes by default: the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)

"""MVM poller files: the archive's 10-column CSV that lists a sky cell's inputs.

One file per sky cell, one line per exposure, no header, columns in the archive's
order (``poller_utils.MVM_POLLER_COLNAMES``, spec §3.1)::

    filename,proposal_id,program_id,obset_id,exptime,filters,detector,skycell,status,path
    hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits,12286,BL7,0R,486.0,F775W,WFC,skycell-p1889x07y19,NEW,/data/...

* ``exptime`` is ``str(float)`` as the archive writes it (``486.0``, ``50.0``, ``699.232483``);
* ``filters`` is the normalized filter upper-cased (``F775W``, ``F606W-POL60V``), ``detector`` upper case;
* ``program_id`` is ``ppp`` and ``obset_id`` is ``ss`` of the ``ipppssoot`` rootname, upper case
  (``jbl70rtvq`` -> ``BL7``, ``0R``; :func:`mvmdb.rules.program_id`, :func:`mvmdb.rules.obset_id`);
* ``status`` is ``NEW`` or ``OLD`` (read case-insensitively, as the archive does);
* lines are joined with ``\\n`` and the file has no trailing newline.

:func:`read_poller` reads files written by the archive or by :func:`write_poller` and is
strict: every bad line is reported with file, line number and what is wrong, in one
:class:`PollerError`. Like the archive's reader (astropy ``ascii.read``, format
``no_header``) it strips blanks around fields and skips blank lines and ``#`` comments.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from mvmdb import rules
from mvmdb.errors import MvmdbError
from mvmdb.sky.grid import parse_skycell_name

STATUSES = ("NEW", "OLD")

"""A sky cell name, ``skycell-pPPPPxXXyYY`` (the archive's check, matched in full here)."""

_FILENAME_RE = rules.EXPOSURE_FILENAME_RE
_PROGRAM_RE = re.compile(r"[A-Z0-9]{3}")
_OBSET_RE = re.compile(r"[A-Z0-9]{1,3}")
_FORBIDDEN_RE = rules.POLLER_FORBIDDEN_RE
_TEXT_COLUMNS = ("filename", "program_id", "obset_id", "filters", "detector", "skycell", "status", "path")


class PollerError(MvmdbError):
    """A poller file (or a row to be written) breaks the format; names file and lines."""

    def __init__(self, path: str | os.PathLike[str], problems: Sequence[tuple[int | None, str]]):
        self.path = str(path)
        self.problems = list(problems)
        parts = [f"line {line}: {what}" if line is not None else what for line, what in self.problems]
        if len(parts) == 1:
            sep = ", " if self.problems[0][0] is not None else ": "
            message = f"poller file {self.path}{sep}{parts[0]}"
        else:
            message = f"poller file {self.path} has {len(parts)} bad lines: " + "; ".join(parts)
        super().__init__(message)

    def __reduce__(self):  # picklable: it crosses from a task process to the parent
        return (type(self), (self.path, self.problems))


class PollerRow(NamedTuple):
    """One poller line; field order is the file's column order (a named tuple: cheap to make)."""

    filename: str
    proposal_id: int
    program_id: str
    obset_id: str
    exptime: float
    filters: str
    detector: str
    skycell: str
    status: str
    path: str

    @property
    def is_new(self) -> bool:
        return self.status == "NEW"


N_COLUMNS = len(PollerRow._fields)
"""Columns of an MVM poller line (the archive names columns 8 and 10 skycell_id and pathname)."""


# -- formatting ---------------------------------------------------------------------


def format_exptime(exptime: float) -> str:
    """Poller column 5: Python ``str(float)``, as the archive writes EXPTIME (``486.0``)."""
    return str(float(exptime))


# -- validation -----------------------------------------------------------------------


def row_problem(row: PollerRow) -> str | None:
    """The first thing wrong with ``row`` as a poller line, or None if it is valid."""
    text = (row.filename, row.program_id, row.obset_id, row.filters, row.detector, row.skycell, row.status, row.path)
    try:
        joined = "".join(text)
    except TypeError:
        return "a text column is not a string"
    if _FORBIDDEN_RE.search(joined):
        name, value = next((n, v) for n, v in zip(_TEXT_COLUMNS, text) if _FORBIDDEN_RE.search(v))
        return f"{name} {value!r} contains a comma or a line break"
    if not row.filename:
        return "filename is empty"
    if not _FILENAME_RE.fullmatch(row.filename):
        return f"filename {row.filename!r} is not an exposure file name (*_flt.fits or *_flc.fits, no directory)"
    if type(row.proposal_id) is not int or rules.proposal_id(row.proposal_id) is None:
        return f"proposal_id {row.proposal_id!r} is not an integer in 0 .. {rules.MAX_PROPOSID}"
    if not _PROGRAM_RE.fullmatch(row.program_id):
        return f"program_id {row.program_id!r} is not 3 upper-case letters or digits"
    if not _OBSET_RE.fullmatch(row.obset_id):
        return f"obset_id {row.obset_id!r} is not 1-3 upper-case letters or digits"
    if type(row.exptime) not in (float, int) or not math.isfinite(row.exptime) or row.exptime < 0:
        return f"exptime {row.exptime!r} is not a finite, non-negative number"
    if not row.filters or row.filters != row.filters.upper() or rules.filter_problem(row.filters.lower()):
        return f"filters {row.filters!r} is not an upper-case filter name (letters, digits and '-')"
    if not row.detector or row.detector != row.detector.upper():
        return f"detector {row.detector!r} is not a non-empty upper-case detector name"
    if (problem := skycell_problem(row.skycell)) is not None:
        return problem
    if row.status not in STATUSES:
        return f"status {row.status!r} is not NEW or OLD"
    if not row.path:
        return "path is empty"
    return None


@functools.lru_cache(maxsize=4096)
def skycell_problem(name: str) -> str | None:
    """What is wrong with a poller's sky cell name (the full ``skycell-pPPPPxXXyYY`` form), or None."""
    try:
        parse_skycell_name(name, bare_ok=False)
    except ValueError as exc:
        return str(exc)
    return None


# -- writing --------------------------------------------------------------------------


def format_row(row: PollerRow) -> str:
    """One poller line (no newline); raises :class:`ValueError` if ``row`` is not valid."""
    if (problem := row_problem(row)) is not None:
        raise ValueError(problem)
    return _line(row)


def _line(row: PollerRow) -> str:
    return ",".join(
        (
            row.filename,
            str(row.proposal_id),
            row.program_id,
            row.obset_id,
            format_exptime(row.exptime),
            row.filters,
            row.detector,
            row.skycell,
            row.status,
            row.path,
        )
    )


def format_poller(rows: Iterable[PollerRow]) -> str:
    """The text of a poller file: lines joined with ``\\n``, no trailing newline."""
    return "\n".join(format_row(row) for row in rows)


def write_poller(path: str | os.PathLike[str], rows: Iterable[PollerRow]) -> Path:
    """Write ``rows`` to ``path`` atomically (temporary file in the same directory + rename).

    Readers see the old file or the new one, never a partial one. All rows must name one
    sky cell; nothing is written if any row is invalid (:class:`PollerError`). The file is
    not fsync'ed (thousands are written per night): after a system crash the old version,
    or on some file systems an empty file, may be left; the next ``mvm plan`` rewrites it
    as long as its members are still NEW, and :func:`read_poller` rejects an empty file.
    """
    path = Path(path)
    rows = list(rows)
    problems: list[tuple[int | None, str]] = []
    if not rows:
        problems.append((None, "no rows to write"))
    for number, row in enumerate(rows, start=1):
        problem = row_problem(row)
        if problem is None and row.skycell != rows[0].skycell:
            problem = f"sky cell {row.skycell} differs from {rows[0].skycell} on line 1 (one file per sky cell)"
        if problem is not None:
            problems.append((number, problem))
    if problems:
        raise PollerError(path, problems)
    text = "\n".join(_line(row) for row in rows)  # rows validated above
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it 0600; workers may run as another user
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- reading --------------------------------------------------------------------------


def parse_line(text: str) -> PollerRow:
    """One poller line -> :class:`PollerRow`; raises :class:`ValueError` saying what is wrong."""
    fields = [field.strip() for field in text.split(",")]
    if len(fields) != N_COLUMNS:
        raise ValueError(f"expected {N_COLUMNS} comma-separated columns, found {len(fields)}")
    filename, proposal, program, obset, exptime, filters, detector, skycell, status, path = fields
    if not re.fullmatch(r"\d+", proposal):
        raise ValueError(f"proposal_id {proposal!r} is not an integer")
    try:
        exptime_s = float(exptime)
    except ValueError:
        raise ValueError(f"exptime {exptime!r} is not a number") from None
    if status.upper() not in STATUSES:
        raise ValueError(f"status {status!r} is not NEW or OLD")
    row = PollerRow(
        filename=filename,
        proposal_id=int(proposal),
        program_id=program,
        obset_id=obset,
        exptime=exptime_s,
        filters=filters,
        detector=detector,
        skycell=skycell,
        status=status.upper(),
        path=path,
    )
    if (problem := row_problem(row)) is not None:
        raise ValueError(problem)
    return row


def read_poller(path: str | os.PathLike[str]) -> list[PollerRow]:
    """Read a poller file (archive's or ours) strictly; all bad lines in one :class:`PollerError`.

    Each bad line is reported once, with its 1-based line number and the first problem
    found on it. A file must hold at least one row. Rows naming another sky cell than the
    first row are returned too: the archive processes row 1's sky cell and drops the others
    (spec §4.1), which is the caller's choice to repeat; :func:`write_poller` never mixes.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark (Windows editors) is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise PollerError(path, [(None, f"cannot be read: {exc}")]) from exc
    rows: list[PollerRow] = []
    problems: list[tuple[int | None, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            row = parse_line(stripped)
        except ValueError as exc:
            problems.append((number, str(exc)))
            continue
        rows.append(row)
    if not rows and not problems:
        problems.append((None, "has no rows"))
    if problems:
        raise PollerError(path, problems)
    return rows

"""A hostile-input corpus for ingest, generated on the spot (issue 15).

:func:`build` writes, under one root, good exposures (tiny simulated WFC3/IR files, one per
sky cell of projection cell 1359, quick to draw) and every hostile input the issue's probe
tried, and returns a :class:`Corpus` saying what ingest must make of each: the ingest
arguments, the good paths (catalogued and usable), the exposures that must be catalogued
but excluded (path -> start of the reason) and the inputs that must be errors (printable
path -> a fragment of the reason).

Hostile inputs: EXPTIME negative; PROPOSID missing, negative, 2**31; a comma and a newline
in the path; a renamed file (``renamed.fits`` given explicitly; FILENAME says what it is: it
is made valid with its pipeline name); FILTER ``F125W/X`` and ACS FILTER1 ``F606W/X``; a
name that is not UTF-8; a path of ~3 kB (valid: catalogued) and one longer than the system
opens (an error from the directory scan); a FIFO, a socket (and a device when allowed)
named like exposures; a list file with a 2 MB line; an unreadable directory (only when
not root: root reads it anyway); EXTVER 40000 and 2**40; a NUL byte in TARGNAME (valid:
catalogued, read as U+FFFD).
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ingest_data import HRC, variant

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "process"))
from test_run import tiny_cells  # noqa: E402

GOOD_CELLS = 2


@dataclass
class Corpus:
    """What :func:`build` made: ingest arguments and the expected outcome of each input."""

    root: Path
    args: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    good_skycells: list[str] = field(default_factory=list)


def _nested(base: Path, total: int) -> Path:
    """A directory under ``base`` whose path is at least ``total`` bytes long (made through
    directory descriptors, so it may exceed what one system call accepts)."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    length = len(os.fsencode(base))
    parts = []
    try:
        while length < total:
            name = "d" * min(200, max(1, total - length))
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            parts.append(name)
            length += len(name) + 1
    finally:
        os.close(fd)
    return base.joinpath(*parts)


def _copy_into_long_dir(src: Path, base: Path, parts: tuple[str, ...], name: str) -> None:
    """Copy ``src`` to ``base/parts.../name``, walking by descriptors (the path may be too long to open)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        out = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(src.read_bytes())
    finally:
        os.close(fd)


def build(root: Path) -> Corpus:
    """Write the corpus under ``root`` (see the module docstring)."""
    root = Path(root)
    scan = root / "scan"  # the directory given to ingest
    scan.mkdir(parents=True)
    c = Corpus(root)
    c.args.append(str(scan))

    cells = tiny_cells(scan / "good", GOOD_CELLS, tag="h")
    c.good += [str(p) for _, p in cells]
    c.good_skycells = sorted(cell.name for cell, _ in cells)
    base = Path(c.good[0])

    def bad(name: str, **kw) -> Path:
        return variant(base, scan / "bad" / name, **kw)

    # --- catalogued, but excluded with a reason (the planner could not list them)
    for root_name, primary, reason in (
        ("ibh901a1q", {"EXPTIME": -5.0}, "negative exposure time"),
        ("ibh901a2q", {"PROPOSID": None}, "no proposal id"),
        ("ibh901a3q", {"PROPOSID": -7}, "no proposal id"),
        ("ibh901a4q", {"PROPOSID": 2**31}, "no proposal id"),
    ):
        p = bad(f"{root_name}_flt.fits", primary={"ROOTNAME": root_name, **primary})
        c.excluded[str(p)] = reason

    # --- refused at ingest (ingest_error), whatever they hold
    p = variant(base, scan / "a,b" / "ibh901b1q_flt.fits", primary={"ROOTNAME": "ibh901b1q"})
    c.errors[str(p)] = "comma or a line break"
    p = bad("new\nline_flt.fits", primary={"ROOTNAME": "ibh901b2q"})
    c.errors[str(p)] = "comma or a line break"
    p = bad("ibh901b3q_flt.fits", primary={"ROOTNAME": "ibh901b3q", "FILTER": "F125W/X"})
    c.errors[str(p)] = "not a filter name"
    p = variant(HRC, scan / "bad" / "j8bt91b4q_flt.fits", primary={"ROOTNAME": "j8bt91b4q", "FILTER1": "F606W/X"})
    c.errors[str(p)] = "not a filter name"
    p = bad("ibh901b5q_flt.fits", primary={"ROOTNAME": "ibh901b5q"}, sci={"EXTVER": 40000})
    c.errors[str(p)] = "EXTVER 40000 is out of range"
    p = bad("ibh901b6q_flt.fits", primary={"ROOTNAME": "ibh901b6q"}, sci={"EXTVER": 2**40})
    c.errors[str(p)] = "out of range"

    raw = os.path.join(os.fsencode(scan / "bad"), b"bad\xff_flc.fits")
    with open(raw, "wb") as f:
        f.write(base.read_bytes())
    c.errors[os.fsdecode(raw).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")] = "not valid UTF-8"

    fifo = scan / "special" / "x_flt.fits"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    c.errors[str(fifo)] = "not a regular file (a FIFO)"
    sock = scan / "special" / "y_flc.fits"
    os.mknod(sock, stat.S_IFSOCK | 0o600)
    c.errors[str(sock)] = "not a regular file (a socket)"
    try:
        os.mknod(scan / "special" / "z_flt.fits", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        c.errors[str(scan / "special" / "z_flt.fits")] = "not a regular file (a device)"
    except PermissionError:
        pass

    # --- a NUL byte inside a header string (PostgreSQL text refuses NUL): catalogued, the byte read as U+FFFD
    nul = bad("ibh901c4q_flt.fits", primary={"ROOTNAME": "ibh901c4q", "TARGNAME": "NULTARGET"})
    data = bytearray(nul.read_bytes())
    data[data.index(b"'NULTARGET") + 4] = 0
    nul.write_bytes(bytes(data))
    c.good.append(str(nul))

    # --- a ~3 kB path is fine (catalogued); one past PATH_MAX is an error of the scan
    deep = _nested(scan / "long", 3000)
    good_deep = variant(base, deep / "ibh901c1q_flt.fits", primary={"ROOTNAME": "ibh901c1q"})
    c.good.append(str(good_deep))
    deeper = _nested(deep, 4200)
    parts = deeper.relative_to(scan / "long").parts
    _copy_into_long_dir(base, scan / "long", parts, "ibh901c2q_flt.fits")
    c.errors[str(deeper)[:3900]] = "cannot read directory (File name too long)"

    if os.geteuid() != 0:  # root reads a mode-000 directory anyway
        locked = scan / "locked"
        locked.mkdir()
        variant(base, locked / "ibh901c3q_flt.fits", primary={"ROOTNAME": "ibh901c3q"})
        locked.chmod(0)
        c.errors[str(locked)] = "cannot read directory (Permission denied)"

    # --- given explicitly: a renamed file (made valid) and a list file with a 2 MB line
    renamed = variant(base, root / "renamed.fits", primary={"ROOTNAME": "ibh901d1q", "FILENAME": "ibh901d1q_flt.fits"})
    c.args.append(str(renamed))
    c.good.append(str(renamed))
    listing = root / "inputs.txt"
    listing.write_text("# hostile list\n" + "x" * 2_000_000 + "\n")
    c.args.append(str(listing))
    c.errors[f"{listing}:2"] = "longer than any path"
    return c


def unlock(corpus: Corpus) -> None:
    """Make the corpus removable again (the locked directory)."""
    locked = corpus.root / "scan" / "locked"
    if locked.exists():
        locked.chmod(0o755)

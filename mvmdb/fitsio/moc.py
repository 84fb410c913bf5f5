"""Space-time MOC files: IVOA MOC 2.0 FITS written and read by mocpy.

The coverage itself is built by :mod:`mvmdb.sky.stmoc` (pure); this module is the only place
that turns it into a file or back.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_stmoc", "read_stmoc"]


def write_stmoc(stmoc, path: str | Path, *, keywords: dict | None = None) -> Path:
    """Write a mocpy ``STMOC`` to ``path`` as an IVOA MOC 2.0 FITS file (overwriting it).

    ``keywords``: extra primary-header keywords (e.g. ``{"ORIGIN": "mvmdb"}``). The file is
    written next to the target and renamed, so readers never see half a file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    stmoc.save(tmp, format="fits", overwrite=True, fits_keywords=keywords or None)
    tmp.replace(path)
    return path


def read_stmoc(path: str | Path):
    """Read a space-time MOC FITS file written by :func:`write_stmoc` (or any ST-MOC 2.0 file)."""
    from mocpy import STMOC

    return STMOC.load(Path(path), format="fits")

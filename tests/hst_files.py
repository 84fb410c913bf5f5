"""The real HST files the tests read, shipped inside the repository.

They live gzip-compressed in ``tests/data/hst/`` (provenance and licences in
``tests/data/hst/PROVENANCE.md``). :func:`hst_dir` decompresses them once per test
process into a private temporary folder, read-only, and removes it when the process
exits, so the tests see ordinary ``*.fits`` files and never write beside the sources.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import shutil
import stat
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "hst"


@functools.cache
def hst_dir() -> Path:
    """A folder holding every ``tests/data/hst/*.fits.gz`` decompressed to ``*.fits``."""
    sources = sorted(DATA.glob("*.fits.gz"))
    if not sources:
        raise FileNotFoundError(f"no test data in {DATA}: the checkout is incomplete")
    out = Path(tempfile.mkdtemp(prefix="mvmdb-hst-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    for src in sources:
        dst = out / src.name.removesuffix(".gz")
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        dst.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return out

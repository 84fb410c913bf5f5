"""Setup shared by the drizzling benchmarks (``bench_drizzle.py``, ``bench_pixmap.py``).

Import it before numpy (``import _common`` first): it leaves BLAS single-threaded
(``OPENBLAS_NUM_THREADS=1`` unless set), as in a one-process-per-core worker. It provides
the realistic chip WCSs of the pixel-map tests (``tests/process/test_pixmap.py``):
:func:`acs_wfc_chip_wcs`, a 4096 x 2048 ACS/WFC-like TAN-SIP chip (order 5), and
:func:`skycell_like_wcs`, a 0.04"/px sky-cell-like TAN grid whose tangent point is offset.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "process"))

from test_pixmap import acs_wfc_chip_wcs, skycell_like_wcs  # noqa: E402

__all__ = ["ROOT", "acs_wfc_chip_wcs", "skycell_like_wcs", "machine"]


def machine() -> str:
    """``"<n> cpus, load average <1-minute load>"``: the context to print with timings."""
    return f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}"

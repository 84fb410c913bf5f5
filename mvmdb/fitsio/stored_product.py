"""Reading a layer product written by :func:`mvmdb.fitsio.product.write_product` (for re-embedding).

Arrays are memory-mapped and valid while the :func:`open_product` context is open: SCI
(e-/s, float32), WHT (s), NEXP, CTX (``(planes, ny, nx)``, or None), numpy ``[y, x]``,
0-based. ``hdrtab`` holds the HDRTAB rows as dicts of Python values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["StoredProduct", "open_product", "sci_array", "read_sci", "product_primary"]


@dataclass
class StoredProduct:
    """A product's PRIMARY and SCI headers (copies), arrays, HDRTAB rows and the SCI ``BUNIT``."""

    primary: fits.Header
    sci: np.ndarray
    wht: np.ndarray
    nexp: np.ndarray
    ctx: np.ndarray | None
    bunit: str
    hdrtab: list[dict[str, Any]] = field(default_factory=list)
    sci_header: fits.Header = field(default_factory=fits.Header)


@contextmanager
def open_product(path: str | os.PathLike) -> Iterator[StoredProduct]:
    """Open a product memory-mapped; see the module docstring."""
    with fits.open(path, memmap=True) as hdul:
        ctx = None
        if "CTX" in hdul and hdul["CTX"].data is not None:
            c = np.asarray(hdul["CTX"].data)
            ctx = c if c.ndim == 3 else c[None]
        rows = []
        if "HDRTAB" in hdul and hdul["HDRTAB"].data is not None:
            tab = hdul["HDRTAB"].data
            rows = [{n: _py(rec[n]) for n in tab.names} for rec in tab]
        yield StoredProduct(
            primary=fits.Header(hdul[0].header),  # a copy
            sci=np.asarray(hdul["SCI"].data),
            wht=np.asarray(hdul["WHT"].data),
            nexp=np.asarray(hdul["NEXP"].data),
            ctx=ctx,
            bunit=hdul["SCI"].header.get("BUNIT", "ELECTRONS/S"),
            hdrtab=rows,
            sci_header=fits.Header(hdul["SCI"].header),  # a copy
        )


@contextmanager
def sci_array(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The SCI array of a product, memory-mapped (valid inside the context)."""
    with fits.open(path, memmap=True) as hdul:
        yield hdul["SCI"].data


def read_sci(path: str | os.PathLike) -> np.ndarray:
    """The SCI array of a product file (float32, e-/s, NaN where no data), in memory."""
    with sci_array(path) as sci:
        return np.array(sci, dtype=np.float32)


def product_primary(path: str | os.PathLike) -> fits.Header:
    """The PRIMARY header of a product; ``ValueError`` if it has no SCI extension, ``OSError`` if unreadable."""
    with fits.open(path) as hdul:
        if "SCI" not in hdul:
            raise ValueError(f"{path}: no SCI extension")
        return fits.Header(hdul[0].header)  # a copy


def _py(v):
    """A FITS table value as a Python value (strings stripped)."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("ascii", "replace").strip()
    if isinstance(v, np.str_):
        return str(v).strip()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v

"""Re-embedding a product onto a grown common box, without resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from mvmdb.fitsio.product import write_product
from mvmdb.fitsio.stored_product import open_product
from mvmdb.process import embed
from mvmdb.process.product_headers import wcs_cards
from mvmdb.sky.grid import SkyCell

__all__ = ["reembed_product"]


def reembed_product(src: Path, old_box: embed.Box, new_box: embed.Box, cell: SkyCell, scale: str,
                    dest: Path) -> tuple[str, int]:
    """Copy product ``src`` (on ``old_box``) to ``dest`` on ``new_box`` without resampling.

    Boxes in pixels at ``scale``, 0-based inclusive. SCI is padded with NaN, WHT/NEXP/CTX
    with 0; the PRIMARY header, HDRTAB and every other keyword are kept, only the WCS
    (CRPIX) and NAXIS change. Returns (sha256, size in bytes).
    """
    from mvmdb.sky.overlap import box_wcs

    new_wcs = box_wcs(cell, new_box, scale)
    with open_product(src) as p:
        sci = embed.embed(p.sci, old_box, new_box, fill=np.nan)
        wht = embed.embed(p.wht, old_box, new_box, fill=0)
        nexp = embed.embed(p.nexp, old_box, new_box, fill=0)
        ctx = None if p.ctx is None else embed.embed(p.ctx, old_box, new_box, fill=0)
        wcs_header = wcs_cards(new_wcs)
        # the SCI header's own cards (photometry, S_REGION: the data do not move on the sky) are kept
        sci_extra = fits.Header([c for c in p.sci_header.cards if c.keyword not in wcs_header
                                 and not c.keyword.startswith(("PC1_", "PC2_", "CDELT", "CUNIT"))])
        written = write_product(
            dest, primary=p.primary, sci=sci, wht=wht, nexp=nexp, ctx=ctx, wcs_header=wcs_header, hdrtab=p.hdrtab,
            extra_headers={"SCI": sci_extra, "WHT": {"BUNIT": ("SECONDS", "")}},
        )
    return written.sha256, written.size

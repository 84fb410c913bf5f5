"""mvmdb's products of the real WFC3/IR FLTs against the archive's values (issue 13).

The archive's numbers are constants in ``archive_values.py`` (measured once with drizzlepac
3.11.0 ``runmultihap``, cited there); nothing here needs drizzlepac.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import archive_values as av
from mvmdb.poller import PollerRow
from mvmdb.process.inputs import _pixel_scale
from mvmdb.process.skycell import process_poller_direct
from mvmdb.sky.grid import SkyCell


@pytest.fixture(scope="module")
def drawn(hst_dir, tmp_path_factory):
    """The four layers of the archive's run, drawn directly from mvmdb's poller rows."""
    out = tmp_path_factory.mktemp("parity")
    rows = []
    for name in av.FILES:
        h = fits.getheader(hst_dir / name)
        rows.append(PollerRow(name, int(h["PROPOSID"]), "B6O", name[4:6].upper(), float(h["EXPTIME"]),
                              h["FILTER"], "IR", av.SKYCELL, "NEW", str(hst_dir / name)))
    results = process_poller_direct(rows, out)
    assert all(r.status == "done" for r in results), [r.reason for r in results]
    return {r.product.rsplit("/", 1)[-1]: r.product for r in results}


def _cell_pixels(path):
    """0-based sky-cell (x, y) of the pixels with data, SCI there, and the cell size."""
    name = path.rsplit("/", 1)[-1]
    scale = "coarse" if "_coarse-" in name else "fine"
    cell = SkyCell.from_name(av.SKYCELL)
    c1, c2 = cell.crpix(scale)
    with fits.open(path) as h:
        hdr, sci, wht = h["SCI"].header, h["SCI"].data, h["WHT"].data
        yy, xx = np.nonzero(wht > 0)
        values = sci[yy, xx].astype(np.float64)
    return xx + int(round(c1 - hdr["CRPIX1"])), yy + int(round(c2 - hdr["CRPIX2"])), values, cell.naxis(scale)


def test_input_pixel_scale_is_the_archives_without_idcscale(hst_dir):
    # no IDCSCALE, no SIP: HSTWCS.pscale = length of the first CD column, not sqrt|det CD|
    for name in av.FILES:
        with fits.open(hst_dir / name) as h:
            w = WCS(h[1].header, h)
            assert h[1].header.get("IDCSCALE") is None
            assert _pixel_scale(h[1].header, w) == pytest.approx(av.INPUT_PSCALE, abs=5e-6)


def test_pixel_scale_with_sip_is_idcscale():
    h = fits.Header({"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "CRPIX1": 10.0, "CRPIX2": 10.0,
                     "CRVAL1": 10.0, "CRVAL2": 10.0, "CD1_1": -1.1e-5, "CD1_2": 2e-6, "CD2_1": 3e-6, "CD2_2": 1.2e-5,
                     "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-7, "B_0_2": 1e-7, "IDCSCALE": 0.04})
    assert _pixel_scale(h, WCS(h)) == 0.04
    del h["IDCSCALE"]
    assert _pixel_scale(h, WCS(h)) == pytest.approx(np.sqrt(abs(1.1e-5 * 1.2e-5 + 2e-6 * 3e-6)) * 3600)


def test_same_product_names_as_the_archive(drawn):
    assert sorted(drawn) == sorted(av.PRODUCTS)


@pytest.mark.parametrize("product", av.PRODUCTS)
def test_pixels_and_flux_match_the_archive(drawn, product):
    n_arch, flux_arch, box_arch = av.DATA[product]
    x, y, v, n = _cell_pixels(drawn[product])
    # no data pixel outside the sky cell
    assert x.min() >= 0 and y.min() >= 0 and x.max() <= n - 1 and y.max() <= n - 1
    # the same pixels with data, the cell's last two rows/columns aside
    keep = (x < n - 2) & (y < n - 2)
    assert abs(int(keep.sum()) - n_arch) <= 1e-4 * n_arch
    # the same brightness: flux over those pixels (was 11.785% too bright before issue 13)
    assert float(v[keep].sum()) / flux_arch == pytest.approx(1.0, abs=1e-4)
    # the data's edges within a few pixels of the archive's
    mine = (int(x.min()), int(x.max()), int(y.min()), int(y.max()))
    assert np.all(np.abs(np.subtract(mine, box_arch)) <= 3), (mine, box_arch)

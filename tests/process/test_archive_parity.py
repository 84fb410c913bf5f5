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
from mvmdb.process.direct import process_poller_direct
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


@pytest.mark.parametrize("product", av.PRODUCTS)
def test_sci_header_has_the_archives_photometry_and_cd_wcs(drawn, product):
    h = fits.getheader(drawn[product], "SCI")
    expected = av.PHOT["f098m" if "_f098m_" in product else "f140w"]
    for key, value in expected.items():
        assert h[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-7)), key
    assert "PC1_1" not in h and "CDELT1" not in h
    # what stwcs HSTWCS computes: pscale = |first CD column|, orientat = atan2(CD1_2, CD2_2)
    pscale = np.hypot(h["CD1_1"], h["CD2_1"]) * 3600
    assert pscale == pytest.approx(0.12 if "_coarse-" in product else 0.04)
    assert h["ORIENTAT"] == pytest.approx(np.degrees(np.arctan2(h["CD1_2"], h["CD2_2"]))) == 0.0
    assert (h["VAFACTOR"], h["LTV1"], h["LTV2"], h["LTM1_1"], h["LTM2_2"]) == (1.0, 0.0, 0.0, 1.0, 1.0)
    assert h["BUNIT"] == "ELECTRONS/S"


@pytest.mark.parametrize("product", av.PRODUCTS)
def test_s_region_outlines_the_data(drawn, product):
    h = fits.getheader(drawn[product], "SCI")
    region = h["S_REGION"]
    assert region.startswith("POLYGON ICRS ") and region.count("POLYGON") == 1
    v = np.array(region.split()[2:], dtype=float).reshape(-1, 2)
    assert np.array_equal(v[0], v[-1]) and 3 <= len(v) - 1 <= 12
    x, y = WCS(h).world_to_pixel_values(v[:, 0], v[:, 1])
    # inside the product's box, and hugging the data (the box is wider than the data here)
    assert x.min() >= -0.51 and y.min() >= -0.51 and x.max() <= h["NAXIS1"] - 0.49 and y.max() <= h["NAXIS2"] - 0.49
    with fits.open(drawn[product]) as f:
        yy, xx = np.nonzero(f["WHT"].data > 0)
    assert abs(x.min() - xx.min()) <= 3 and abs(x.max() - xx.max()) <= 3


def test_primary_keywords_and_hdrtab_columns_as_the_archive(drawn):
    product = av.PRODUCTS[0]
    with fits.open(drawn[product]) as h:
        primary = h[0].header
        columns = h["HDRTAB"].columns.names
        rows = h["HDRTAB"].data
        nextend = len(h) - 1
    present = [k for k in av.PRIMARY_KEYWORDS if k in primary]
    assert len(present) >= 0.9 * len(av.PRIMARY_KEYWORDS), sorted(set(av.PRIMARY_KEYWORDS) - set(present))
    assert set(av.HDRTAB_COLUMNS) <= set(columns)
    assert len(rows) == 2  # one row per input chip
    # blended from the inputs
    assert primary["TARGNAME"] == "WFC3-ERSII-G01"
    assert primary["EXPTIME"] == pytest.approx(2 * 202.932922)
    assert primary["DATE-OBS"] == "2009-10-03" and primary["PA_V3"] == 0
    # drizzle bookkeeping and provenance
    import mvmdb

    assert primary["NDRIZIM"] == 2 and primary["D002DATA"].startswith("ib6o21q")
    assert primary["PROD_VER"] == f"mvmdb {mvmdb.__version__}" and primary["RULESVER"] == 1.1
    assert primary["FILETYPE"] == "SCI" and primary["NEXTEND"] == nextend
    assert not any(k.startswith("PHOT") for k in primary)  # moved to SCI, as the archive does


# --------------------------------------------------------------------------- drizzle parameters (spec §5.3)
def test_drizzle_pars_per_detector_and_member_count():
    from mvmdb.process.drizzling import drizzle_pars

    assert drizzle_pars("ACS", "SBC", 6, "F122M").pixfrac == 0.8  # acs_sbc_blue_n6
    assert drizzle_pars("ACS", "SBC", 5, "F115LP").pixfrac == 1.0  # acs_sbc_blue_n2
    assert drizzle_pars("ACS", "SBC", 8, "F165LP").pixfrac == 1.0  # not a blue filter: base configuration
    assert drizzle_pars("WFC3", "IR", 6).pixfrac == 1.0
    one, two = drizzle_pars("WFC3", "IR", 1), drizzle_pars("WFC3", "IR", 2)
    assert (one.bits, one.skysub) == (65535, False) and (two.bits, two.skysub) == (528, True)


def test_wfpc2_counts_are_converted_with_the_gain():
    from mvmdb.process.inputs import _gain

    sci = fits.Header({"ATODGAIN": 7.0})
    assert _gain("WFPC2", "COUNTS", sci, fits.Header(), "u.fits") == 7.0
    assert _gain("WFPC2", "ELECTRONS", sci, fits.Header(), "u.fits") == 1.0
    assert _gain("WFC3", "COUNTS", sci, fits.Header(), "i.fits") == 1.0


def test_exposures_with_all_zero_sci_are_left_out():
    from types import SimpleNamespace

    from mvmdb.process.inputs import LayerInputs

    zero = SimpleNamespace(path="z.fits", chips=[SimpleNamespace(sci=np.zeros((4, 4)))])
    some = SimpleNamespace(path="s.fits", chips=[SimpleNamespace(sci=np.zeros((4, 4))),
                                                 SimpleNamespace(sci=np.eye(4))])
    li = LayerInputs([zero, some], [])
    assert li.drop_all_zero() == [some] and li.exposures == [some]


def test_direct_poller_honours_mvm_include_small(hst_dir, tmp_path, monkeypatch):
    name = "j8bt06nyq_sip_flt.fits"  # ACS/HRC
    row = PollerRow(name, 9440, "8BT", "06", 60.0, "F606W", "HRC", "skycell-p0046x03y19", "NEW", str(hst_dir / name))
    monkeypatch.setenv("MVM_INCLUDE_SMALL", "false")
    results = process_poller_direct([row], tmp_path)
    assert results and all(r.status == "skipped" and "MVM_INCLUDE_SMALL=false" in r.reason for r in results)

"""Chip footprints from real HST headers (tests/data/hst) and synthetic broken files."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from mvmdb.fitsio.chips import (
    DEFAULT_POINTS_PER_EDGE,
    ChipFootprint,
    FootprintError,
    chip_outline_pixels,
    read_chip_footprints,
)
from mvmdb.sky import cells_overlapping


def cells_of(chips):
    return sorted(set(cells_overlapping([c.polygon for c in chips]).names()))


def test_outline_pixels():
    x, y = chip_outline_pixels(4, 3, 2)
    assert x.tolist() == [-0.5, 1.5, 3.5, 3.5, 3.5, 1.5, -0.5, -0.5]
    assert y.tolist() == [-0.5, -0.5, -0.5, 1.0, 2.5, 2.5, 2.5, 1.0]
    with pytest.raises(ValueError):
        chip_outline_pixels(4, 3, 0)


def test_sample_ipppssoot_flc(hst_dir):
    path = hst_dir / "sample_ipppssoot_flc.fits"
    chips = read_chip_footprints(path)
    assert [c.extver for c in chips] == [1, 2]
    assert all(isinstance(c, ChipFootprint) for c in chips)
    # the shrunk 10x10 arrays are what NAXIS says: their outline is used (module docstring)
    assert [(c.naxis1, c.naxis2) for c in chips] == [(10, 10), (10, 10)]
    assert chips[0].ra.shape == (4 * DEFAULT_POINTS_PER_EDGE,)
    assert cells_of(chips) == ["skycell-p0121x12y16"]  # the archive's upstream test expects p0121x12y16
    # the outline is the full WCS (SIP + lookup tables) at the outer pixel edges
    with fits.open(path) as hdul:
        w = WCS(hdul["SCI", 1].header, hdul)
        assert w.sip is not None and w.cpdis1 is not None and w.det2im1 is not None
        ra, dec = w.pixel_to_world_values(-0.5, -0.5)
        full_x, full_y = chip_outline_pixels(4096, 2051, 16)
        full = w.pixel_to_world_values(full_x, full_y)
    assert (chips[0].ra[0], chips[0].dec[0]) == (float(ra), float(dec))
    # ... the full 4096 x 2051 chip (SIZAXIS) is in p0121x12y16 too; it also reaches ~300 px below
    # that cell's bottom edge, hence into y15 (cells overlap by 512 px on the +y side only)
    full_cells = cells_of([ChipFootprint(1, 4096, 2051, np.mod(full[0], 360), full[1])])
    assert full_cells == ["skycell-p0121x12y15", "skycell-p0121x12y16"]


def test_sample_ipppssoot_flt(hst_dir):
    chips = read_chip_footprints(hst_dir / "sample_ipppssoot_flt.fits", points_per_edge=4)
    assert len(chips) == 1 and chips[0].ra.size == 16
    assert cells_of(chips) == ["skycell-p0121x12y16"]


def test_header_only_files_use_sizaxis(hst_dir):
    chips = read_chip_footprints(hst_dir / "sample_flc_header.fits")
    assert [(c.extver, c.naxis1, c.naxis2) for c in chips] == [(1, 4096, 2048), (2, 4096, 2048)]
    assert chips[0].wcsname == "IDC_4bb1536cj-FIT_IMG_GAIAeDR3"
    # two ACS/WFC chips of ~202" x 100" (bounding-box diagonal in RA/Dec depends on the roll)
    for c in chips:
        span = np.hypot((c.ra.max() - c.ra.min()) * np.cos(np.radians(c.dec.mean())), c.dec.max() - c.dec.min())
        assert 0.05 < span < 0.1
    hrc = read_chip_footprints(hst_dir / "j8bt06nyq_sip_flt.fits")
    assert [(c.naxis1, c.naxis2) for c in hrc] == [(1024, 1024)]


def test_full_wfc3_ir_file_uses_naxis_not_sizaxis(hst_dir):
    (chip,) = read_chip_footprints(hst_dir / "ib6o21qnq_flt.fits")
    assert (chip.naxis1, chip.naxis2) == (1014, 1014)  # SIZAXIS says 1024 (reference pixels)
    assert len(cells_of([chip])) >= 1


@pytest.mark.parametrize("name,match", [
    ("test0.fits", "no celestial WCS"),  # WFPC2 GEIS conversion: chip 1 is UNITLESS/LINE
    ("reference_drizzlepac_square_drz_sci.fits", "no SCI extension"),
    ("sample_drc_header.fits", "chip size unknown"),
])
def test_unusable_real_files(hst_dir, name, match):
    with pytest.raises(FootprintError, match=match):
        read_chip_footprints(hst_dir / name)


def _write(tmp_path, header_cards, naxis=(20, 10)):
    hdr = fits.Header()
    for k, v in header_cards.items():
        hdr[k] = v
    sci = fits.ImageHDU(np.zeros(naxis[::-1], dtype=np.float32), header=hdr, name="SCI", ver=1)
    path = tmp_path / "chip.fits"
    fits.HDUList([fits.PrimaryHDU(), sci]).writeto(path)
    return path


TAN = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0, "CRPIX1": 10.0, "CRPIX2": 5.0,
       "CD1_1": -1e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 1e-5}


def test_synthetic_good_file(tmp_path):
    (chip,) = read_chip_footprints(_write(tmp_path, TAN), points_per_edge=1)
    assert (chip.extver, chip.naxis1, chip.naxis2) == (1, 20, 10)
    w = WCS(fits.Header(TAN))
    ra, dec = w.pixel_to_world_values([-0.5, 19.5, 19.5, -0.5], [-0.5, -0.5, 9.5, 9.5])
    np.testing.assert_allclose(chip.ra, ra, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chip.dec, dec, rtol=0, atol=1e-12)


def test_swapped_celestial_axes(tmp_path):
    cards = dict(TAN, CTYPE1="DEC--TAN", CTYPE2="RA---TAN", CRVAL1=20.0, CRVAL2=10.0,
                 CD1_1=1e-5, CD2_2=-1e-5)
    (chip,) = read_chip_footprints(_write(tmp_path, cards), points_per_edge=1)
    assert np.all(np.abs(chip.ra - 10.0) < 0.01) and np.all(np.abs(chip.dec - 20.0) < 0.01)


@pytest.mark.parametrize("cards,match", [
    (dict(TAN, CD1_1=0.0, CD2_2=0.0), "singular|unusable"),
    (dict(TAN, CD1_1=1e-5, CD1_2=2e-5, CD2_1=1e-5, CD2_2=2e-5), "singular|unusable"),
    ({"CTYPE1": "LINEAR", "CTYPE2": "LINEAR"}, "no celestial WCS"),
    ({}, "no celestial WCS"),
    (dict(TAN, CTYPE1="RA---SIN", CTYPE2="DEC--SIN", CD1_1=-10.0, CD2_2=10.0), "NaN"),
])
def test_synthetic_broken_wcs(tmp_path, cards, match):
    with pytest.raises(FootprintError, match=match):
        read_chip_footprints(_write(tmp_path, cards))


def test_missing_and_non_fits_files(tmp_path):
    with pytest.raises(FootprintError, match="no such file"):
        read_chip_footprints(tmp_path / "nope.fits")
    bad = tmp_path / "bad.fits"
    bad.write_text("not a FITS file\n")
    with pytest.raises(FootprintError):
        read_chip_footprints(bad)
    assert issubclass(FootprintError, ValueError)


def test_reads_headers_only(tmp_path, monkeypatch):
    """SCI pixel data are never read (header-only access)."""
    path = _write(tmp_path, TAN, naxis=(200, 100))

    def boom(self):
        raise AssertionError("pixel data were read")

    monkeypatch.setattr(fits.ImageHDU, "data", property(boom))
    (chip,) = read_chip_footprints(path)
    assert (chip.naxis1, chip.naxis2) == (200, 100)

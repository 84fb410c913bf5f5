"""Header-only exposure reading: structure walk, card values, typed header, hashes, fast footprints."""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pytest
from astropy.io import fits
from ingest_data import HRC, HST, IR, UVIS, WFC, patch_cards, variant

from mvmdb.fitsio.chips import FootprintError, read_chip_footprints
from mvmdb.fitsio.exposure import (
    HeaderError,
    RawHeader,
    chip_footprints,
    filetype_from_name,
    parse_card_value,
    parse_exposure_header,
    product_suffix,
    read_exposure_file,
    wcs_hash,
)

ALL_REAL = sorted(HST.glob("*.fits"))


def _astropy_headers(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            return [hdu.header.copy() for hdu in hdul]


@pytest.mark.parametrize("path", ALL_REAL, ids=lambda p: p.name)
def test_raw_header_values_equal_astropy(path):
    for header in _astropy_headers(path):
        raw = RawHeader(header.tostring().encode("ascii"))
        for key in raw:
            expected = header[key]
            got = raw[key]
            if type(expected).__name__ == "Undefined":
                assert got is None
            elif isinstance(expected, float) and math.isnan(expected):
                assert isinstance(got, float) and math.isnan(got)
            else:
                assert got == expected and type(got) is type(expected), key


@pytest.mark.parametrize(
    ("card", "value"),
    [
        ("A       = 'it''s   '           / comment", "it's"),
        ("A       = '  lead'", "  lead"),
        ("A       = ''", ""),
        ("A       =                    T", True),
        ("A       =                    F / no", False),
        ("A       =                  -12", -12),
        ("A       =             1.5D-03", 1.5e-3),
        ("A       = .5E2", 50.0),
        ("A       =", None),
        ("A       = (1.0, 2.0)", complex(1.0, 2.0)),
    ],
)
def test_parse_card_value(card, value):
    assert parse_card_value(card.ljust(80).encode()) == value


@pytest.mark.parametrize(
    ("card", "value"),
    [
        (b"TARGNAME= 'WF\x003-ERS'", "WF\ufffd3-ERS"),  # a NUL, which PostgreSQL text refuses
        (b"TARGNAME= 'A\tB\x7f'", "A\ufffdB\ufffd"),
        (b"TARGNAME= 'caf\xc3\xa9'", "caf\ufffd\ufffd"),  # not ASCII at all
        (b"A       = (1.0, \x002.0)", None),  # astropy's parser gets the cleaned card too
    ],
)
def test_non_printable_bytes_read_as_replacement_characters(card, value):
    """FITS cards are ASCII 32-126: any other byte of a damaged header reads as U+FFFD, never as NUL."""
    assert parse_card_value(card.ljust(80)) == value


def test_read_real_files_structure():
    exp = read_exposure_file(WFC)
    assert [v for v, _ in exp.sci] == [1, 2]
    assert exp.extnames[:6] == ["SCI", "ERR", "DQ", "SCI", "ERR", "DQ"]
    assert exp.primary["ROOTNAME"] == "jbt122x8q"
    assert exp.size == WFC.stat().st_size
    assert read_exposure_file(HRC).sci[0][1]["SIZAXIS1"] == 1024


def test_typed_header():
    h = parse_exposure_header(read_exposure_file(UVIS).primary)
    assert (h.ipppssoot, h.instrument, h.detector, h.filter, h.raw_filter) == ("ib4606c5q", "WFC3", "UVIS", "f555w", "F555W")
    assert h.exptime == 1.0 and h.expstart == pytest.approx(55611.02640872) and h.date_obs == dt.date(2011, 2, 19)
    assert (h.proposid, h.program_id, h.obset_id) == (11665, "B46", "06")
    assert h.keywords["CHINJECT"] == "NONE" and len(h.header_hash) == 64
    acs = parse_exposure_header(read_exposure_file(WFC).primary)
    assert (acs.instrument, acs.detector, acs.filter, acs.raw_filter) == ("ACS", "WFC", "f814w", "CLEAR1L;F814W")


def test_wfpc2_legacy_header_is_typed_with_pc_detector():
    h = parse_exposure_header(read_exposure_file(HST / "test0.fits").primary)
    assert (h.ipppssoot, h.instrument, h.detector, h.filter) == ("u2eq0201t", "WFPC2", "PC", "f673n")
    assert h.date_obs == dt.date(1994, 5, 19)  # old DD/MM/YY form


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (("ROOTNAME",), "missing required keyword ROOTNAME"),
        (("EXPTIME", "FILTER"), "missing required keywords EXPTIME, FILTER"),
        (("DETECTOR",), "missing required keyword DETECTOR"),
        (("INSTRUME",), "missing required keyword INSTRUME"),
    ],
)
def test_missing_keywords_are_named(tmp_path, remove, message):
    path = variant(IR, tmp_path / "x_flt.fits", remove=remove)
    with pytest.raises(HeaderError, match=message):
        parse_exposure_header(read_exposure_file(path).primary)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ROOTNAME": "hst_skycell-p1749x18y06"}, "not an exposure rootname"),
        ({"INSTRUME": "STIS"}, "has no MVM layers"),
        ({"DETECTOR": "HRC"}, "is not a WFC3 imaging detector"),
        ({"EXPTIME": "long"}, "not a finite number"),
        ({"FILTER": 160}, "is not a filter name"),
    ],
)
def test_invalid_values(tmp_path, change, message):
    path = variant(IR, tmp_path / "x_flt.fits", primary=change)
    with pytest.raises(HeaderError, match=message):
        parse_exposure_header(read_exposure_file(path).primary)


def test_bad_files(tmp_path):
    with pytest.raises(HeaderError, match="no such file"):
        read_exposure_file(tmp_path / "missing.fits")
    (tmp_path / "empty.fits").write_bytes(b"")
    with pytest.raises(HeaderError, match="empty file"):
        read_exposure_file(tmp_path / "empty.fits")
    (tmp_path / "text.fits").write_text("hello world\n" * 300)
    with pytest.raises(HeaderError, match="not a FITS file"):
        read_exposure_file(tmp_path / "text.fits")
    with pytest.raises(HeaderError, match="directory"):
        read_exposure_file(tmp_path)
    data = IR.read_bytes()
    for cut in (100, 2880 + 17, len(data) - 2880):
        (tmp_path / "cut.fits").write_bytes(data[:cut])
        with pytest.raises(HeaderError, match="truncated"):
            read_exposure_file(tmp_path / "cut.fits")
    no_end = data[:2880].replace(b"END" + b" " * 77, b" " * 80)
    (tmp_path / "noend.fits").write_bytes(no_end)
    with pytest.raises(HeaderError):
        read_exposure_file(tmp_path / "noend.fits")


def test_names():
    assert filetype_from_name("/a/ib4606c5q_flc.fits") == "flc"
    assert filetype_from_name("J8BT06NYQ_FLT.FITS") == "flt"
    assert filetype_from_name("sample_flc_header.fits") is None
    assert product_suffix("hst_skycell-p1749x18y06_wfc3_uvis_f658n_all_drc.fits") == "drc"
    assert product_suffix("reference_drizzlepac_square_drz_sci.fits") == "drz"
    assert product_suffix("ib4606c5q_flc.fits") is None


def test_hashes(tmp_path):
    base = read_exposure_file(IR)
    h0 = parse_exposure_header(base.primary).header_hash
    same = read_exposure_file(variant(IR, tmp_path / "same_flt.fits", primary={"HISTORY": "touched"}))
    assert parse_exposure_header(same.primary).header_hash == h0
    assert wcs_hash(same.sci) == wcs_hash(base.sci)
    moved = read_exposure_file(variant(IR, tmp_path / "moved_flt.fits",
                                       sci={"CRVAL1": base.sci[0][1]["CRVAL1"] + 1e-4, "WCSNAME": "NEW"}))
    assert wcs_hash(moved.sci) != wcs_hash(base.sci)
    assert parse_exposure_header(moved.primary).header_hash == h0
    longer = read_exposure_file(variant(IR, tmp_path / "t_flt.fits", primary={"EXPTIME": 10.0}))
    assert parse_exposure_header(longer.primary).header_hash != h0


@pytest.mark.parametrize("path", [IR, HRC, UVIS, WFC, HST / "ib6o21qnq_flt.fits"], ids=lambda p: p.name)
def test_footprints_equal_astropy_reader(path):
    fast = chip_footprints(read_exposure_file(path))
    ref = read_chip_footprints(path)
    assert [c.extver for c in fast] == [c.extver for c in ref]
    for a, b in zip(fast, ref):
        assert (a.naxis1, a.naxis2) == (b.naxis1, b.naxis2)
        assert np.max(np.abs(a.ra - b.ra)) < 1e-9 and np.max(np.abs(a.dec - b.dec)) < 1e-9


def test_fast_footprint_with_rotated_cd_and_high_order_sip(tmp_path):
    path = variant(HRC, tmp_path / "r_flt.fits", sci={"CD1_2": 3e-6, "CD2_1": -2e-6, "A_3_0": 1e-9, "B_0_3": -2e-9,
                                                         "CRVAL1": 359.999, "CRVAL2": 75.0})
    fast = chip_footprints(read_exposure_file(path))
    ref = read_chip_footprints(path)
    assert np.max(np.abs(((fast[0].ra - ref[0].ra) + 180) % 360 - 180)) < 1e-9
    assert np.max(np.abs(fast[0].dec - ref[0].dec)) < 1e-9


@pytest.mark.parametrize(
    ("sci", "message"),
    [
        ({"CD1_1": 0.0, "CD1_2": 0.0}, "singular"),
        ({"CRVAL1": "NAN"}, "NaN"),
        ({"CD2_2": "'fast'"}, "NaN or non-numeric"),
        ({"CTYPE1": "UNITLESS", "CTYPE2": "LINE"}, "celestial"),
    ],
)
def test_unusable_wcs(tmp_path, sci, message):
    path = variant(HRC, tmp_path / "bad_flt.fits", sci={k: v for k, v in sci.items() if not isinstance(v, str) or
                                                         k.startswith("CTYPE")})
    for key, text in sci.items():
        if isinstance(text, str) and not key.startswith("CTYPE"):
            patch_cards(path, key, text)
    with pytest.raises(FootprintError, match=message):
        chip_footprints(read_exposure_file(path))

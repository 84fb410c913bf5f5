"""Space-time MOC of exposures: built from chip polygons or catalog ranges, queried by position and time."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.time import Time

from mvmdb.fitsio.moc import read_stmoc, write_stmoc
from mvmdb.sky.healpix import polygon_ranges
from mvmdb.sky.stmoc import (
    SPACE_ORDER,
    TIME_ORDER,
    observed,
    space_resolution_arcsec,
    stmoc_from_polygons,
    stmoc_from_ranges,
    time_resolution_s,
)

# two 2-chip exposures (3.6' x 1.8' chips) of one field, 2011-03-10 and 2013-05-20, and one elsewhere
CHIP1 = (np.array([150.07, 150.13, 150.13, 150.07]), np.array([2.17, 2.17, 2.20, 2.20]))
CHIP2 = (CHIP1[0], CHIP1[1] + 0.031)
FAR = (CHIP1[0] + 10.0, CHIP1[1] - 5.0)
START = np.array([55630.10, 56432.33, 56432.40])  # MJD UTC
END = START + np.array([500.0, 252.9, 900.0]) / 86400.0
POLYGONS = [CHIP1, CHIP2, CHIP1, CHIP2, FAR]
OWNERS = [0, 0, 1, 1, 2]
INSIDE = (150.10, 2.185)


@pytest.fixture(scope="module")
def stmoc():
    return stmoc_from_polygons(POLYGONS, START, END, OWNERS)


def test_resolution():
    assert (SPACE_ORDER, TIME_ORDER) == (13, 41)
    assert space_resolution_arcsec() == pytest.approx(25.77, abs=0.01)
    assert time_resolution_s() == 1.048576 and time_resolution_s(61) == 1e-6


def test_observed_at_a_chip_position_and_time(stmoc):
    assert stmoc.max_depth == (TIME_ORDER, SPACE_ORDER)
    assert observed(stmoc, *INSIDE, START[0], END[0]).item()
    mid = START[0] + 100 / 86400
    assert observed(stmoc, *INSIDE, mid, mid).item()  # an instant inside the exposure
    assert observed(stmoc, *INSIDE, Time("2011-01-01"), Time("2011-12-31")).item()  # Time values too


def test_not_observed_a_year_before_or_elsewhere(stmoc):
    assert not observed(stmoc, *INSIDE, START[0] - 365.25, START[0] - 300).item()
    assert not observed(stmoc, *INSIDE, END[0] + 10 / 86400, START[1] - 1).item()  # between the visits
    assert not observed(stmoc, 150.5, 2.185, START[0], END[-1]).item()  # another position, any time
    far = (float(FAR[0].mean()), float(FAR[1].mean()))
    assert observed(stmoc, *far, START[2], END[2]).item()
    assert not observed(stmoc, *far, START[0], END[1]).item()  # the far field only in its own exposure


def test_vectorized_positions(stmoc):
    ra = np.array([[INSIDE[0], 150.5], [float(FAR[0].mean()), INSIDE[0]]])
    dec = np.array([[INSIDE[1], 2.185], [float(FAR[1].mean()), 2.216]])  # last: on the second chip
    got = observed(stmoc, ra, dec, START[1], END[1])
    assert got.shape == (2, 2) and got.tolist() == [[True, False], [False, True]]


def test_ranges_and_polygons_agree(stmoc):
    parts = [polygon_ranges(ra, dec, SPACE_ORDER) for ra, dec in POLYGONS]
    rows = np.repeat(OWNERS, [len(p) for p in parts])
    from_ranges = stmoc_from_ranges(np.concatenate(parts), rows, Time(START, format="mjd"), Time(END, format="mjd"))
    assert from_ranges == stmoc


def test_empty_and_bad_input():
    empty = stmoc_from_ranges(np.zeros((0, 2), np.int64), [], [55630.0], [55630.1])
    assert empty.is_empty() and not observed(empty, *INSIDE, 0.0, 1e5).item()
    with pytest.raises(ValueError):
        stmoc_from_polygons([CHIP1], [55630.1], [55630.0])  # ends before it starts
    with pytest.raises(ValueError):
        stmoc_from_polygons([CHIP1], [55630.1], [55630.2], owners=[1])
    with pytest.raises(ValueError):
        stmoc_from_polygons([CHIP1], [55630.1], [55630.2], time_order=62)
    with pytest.raises(ValueError):
        observed(empty, *INSIDE, 55631.0, 55630.0)


def test_fits_round_trip(stmoc, tmp_path):
    path = write_stmoc(stmoc, tmp_path / "cov.fits", keywords={"ORIGIN": "mvmdb"})
    assert path.is_file() and not (tmp_path / "cov.fits.part").exists()
    back = read_stmoc(path)
    assert back == stmoc
    assert observed(back, *INSIDE, START[0], END[0]).item()
    from astropy.io import fits

    with fits.open(path) as hdul:
        assert hdul[1].header["MOCDIM"] == "TIME.SPACE" and hdul[1].header["ORIGIN"] == "mvmdb"

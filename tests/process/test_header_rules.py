"""The archive's header rules (packaged keyword lists) and blending."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from mvmdb.process.header_rules import apply_function, blend, hdrtab_rows, load_rules
from mvmdb.process.product_headers import outline_polygons


@pytest.mark.parametrize("instrument, n_columns", [("WFC3", 276), ("ACS", 313), ("WFPC2", 274)])
def test_rules_load(instrument, n_columns):
    r = load_rules(instrument)
    assert r.version == (1.0 if instrument == "WFPC2" else 1.1)
    assert r.columns[:3] == ("ROOTNAME", "EXTNAME", "EXTVER")
    assert ("EXPTIME", "TEXPTIME", "sum") in r.functions
    assert ("ASN_ID" in r.deletes) == (instrument != "WFPC2")
    # the archive's HDRTAB has these plus SVMROOTNAME, GENDATE (first) and HAPEXPNAME (last): 279 for WFC3
    assert len(r.columns) == n_columns


def test_functions():
    assert apply_function("multi", ["A", "A"]) == "A"
    assert apply_function("multi", ["A", "B"]) == "MULTIPLE"
    assert apply_function("sum", [1.5, 2.0]) == 3.5
    assert apply_function("sum", [1, 2]) == 3
    assert apply_function("mean", [1.0, 3.0]) == 2.0
    assert apply_function("zero", []) == 0 and apply_function("float_one", []) == 1.0
    assert apply_function("first", []) is None


def test_blend_keeps_first_removes_table_only_and_deletes_then_applies_functions():
    r = load_rules("WFC3")
    a = fits.Header({"TARGNAME": "A", "EXPTIME": 100.0, "DQICORR": "COMPLETE", "ASN_ID": "X1", "CRDS_CTX": "p1",
                     "LINENUM": "1.001", "APERTURE": "IR"})
    b = fits.Header({"TARGNAME": "B", "EXPTIME": 50.0, "DQICORR": "COMPLETE", "ASN_ID": "X2", "CRDS_CTX": "p2",
                     "LINENUM": "2.001", "APERTURE": "IR-FIX"})
    h = blend([a, b], r)
    assert h["TARGNAME"] == "A" and h["EXPTIME"] == 150.0 and h["TEXPTIME"] == 150.0
    assert "DQICORR" not in h and "ASN_ID" not in h  # table only; deleted
    assert h["CRDS_CTX"] == "p1"  # no rule: the first input's
    assert h["LINENUM"] == "1.001"  # deleted, then set again by its 'first' rule (as the archive)
    assert h["APERTURE"] == "MULTIPLE"


def test_hdrtab_rows_one_per_chip_with_nan_for_missing():
    r = load_rules("WFC3")
    p = fits.Header({"ROOTNAME": "IB6O21QNQ", "DATE": "2022-03-31", "TARGNAME": "T"})
    s1, s2 = fits.Header({"EXTVER": 1, "PHOTFLAM": 1e-19}), fits.Header({"EXTVER": 2})
    rows = hdrtab_rows([(p, [s1, s2], "ib6o21qnq_flt.fits")], r, skies=[0.5, 0.25])
    assert [row["EXTVER"] for row in rows] == [1, 2]
    assert rows[0]["SVMROOTNAME"] == "ib6o21qnq" and rows[0]["GENDATE"] == "2022-03-31"
    assert rows[0]["TARGNAME"] == "T" and rows[0]["PHOTFLAM"] == 1e-19 and rows[1]["PHOTFLAM"] is None
    assert rows[1]["MDRIZSKY"] == 0.25 and rows[0]["HAPEXPNAME"] == "ib6o21qnq_flt.fits"
    assert list(rows[0])[:5] == ["SVMROOTNAME", "GENDATE", "ROOTNAME", "EXTNAME", "EXTVER"]


def test_outline_clusters_hulls_and_clips():
    sq = np.array([[0, 0], [5, 0.01], [10, 0], [10, 10], [0, 10]], float)
    out = outline_polygons([sq, sq + [5, 5], sq + [100, 100]], (30, 30))
    assert len(out) == 1  # the far square lies off the box; the two overlapping ones make one outline
    assert len(out[0]) == 6  # hull of two overlapping squares: a hexagon
    clipped = outline_polygons([sq - 5], (30, 30))[0]
    assert clipped[:, 0].min() == -0.5 and clipped[:, 1].min() == -0.5

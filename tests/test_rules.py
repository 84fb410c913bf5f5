"""Archive conventions (spec §3.1, §3.2, §4.2-§4.5) as pure functions."""

from __future__ import annotations

import pytest

from mvmdb import rules

GOOD = {
    "INSTRUME": "WFC3", "DETECTOR": "UVIS", "FILTER": "F606W", "OBSTYPE": "IMAGING", "DRIZCORR": "PERFORM",
    "MTFLAG": "", "SCAN_TYP": "N", "TARGNAME": "NGC104", "EXPTIME": 500.0, "CHINJECT": "NONE", "QUALITY": "",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CLEAR1L;F814W", "f814w"),
        ("F606W;POL60V", "f606w-pol60v"),
        ("POL0UV;F330W", "f330w-pol0uv"),
        ("CLEAR1L;CLEAR2L", "clear"),
        ("F140LP;N/A;F140LP", "f140lp"),
        ("F160W", "f160w"),
        ("F673N;", "f673n"),  # WFPC2, empty FILTNAM2
        ("F606W;CLEAR2S", "f606w"),
        ("N/A;F122M", "f122m"),
        ("F555W;F814W", "f555w-f814w"),
    ],
)
def test_normalize_filter(raw, expected):
    assert rules.normalize_filter(raw) == expected


def test_raw_filter_string_per_instrument():
    assert rules.raw_filter_string({"INSTRUME": "ACS", "FILTER1": "clear1l", "FILTER2": "F814W"}) == "CLEAR1L;F814W"
    assert rules.raw_filter_string({"INSTRUME": "WFPC2", "FILTNAM1": "F673N", "FILTNAM2": ""}) == "F673N;"
    assert rules.raw_filter_string({"INSTRUME": "WFC3", "FILTER": "f160w"}) == "F160W"


def test_program_and_obset_ids():
    assert rules.program_id("ib4606c5q_flc.fits") == "B46"
    assert rules.program_id("hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits") == "BL7"
    assert rules.obset_id("ib4606c5q", "WFC3", "STIS", "06.004") == "06"
    assert rules.obset_id("jbl70rtvq", "ACS", "ACS", "0R.001") == "0R"  # INSTRUME upper case: never LINENUM
    assert rules.obset_id("u2eq0201t", "WFPC2", "WFPC2", "2A.003") == "2A"  # WFPC2: LINENUM before '.'
    assert rules.obset_id("u2eq0201t", "WFPC2", "ACS", "2A.003") == "02"
    assert rules.obset_id("u2eq0201t", "WFPC2", "WFPC2", "123.003") == "02"  # not a 2-character id


def test_instrument_from_rootname():
    assert [rules.instrument_from_rootname(r) for r in ("ib4606c5q", "jbt122x8q", "o4sp040b0", "u2eq0201t", "x", "w1")] \
        == ["WFC3", "ACS", "STIS", "WFPC2", "FOC", "WFPC"]
    assert rules.instrument_from_rootname("") is None


def test_usable_exposure_has_no_reason():
    assert rules.exclusion_reason(GOOD) is None
    assert rules.exclusion_reason({**GOOD, "CHINJECT": None}) is None  # missing CHINJECT: not injected


@pytest.mark.parametrize(
    ("change", "category"),
    [
        ({"OBSTYPE": "SPECTROSCOPIC"}, "not imaging"),
        ({"OBSTYPE": None}, "not imaging"),
        ({"DRIZCORR": "OMIT"}, "drizzling not done"),
        ({"DRIZCORR": "SKIPPED"}, "drizzling not done"),
        ({"MTFLAG": "T"}, "moving target"),
        ({"MTFLAG": True}, "moving target"),
        ({"SCAN_TYP": "C"}, "spatial scan"),
        ({"SCAN_TYP": "D"}, "spatial scan"),
        ({"TARGNAME": "DARK-NM"}, "calibration target"),
        ({"TARGNAME": "TUNGSTEN"}, "calibration target"),
        ({"TARGNAME": "BIAS"}, "calibration target"),
        ({"TARGNAME": "INTFLAT"}, "calibration target"),
        ({"TARGNAME": "DEUTERIUM"}, "calibration target"),
        ({"TARGNAME": "EARTH-CALIB"}, "calibration target"),
        ({"EXPTIME": 0.0}, "zero exposure time"),
        ({"EXPTIME": 5e-6}, "zero exposure time"),
        ({"CHINJECT": "LINE17"}, "charge injection"),
        ({"FILTER": "G280"}, "grism or prism"),
        ({"QUALITY": "GSFAIL"}, "guide star problem"),
        ({"QUALITY": "tdf-down at 12:00"}, "guide star problem"),
    ],
)
def test_each_content_rule(change, category):
    keywords = {**GOOD, **change}
    reason = rules.exclusion_reason(keywords)
    assert reason is not None and rules.reason_category(reason) == category
    assert rules.is_content_reason(reason)


@pytest.mark.parametrize(
    ("instrument", "detector", "filters", "category"),
    [
        ("WFC3", "IR", {"FILTER": "G141"}, "grism or prism"),
        ("WFC3", "IR", {"FILTER": "G102"}, "grism or prism"),
        ("ACS", "WFC", {"FILTER1": "G800L", "FILTER2": "CLEAR2L"}, "grism or prism"),
        ("ACS", "SBC", {"FILTER1": "PR110L", "FILTER2": "N/A"}, "grism or prism"),
        ("ACS", "HRC", {"FILTER1": "CLEAR1S", "FILTER2": "PR200L"}, "grism or prism"),
        ("ACS", "SBC", {"FILTER1": "BLOCK1", "FILTER2": "N/A"}, "SBC internal calibration"),
        ("ACS", "WFC", {"FILTER1": "FR388N", "FILTER2": "CLEAR2L"}, "ramp filter"),
        ("WFPC2", None, {"FILTNAM1": "FR533N", "FILTNAM2": ""}, "ramp filter"),
    ],
)
def test_filter_rules(instrument, detector, filters, category):
    keywords = {k: v for k, v in GOOD.items() if k != "FILTER"}
    keywords.update(INSTRUME=instrument, DETECTOR=detector, IMAGETYP="EXT", **filters)
    assert rules.reason_category(rules.exclusion_reason(keywords)) == category


def test_rule_order_first_match_wins():
    reason = rules.exclusion_reason({**GOOD, "OBSTYPE": "SPECTROSCOPIC", "FILTER": "G280", "MTFLAG": "T"})
    assert rules.reason_category(reason) == "not imaging"


def test_wfpc2_rules_use_imagetyp_and_any_true_mtflag():
    wfpc2 = {"INSTRUME": "WFPC2", "FILTNAM1": "F606W", "FILTNAM2": "", "EXPTIME": 100.0, "IMAGETYP": "EXT"}
    assert rules.exclusion_reason(wfpc2) is None  # no OBSTYPE needed
    assert rules.reason_category(rules.exclusion_reason({**wfpc2, "IMAGETYP": "DARK"})) == "not imaging"
    assert rules.reason_category(rules.exclusion_reason({**wfpc2, "MTFLAG": True})) == "moving target"
    assert rules.exclusion_reason({**wfpc2, "TARGNAME": "DARK"}) is None  # WFPC2 calibrations fail IMAGETYP instead


def test_scan_and_chinject_only_for_wfc3():
    acs = {**GOOD, "INSTRUME": "ACS", "DETECTOR": "WFC", "FILTER1": "F606W", "FILTER2": "CLEAR2L"}
    assert rules.exclusion_reason({**acs, "SCAN_TYP": "C", "CHINJECT": "LINE17"}) is None
    assert rules.exclusion_reason({**GOOD, "DETECTOR": "IR", "CHINJECT": "LINE17"}) is None


@pytest.mark.parametrize(
    ("detector", "include_small", "excluded"),
    [("HRC", True, False), ("HRC", False, True), ("SBC", False, True), ("WFC", False, False)],
)
def test_switch_include_small(detector, include_small, excluded):
    keywords = {**GOOD, "INSTRUME": "ACS", "DETECTOR": detector, "FILTER1": "F606W", "FILTER2": "CLEAR2S"}
    reason = rules.exclusion_reason(keywords, include_small=include_small)
    assert (reason is not None) == excluded
    if excluded:
        assert rules.reason_category(reason) == "small detector" and not rules.is_content_reason(reason)


@pytest.mark.parametrize(
    ("instrument", "detector", "filetype", "only_cte", "excluded"),
    [
        ("WFC3", "UVIS", "flt", True, True),
        ("ACS", "WFC", "flt", True, True),
        ("WFC3", "UVIS", "flc", True, False),
        ("WFC3", "UVIS", "flt", False, False),
        ("WFC3", "IR", "flt", True, False),
        ("ACS", "HRC", "flt", True, False),
    ],
)
def test_switch_only_cte(instrument, detector, filetype, only_cte, excluded):
    reason = rules.switch_exclusion(instrument, detector, filetype, only_cte=only_cte)
    assert (reason is not None) == excluded
    if excluded:
        assert rules.reason_category(reason) == "not CTE-corrected" and not rules.is_content_reason(reason)


def test_content_rules_take_precedence_over_switches():
    keywords = {**GOOD, "OBSTYPE": "SPECTROSCOPIC"}
    assert rules.exclusion_reason(keywords, only_cte=True, filetype="flt").startswith("not imaging")


def test_superseded_reason():
    reason = rules.superseded_reason("IB4606C5Q")
    assert reason == "superseded by ib4606c5q_flc.fits"
    assert rules.reason_category(reason) == "superseded" and not rules.is_content_reason(reason)
    assert not rules.is_content_reason(None)


@pytest.mark.parametrize("value", ["on", "yes", "true", " TRUE ", "Yes\n", True])
def test_parse_switch_true(value):
    assert rules.parse_switch(value) is True


@pytest.mark.parametrize("value", ["off", "no", "false", " False", "NO ", False])
def test_parse_switch_false(value):
    assert rules.parse_switch(value) is False


@pytest.mark.parametrize("value", ["1", "0", "maybe", "", "t", "enabled"])
def test_parse_switch_rejects(value):
    with pytest.raises(ValueError, match="MVM_ONLY_CTE='.*' is not a switch value: use one of on/yes/true"):
        rules.parse_switch(value, name="MVM_ONLY_CTE")


def test_switch_from_env_defaults():
    assert rules.switch_from_env({}, "MVM_INCLUDE_SMALL", True) is True
    assert rules.switch_from_env({}, "MVM_ONLY_CTE", False) is False
    assert rules.switch_from_env({"MVM_INCLUDE_SMALL": "off"}, "MVM_INCLUDE_SMALL", True) is False
    with pytest.raises(ValueError):
        rules.switch_from_env({"MVM_INCLUDE_SMALL": "2"}, "MVM_INCLUDE_SMALL", True)


def test_layer_scales():
    assert rules.layer_scales("WFC3", "IR") == ("coarse", "fine")
    assert rules.layer_scales("WFPC2", "1") == ("coarse", "fine")  # WFPC2 detector forced to PC
    assert rules.layer_scales("WFC3", "UVIS") == ("fine",)
    assert rules.layer_scales("ACS", "WFC") == ("fine",)
    assert rules.layer_scales("ACS", "SBC") == ("fine",)


def test_layer_and_product_names():
    coarse = rules.layer_name("skycell-p1889x07y19", "WFC3", "IR", "f160w", "coarse")
    assert coarse == "hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all"
    assert rules.product_filename(coarse, "flt") == "hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all_drz.fits"
    fine = rules.layer_name("skycell-p1889x07y19", "ACS", "WFC", "f775w", "fine")
    assert rules.product_filename(fine, "flc") == "hst_skycell-p1889x07y19_acs_wfc_f775w_all_drc.fits"
    assert rules.layer_name("skycell-p0001x01y01", "WFPC2", "3", "f606w", "fine") == \
        "hst_skycell-p0001x01y01_wfpc2_pc_f606w_all"
    with pytest.raises(ValueError):
        rules.layer_name("skycell-p0001x01y01", "ACS", "WFC", "f606w", "medium")
    with pytest.raises(ValueError):
        rules.product_filename(fine, "raw")


def test_layer_filetype_never_mixes():
    assert rules.layer_filetype(["flt", "flt"]) == "flt"
    assert rules.layer_filetype(["flt", "flc"]) == "flc"
    assert rules.layer_filetype([]) == "flt"


def test_is_ipppssoot():
    assert rules.is_ipppssoot("ib4606c5q")
    assert not rules.is_ipppssoot("jbt122x8q_drc.fits")
    assert not rules.is_ipppssoot("hst_skycell-p1749x18y06_wfc3_uvis_f658n_all")


def test_planner_rules_shared_with_ingest():
    assert rules.filter_problem("f775w") is None and rules.filter_problem("f606w-pol60v") is None
    for bad in ("f775w/x", "f775w.x", "..", "f 775", "", "a" * 41, "f775w\\x"):
        assert rules.filter_problem(bad) is not None, bad
    assert [rules.proposal_id(v) for v in (12286, "12286", 0, -1, 2**31, None, True, 1.5, "x")] == \
        [12286, 12286, 0, None, None, None, None, None, None]
    assert rules.catalog_exclusion({**GOOD, "PROPOSID": 12286}) is None
    assert rules.catalog_exclusion(GOOD) == "no proposal id (PROPOSID=None)"
    assert rules.catalog_exclusion({**GOOD, "PROPOSID": 2**31}).startswith("no proposal id")
    assert rules.content_exclusion({**GOOD, "EXPTIME": -5.0}) == "negative exposure time (EXPTIME=-5.0)"
    assert rules.int_problem("EXTVER", 40000) == "EXTVER 40000 is out of range (1 .. 32767)"
    assert rules.int_problem("EXTVER", 2**40) is not None and rules.int_problem("EXTVER", 2) is None
    assert rules.int_problem("NAXIS1", True) == "NAXIS1 True is not an integer"


def test_paths_the_catalog_and_the_poller_can_hold():
    assert rules.path_problem("/data/ib4606c5q_flc.fits") is None
    assert "UTF-8" in rules.path_problem("/data/bad\udcff_flc.fits")
    assert rules.display_path("/data/bad\udcff_flc.fits") == "/data/bad\\xff_flc.fits"
    assert rules.display_path(b"/data/bad\xff_flc.fits") == "/data/bad\\xff_flc.fits"
    assert rules.display_path("/data/ok_flc.fits") == "/data/ok_flc.fits"
    for bad in ("/a,b/x_flt.fits", "/a/x\n_flt.fits", "/a/x\u2028_flt.fits"):
        assert "comma or a line break" in rules.path_problem(bad)
    assert rules.path_problem("/" + "x" * 4095).startswith("path too long (4096 bytes")
    assert rules.catalog_filename("/d/renamed.fits", "ib4606c5q", "flc") == "ib4606c5q_flc.fits"
    assert rules.catalog_filename("/d/x_flt.fits", "ib4606c5q", "flc") == "ib4606c5q_flc.fits"  # type from FILENAME
    assert rules.catalog_filename("/d/hst_1_0r_acs_wfc_f775w_jbl70rtv_flc.fits", "jbl70rtvq", "flc") == \
        "hst_1_0r_acs_wfc_f775w_jbl70rtv_flc.fits"

"""WCS solution families from WCSNAME (rules.wcs_family)."""

from __future__ import annotations

import pytest

from mvmdb import rules


@pytest.mark.parametrize(
    ("wcsname", "family"),
    [
        ("IDC_4bb1536cj-FIT_IMG_GAIAeDR3", "gaia-fit"),
        ("IDC_2731450pi-FIT_REL_GAIADR2", "gaia-fit"),
        ("IDC_w3m18525i-FIT_SVM_GAIAeDR3", "gaia-fit"),
        ("IDC_4bb1536cj-FIT_EVM_GAIADR3", "gaia-fit"),
        ("idc_4bb1536cj-fit_img_gaiaedr3 ", "gaia-fit"),
        ("IDC_4bb1536cj-GSC240", "a-priori"),
        ("IDC_w3m18525i-HSC30", "a-priori"),
        ("IDC_4bb1536cj", "pipeline-default"),
        ("OPUS", "pipeline-default"),
        ("", "pipeline-default"),
        ("   ", "pipeline-default"),
        (None, "pipeline-default"),
        ("TWEAK_1", "other"),
    ],
)
def test_wcs_family(wcsname, family):
    assert rules.wcs_family(wcsname) == family
    assert family in rules.WCS_FAMILIES


def test_simulated_files_are_gaia_fit_by_default_and_wcs_error_visits_are_not():
    # the simulator writes IDC_<idctab>-FIT_SVM_GAIAeDR3, and IDC_<idctab> on wcs_error visits
    assert rules.wcs_family("IDC_4bb1536cj-FIT_SVM_GAIAeDR3") == "gaia-fit"
    assert rules.wcs_family("IDC_4bb1536cj") == "pipeline-default"

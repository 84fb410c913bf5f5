"""Values the HST archive's pipeline gives for the three real WFC3/IR FLTs of the shared files.

Measured once with drizzlepac 3.11.0 ``runmultihap`` on mvmdb's own poller of
``skycell-p0647x17y20`` (files ``ib6o21qnq``, ``ib6o21qqq``, ``ib6o23rtq``; uint8 arrays cast to
float32 / DQ int16 first; offline, ``iref`` an empty folder), 2026-12-06, issue 13. drizzlepac
is not a dependency: these are plain numbers. ``benchmarks/compare_archive.py`` re-measures them.

Pixel positions are 0-based sky-cell indices; boxes ``(xmin, xmax, ymin, ymax)`` inclusive.
"""

SKYCELL = "skycell-p0647x17y20"
FILES = ("ib6o21qnq_flt.fits", "ib6o21qqq_flt.fits", "ib6o23rtq_flt.fits")

#: The product names (identical in mvmdb).
PRODUCTS = (
    "hst_skycell-p0647x17y20_wfc3_ir_f098m_all_drz.fits",
    "hst_skycell-p0647x17y20_wfc3_ir_f098m_coarse-all_drz.fits",
    "hst_skycell-p0647x17y20_wfc3_ir_f140w_all_drz.fits",
    "hst_skycell-p0647x17y20_wfc3_ir_f140w_coarse-all_drz.fits",
)

#: Per product: pixels with data (WHT > 0) outside the cell's last two rows/columns, the sum of
#: SCI (e-/s) over them, and the bounding box of all pixels with data.
DATA = {
    PRODUCTS[0]: (887903, 4318.4977390222875, (9829, 12370, 21256, 21952)),
    PRODUCTS[1]: (98360, 4370.5107740728, (3277, 4122, 7085, 7316)),
    PRODUCTS[2]: (562050, 24598.330540776722, (9830, 11848, 21395, 21952)),
    PRODUCTS[3]: (62126, 26767.05195833487, (3277, 3949, 7131, 7316)),
}

#: SCI photometry keywords of the layers (the filter's, moved from the inputs).
PHOT = {
    "f098m": {"PHOTMODE": "WFC3 IR F098M", "PHOTFLAM": 6.0652999e-20, "PHOTFNU": 1.9687982e-07,
              "PHOTPLAM": 9864.7227, "PHOTBW": 500.85379, "PHOTZPT": -21.1},
    "f140w": {"PHOTMODE": "WFC3 IR F140W", "PHOTFLAM": 1.4759001e-20, "PHOTFNU": 9.5432426e-08,
              "PHOTPLAM": 13922.907, "PHOTBW": 1132.39, "PHOTZPT": -21.1},
}

#: stwcs ``HSTWCS(...).pscale`` of the inputs, which have no IDCSCALE and no SIP: the length of
#: the first CD column (arcsec/px); sqrt|det CD| would be 0.12825.
INPUT_PSCALE = 0.13560

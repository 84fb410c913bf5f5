"""Quick-look PNGs: stretch, block reduction, composites, file output."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from matplotlib import image as mimage

from mvmdb.preview import (
    ProductRef,
    asinh_stretch,
    block_reduce,
    choose_composite,
    composite_rgb,
    filter_wavelength_nm,
    write_previews,
)


def test_asinh_stretch_is_monotonic_and_bounded():
    values = np.linspace(-5, 1000, 2001)
    stretched = asinh_stretch(values)
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    assert np.all(np.diff(stretched) >= 0)
    # faint end is expanded relative to a linear stretch
    linear = np.clip((values - values.min()) / np.ptp(values), 0, 1)
    mid_faint = np.searchsorted(values, 20)
    assert stretched[mid_faint] > 3 * linear[mid_faint]


def test_nan_survives_stretch_and_all_nan_is_nan():
    img = np.array([[np.nan, 1.0], [2.0, 3.0]])
    assert np.isnan(asinh_stretch(img)[0, 0])
    assert np.isnan(asinh_stretch(np.full((3, 3), np.nan))).all()


def test_block_reduce_averages_and_ignores_nan():
    img = np.arange(16, dtype=float).reshape(4, 4)
    img[0, 0] = np.nan
    reduced = block_reduce(img, max_side=2)
    assert reduced.shape == (2, 2)
    assert reduced[0, 0] == pytest.approx(np.mean([1, 4, 5]))
    assert reduced[1, 1] == pytest.approx(np.mean([10, 11, 14, 15]))


def test_filter_wavelengths_and_composite_choice(tmp_path):
    assert filter_wavelength_nm("f160w", "IR") == 1600 and filter_wavelength_nm("f140lp", "SBC") == 140
    refs = [
        ProductRef(f"l_{f}", "skycell-p1889x07y19", det, f, "fine", tmp_path / f"{f}.fits")
        for f, det in [("f475w", "UVIS"), ("f775w", "WFC"), ("f850lp", "WFC"), ("f160w", "IR")]
    ]
    red, green, blue = choose_composite(refs)
    assert (red.filter, green.filter, blue.filter) == ("f160w", "f850lp", "f475w")
    assert choose_composite(refs[:2]) is None
    coarse = [ProductRef("c", "s", "IR", f, "coarse", tmp_path) for f in ("f105w", "f125w", "f160w")]
    assert choose_composite(coarse) is None


def test_composite_requires_aligned_layers():
    with pytest.raises(ValueError, match="pixel-aligned"):
        composite_rgb(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((4, 3)))


def test_write_previews_makes_layer_and_colour_pngs(tmp_path):
    rng = np.random.default_rng(1)
    refs = []
    for k, (f, det) in enumerate([("f475w", "UVIS"), ("f775w", "WFC"), ("f160w", "IR")]):
        sci = rng.normal(1.0, 0.1, (40, 60)).astype(np.float32)
        sci[10:13, 20 + k : 23 + k] += 50.0  # a "star", shifted per filter to colour it
        sci[:, :5] = np.nan  # no data
        path = tmp_path / f"{f}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI")]).writeto(path)
        refs.append(ProductRef(f"hst_skycell-p1889x07y19_x_{f}_all", "skycell-p1889x07y19", det, f, "fine", path))
    written = write_previews(refs, tmp_path / "previews")
    names = sorted(p.name for p in written)
    assert "skycell-p1889x07y19_color.png" in names and len(names) == 4
    colour = mimage.imread(tmp_path / "previews" / "skycell-p1889x07y19_color.png")
    assert colour.shape[:2] == (40, 60)
    # flipped vertically (north up): data row 10..12 appears at image rows 27..29
    star = colour[27:30, 21:25, :3]
    assert star.max() > 0.9 and colour[:, :5, :3].max() == 0.0


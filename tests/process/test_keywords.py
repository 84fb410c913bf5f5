"""MVM mask/weight keywords and footprint rasterization."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path

from mvmdb.process.keywords import (
    MVM_KEYWORD_COMMENTS,
    FootprintRaster,
    exact_mean_median,
    footprint_masks,
    mask_statistics,
    mvm_keywords,
    positive_mean_median,
)


def _quad(rng, nx, ny, bow=5.0, n_per_edge=16):
    """A rotated rectangle with slightly curved edges (like a distorted chip), random orientation."""
    c = rng.uniform([0, 0], [nx, ny])
    a = rng.uniform(0, np.pi)
    half = rng.uniform(40, 250, 2)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.linspace(0, 1, n_per_edge, endpoint=False)
    pts = []
    for (u0, v0), (u1, v1) in [((-1, -1), (1, -1)), ((1, -1), (1, 1)), ((1, 1), (-1, 1)), ((-1, 1), (-1, -1))]:
        u = u0 + (u1 - u0) * t
        v = v0 + (v1 - v0) * t
        pts.append(np.column_stack([u * half[0], v * half[1] + bow * np.sin(np.pi * t)]))
    poly = np.concatenate(pts) @ rot.T + c + 0.1234  # avoid pixel centres exactly on edges
    return poly if rng.random() < 0.5 else poly[::-1]


def _reference_masks(polys, exptimes, shape):
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    total = np.zeros(shape, np.int64)
    scaled = np.zeros(shape, np.float64)
    for p, t in zip(polys, exptimes):
        inside = Path(p).contains_points(pts).reshape(shape)
        total += inside
        scaled += inside * t
    return total, scaled


def test_footprint_masks_match_point_in_polygon():
    rng = np.random.default_rng(3)
    shape = (600, 800)
    polys = [_quad(rng, 800, 600) for _ in range(10)]
    exptimes = rng.uniform(100, 1000, 10)
    total, scaled = footprint_masks(polys, exptimes, shape, block_rows=97)
    ref_total, ref_scaled = _reference_masks(polys, exptimes, shape)
    assert total.dtype == np.int16 and scaled.dtype == np.float32
    np.testing.assert_array_equal(total, ref_total)
    np.testing.assert_allclose(scaled, ref_scaled, rtol=1e-6, atol=1e-3)
    assert total.max() >= 2  # overlaps were exercised


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_footprint_masks_property(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 120)), int(rng.integers(5, 120)))
    polys = [_quad(rng, shape[1], shape[0], bow=rng.uniform(0, 3), n_per_edge=int(rng.integers(1, 6)))
             for _ in range(int(rng.integers(1, 5)))]
    for p in polys:
        p *= rng.uniform(0.05, 0.6)
    exptimes = rng.uniform(1, 100, len(polys))
    total, scaled = footprint_masks(polys, exptimes, shape, block_rows=int(rng.integers(1, 50)))
    ref_total, ref_scaled = _reference_masks(polys, exptimes, shape)
    np.testing.assert_array_equal(total, ref_total)
    np.testing.assert_allclose(scaled, ref_scaled, rtol=1e-6, atol=1e-3)


def test_keywords_equal_direct_computation():
    rng = np.random.default_rng(1)
    shape = (700, 900)
    polys = [_quad(rng, 900, 700) for _ in range(8)]
    exptimes = rng.uniform(100, 1000, 8)
    total, scaled = footprint_masks(polys, exptimes, shape)
    wht = np.where(total > 0, scaled * rng.uniform(0.5, 0.7, shape), 0).astype(np.float32)
    wht[10:20, 10:20] = np.nan
    kw = mvm_keywords(mask_statistics(total, scaled), wht, (21954, 21954))
    good = total > 0
    expected = {
        "NPIXFRAC": good.sum() / 21954**2,
        "MEANEXPT": np.mean(scaled[good], dtype=np.float64),
        "MEDEXPT": np.median(scaled[good]),
        "MEANNEXP": np.mean(total[good]),
        "MEDNEXP": np.median(total[good]),
        "MEANWHT": np.mean(wht[wht > 0], dtype=np.float64),
        "MEDWHT": np.median(wht[wht > 0]),
    }
    assert list(kw) == list(MVM_KEYWORD_COMMENTS)
    for key, value in expected.items():
        assert kw[key][0] == pytest.approx(float(value), rel=1e-12), key
        assert kw[key][1] == MVM_KEYWORD_COMMENTS[key]
        assert isinstance(kw[key][0], float)
    assert kw["MEDWHT"][1] == "Median weight (typically exposure time) over pixels with data"
    # the same keywords from a lazy raster (no full-size masks) and from outline runs (no raster)
    raster = FootprintRaster(polys, exptimes, shape)
    assert mvm_keywords(mask_statistics(raster.total, raster.scaled), wht, (21954, 21954)) == kw
    runs = mvm_keywords(raster.statistics(block_rows=123), wht, (21954, 21954))
    for key in ("NPIXFRAC", "MEDEXPT", "MEDNEXP", "MEANNEXP", "MEANWHT", "MEDWHT"):
        assert runs[key] == kw[key], key
    assert runs["MEANEXPT"][0] == pytest.approx(kw["MEANEXPT"][0], rel=1e-13)  # another summation order
    # coarse cell size given as a pixel count
    assert mvm_keywords(raster.statistics(), wht, 7318**2)["NPIXFRAC"][0] == pytest.approx(good.sum() / 7318**2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_outline_run_statistics_equal_raster_statistics(seed):
    """Mask statistics from coverage runs == statistics of the rasterized masks, including
    polygons crossing the box edges, abutting and degenerate ones, and empty boxes."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 90)), int(rng.integers(1, 90)))
    polys = [_quad(rng, shape[1], shape[0], bow=rng.uniform(0, 3), n_per_edge=int(rng.integers(1, 6)))
             for _ in range(int(rng.integers(0, 6)))]
    for p in polys:
        p *= rng.uniform(0.05, 1.3)
        p -= rng.uniform(0, 0.3) * np.array(shape[::-1])
    exptimes = rng.choice([100.0, 339.5, 400.0, 1e-3 * rng.integers(1, 10**6)], len(polys))
    raster = FootprintRaster(polys, exptimes, shape)
    total, scaled = footprint_masks(polys, exptimes, shape)
    got = raster.statistics(block_rows=int(rng.integers(1, 40)))
    want = mask_statistics(total, scaled)
    assert got.n_good == want.n_good
    if want.n_good == 0:
        assert np.isnan(got.med_nexp) and np.isnan(got.mean_expt)
        return
    assert (got.mean_nexp, got.med_nexp, got.med_expt) == (want.mean_nexp, want.med_nexp, want.med_expt)
    assert got.mean_expt == pytest.approx(want.mean_expt, rel=1e-12)


def test_exact_median_even_odd_and_ties():
    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 10, 1001, 50000):
        v = np.round(rng.normal(0, 3, n), 1).astype(np.float32)  # many ties
        chunks = np.array_split(v, 7)
        mean, med, count = exact_mean_median(lambda: iter(chunks))
        assert count == n
        assert med == float(np.median(v))
        assert mean == pytest.approx(float(np.mean(v, dtype=np.float64)), abs=1e-9)
    assert np.isnan(exact_mean_median(lambda: iter([np.array([])]))[1])


def test_keywords_stream_from_memmap(tmp_path):
    shape = (3000, 50)
    total = np.lib.format.open_memmap(tmp_path / "t.npy", "w+", np.int16, shape)
    scaled = np.lib.format.open_memmap(tmp_path / "s.npy", "w+", np.float32, shape)
    total[:] = np.arange(shape[0])[:, None] % 4
    scaled[:] = total * 350.0
    kw = mvm_keywords(mask_statistics(total, scaled), scaled, (21954, 21954))
    g = np.asarray(total) > 0
    assert kw["MEDNEXP"][0] == float(np.median(np.asarray(total)[g]))
    assert kw["MEANEXPT"][0] == pytest.approx(float(np.asarray(scaled)[g].mean(dtype=np.float64)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint16, np.int32, np.int64])
def test_exact_median_all_dtypes_and_heavy_ties(dtype):
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        v = np.concatenate([rng.normal(0, 1e3, 999), np.full(5000, 256.0), [-0.0, 0.0, -1e-30, 1e30]])
    else:
        info = np.iinfo(dtype)
        v = np.concatenate([rng.integers(max(info.min, -2**40), min(info.max, 2**40), 999), np.full(5000, 7)])
    v = v.astype(dtype)
    rng.shuffle(v)
    for w in (v, v[:-1]):
        mean, med, n = exact_mean_median(lambda: iter(np.array_split(w, 5)))
        assert n == w.size and med == float(np.median(w))
        assert mean == pytest.approx(float(np.mean(w, dtype=np.float64)), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("shape, frac", [((700, 333), 0.6), ((256, 9), 0.5), ((257, 4), 0.0), ((3, 5), 1.0),
                                         ((1000, 50), 0.001)])
def test_positive_mean_median_is_exact_mean_median_bit_for_bit(shape, frac):
    """The in-memory path of the WHT keywords gives exactly the streamed numbers (mean summed in the
    same blocks and order, the same median), with NaN, zeros and negatives left out."""
    rng = np.random.default_rng(int(shape[0] * frac * 1000) + shape[1])
    a = (rng.random(shape) * 900).astype(np.float32)
    a[rng.random(shape) >= frac] = 0.0
    a[rng.random(shape) < 0.05] = np.nan
    a[rng.random(shape) < 0.02] = -3.0
    a[: shape[0] // 3] = np.round(a[: shape[0] // 3])  # ties
    want = exact_mean_median(lambda: (b[b > 0] for b in (a[y:y + 256] for y in range(0, shape[0], 256))))
    got = positive_mean_median(a)
    assert got[2] == want[2]
    if want[2] == 0:
        assert np.isnan(got[0]) and np.isnan(got[1])
    else:
        assert got == want

"""Per sky cell processing: the common box, coarse/fine alignment, re-embedding, drawn layers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvmdb.process import embed
from mvmdb.sky.grid import SkyCell
from mvmdb.sky.overlap import box_wcs

CELL = SkyCell(1889, 7, 19)


# --------------------------------------------------------------------------- box geometry


@settings(max_examples=200, deadline=None)
@given(
    x0=st.integers(0, 21953), w=st.integers(0, 3000), y0=st.integers(0, 21953), h=st.integers(0, 3000)
)
def test_aligned_box_covers_and_maps_onto_coarse_blocks(x0, w, y0, h):
    raw = (x0, min(x0 + w, 21953), y0, min(y0 + h, 21953))
    box = embed.align(raw)
    q = embed.coarse_cover(box)
    assert embed.is_aligned(box) and embed.coarse_to_fine(q) == box
    ny, nx = embed.shape(box)
    assert ny % 3 == 0 and nx % 3 == 0 and embed.shape(q) == (ny // 3, nx // 3)
    # covers everything but fine column/row 0, never sticks out beyond fine 21954
    inner = (max(raw[0], 1), raw[1], max(raw[2], 1), raw[3])
    if inner[0] <= inner[1] and inner[2] <= inner[3]:
        assert embed.contains(box, inner)
    assert box[0] >= 1 and box[1] <= 21954 and 0 <= q[0] and q[1] <= 7317


def test_fine_and_coarse_box_wcs_overlay_pixel_for_pixel():
    box = embed.align((2132, 12971, 10281, 21952))  # the spec's example layer, padded
    fine = box_wcs(CELL, box, "fine")
    coarse = box_wcs(CELL, embed.at_scale(box, "coarse"), "coarse")
    assert fine.pixel_shape == tuple(3 * n for n in coarse.pixel_shape)
    rng = np.random.default_rng(1)
    i = rng.integers(0, coarse.pixel_shape[0], 200)
    j = rng.integers(0, coarse.pixel_shape[1], 200)
    ra, dec = coarse.pixel_to_world_values(i, j)
    fx, fy = fine.world_to_pixel_values(ra, dec)
    # the coarse pixel (i, j) is centred on fine pixel (3i+1, 3j+1): the middle of its 3x3 block
    np.testing.assert_allclose(fx, 3 * i + 1, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * j + 1, atol=1e-6)
    # and its outer corner is the outer corner of the block
    ra, dec = coarse.pixel_to_world_values(i - 0.5, j - 0.5)
    fx, fy = fine.world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(fx, 3 * i - 0.5, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * j - 0.5, atol=1e-6)


def test_common_box_only_grows():
    a = embed.common_box(None, (100, 200, 300, 400))
    b = embed.common_box(a, (50, 120, 350, 360))
    assert embed.contains(b, a) and b[0] <= 50 and embed.is_aligned(b)
    assert embed.common_box(b, None) == b
    assert embed.common_box(None, None) is None


def test_embed_pastes_without_resampling():
    old = embed.align((100, 200, 300, 400))
    new = embed.align((10, 260, 290, 500))
    arr = np.arange(np.prod(embed.shape(old)), dtype=np.float32).reshape(embed.shape(old))
    out = embed.embed(arr, old, new, fill=np.nan)
    dy, dx = embed.offset(new, old)
    np.testing.assert_array_equal(out[dy : dy + arr.shape[0], dx : dx + arr.shape[1]], arr)
    assert np.isnan(out).sum() == out.size - arr.size
    ctx = np.ones((2,) + embed.shape(old), dtype=np.int32)
    assert embed.embed(ctx, old, new).shape == (2,) + embed.shape(new)
    with pytest.raises(ValueError):
        embed.embed(arr, new, old)

"""The per-process arena of drawing memory: views, reuse, growth; drizzling through a reused arena."""

from __future__ import annotations

import numpy as np
from test_pixmap import acs_wfc_chip_wcs, skycell_like_wcs

from mvmdb.process.arena import GRANULE, Arena
from mvmdb.process.drizzling import DrizzleInput, drizzle_layer


def test_views_share_a_role_and_grow_past_it():
    arena = Arena()
    a = arena.take("sci", (100, 200), np.float32)
    assert a.shape == (100, 200) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    a[:] = 7.0
    b = arena.take("sci", (50, 10), np.float32)
    assert np.shares_memory(a, b)  # the same memory, handed out again
    assert not np.shares_memory(b, arena.take("wht", (50, 10), np.float32))  # roles never overlap
    assert arena.nbytes == 2 * GRANULE  # small requests take one granule each
    big = arena.take("sci", (GRANULE // 4 + 1,), np.float32)  # one element past the granule
    assert big.size == GRANULE // 4 + 1 and not np.shares_memory(a, big)
    assert arena.nbytes == 3 * GRANULE  # sci grew to two granules
    assert (a == 7.0).all()  # a view of the old mapping stays valid while it is referenced
    assert arena.full("ctx", (3, 4), np.int32, -1).tolist() == [[-1] * 4] * 3
    arena.clear()
    assert arena.nbytes == 0


def _layer(seed: int, rotation: float, shape=(700, 800)):
    out_wcs = skycell_like_wcs(shape=shape)
    rng = np.random.default_rng(seed)
    inputs = []
    for k in range(2):
        w = acs_wfc_chip_wcs(ra=150.0 + 0.0002 * k, dec=2.2, shape=(300, 400), rotation_deg=rotation + 10 * k)
        dq = np.where(rng.random((300, 400)) < 0.02, 4096, 0).astype(np.int16)
        inputs.append(DrizzleInput(sci=rng.normal(200.0, 5.0, (300, 400)).astype(np.float32), exptime=100.0 + k,
                                   dq=dq, in_wcs=w, units="electrons", sky=50.0, name=f"c{k}"))
    return inputs, out_wcs, shape


def test_a_reused_arena_draws_each_layer_as_a_fresh_one():
    """Layers drawn one after another through one arena (large, small, large again: stale values
    everywhere) equal the same layers drawn with fresh memory, bit for bit."""
    arena = Arena()
    layers = [_layer(1, 0.0), _layer(2, 30.0, shape=(300, 350)), _layer(3, 60.0)]
    for inputs, out_wcs, shape in layers:
        for tile_shape in (shape, (256, 256)):
            fresh = drizzle_layer(inputs, out_wcs, shape, bits=80, tile_shape=tile_shape)
            got = {}

            def sink(tile, got=got):  # tiles are arena views: copy them out
                got[(tile.y0, tile.x0)] = (tile.sci.copy(), tile.wht.copy(), tile.nexp.copy())

            drizzle_layer(inputs, out_wcs, shape, bits=80, tile_shape=tile_shape, sink=sink, arena=arena)
            sci = np.full(shape, np.nan, np.float32)
            wht = np.zeros(shape, np.float32)
            nexp = np.zeros(shape, np.int16)
            for (y0, x0), (s, w, n) in got.items():
                sl = (slice(y0, y0 + s.shape[0]), slice(x0, x0 + s.shape[1]))
                sci[sl], wht[sl], nexp[sl] = s, w, n
            assert (fresh.wht > 0).any()
            np.testing.assert_array_equal(sci, fresh.sci)
            np.testing.assert_array_equal(wht, fresh.wht)
            np.testing.assert_array_equal(nexp, fresh.nexp)

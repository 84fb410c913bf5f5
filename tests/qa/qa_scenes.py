"""Small simulated exposures for the quality-check tests, rendered in memory (no files)."""

from __future__ import annotations

import numpy as np

from mvmdb.simulate import ExposureSpec, make_truth
from mvmdb.simulate.instruments import offset_position
from mvmdb.simulate.truth import add_flux_columns
from mvmdb.simulate.writer import render_exposure

CENTRE = (210.8, -12.3)  # a field of the tests' own (the benchmark draws random ones)


def truth_table(seed: int, n_stars: int = 500, n_galaxies: int = 15, radius: float = 150.0,
                r_eff_range=(0.2, 1.5), bright: int = 0):
    """Truth around CENTRE; ``bright`` extra stars of mag 10-12 (they saturate even at downscale 4)."""
    special = []
    rng = np.random.default_rng(seed + 1000)
    for k in range(bright):
        ra, dec = offset_position(CENTRE[0], CENTRE[1], *rng.uniform(-60, 60, 2))
        special.append(dict(id=k, ra=ra, dec=dec, mag=float(rng.uniform(10.0, 12.0)), kind="star"))
    t = make_truth(CENTRE, radius, n_stars, n_galaxies, seed, special, r_eff_range=r_eff_range)
    t["id"] = np.arange(len(t))
    return t


def render(truth, *, seed: int, instrument="ACS", detector="WFC", filt="F814W", downscale=4, root=None,
           ra_dec=CENTRE, orientat=20.0, **kw):
    """Chips of one exposure as ``ChipPixels`` (see ``mvmdb.simulate.writer.render_exposure``)."""
    letter = "j" if instrument == "ACS" else "i"
    spec = ExposureSpec(instrument, detector, filt, ra_dec[0], ra_dec[1], orientat=orientat, exptime=500.0,
                        downscale=1 if detector == "IR" else downscale, seed=seed,
                        ipppssoot=root or f"{letter}tst{seed % 100:02d}01q", **kw)
    add_flux_columns(truth, [(spec.model, spec.filter_info)])
    return spec, render_exposure(spec, truth)

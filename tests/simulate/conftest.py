"""Shared scenes for the simulator tests (generated once per test session and worker)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.special import erf

from mvmdb.simulate import simulate_scene


@pytest.fixture(scope="session")
def pg1202_k8(tmp_path_factory):
    """The clean pg1202 scene at downscale 8."""
    return simulate_scene("pg1202", tmp_path_factory.mktemp("pg1202_k8"), seed=0, downscale=8)


@pytest.fixture(scope="session")
def pg1202_defects(tmp_path_factory):
    """pg1202 at downscale 8 with every defect."""
    out = tmp_path_factory.mktemp("pg1202_defects")
    defects = ("trail", "wcs_error:6", "grism", "grism:G800L", "moving_target", "gsfail", "spatial_scan",
               "charge_injection", "dark_target")
    return simulate_scene("pg1202", out, seed=0, downscale=8, defects=defects)


@pytest.fixture(scope="session")
def all_scenes_k16(tmp_path_factory):
    """ra0, pole and deep at downscale 16 (pg1202 comes from its own fixture)."""
    out = {}
    for name in ("ra0", "pole", "deep"):
        out[name] = simulate_scene(name, tmp_path_factory.mktemp(f"{name}_k16"), seed=3, downscale=16)
    return out


@pytest.fixture(scope="session")
def centroid():
    """The centroid fitter below, as a fixture (test modules here are not a package)."""
    return fit_centroid


def fit_centroid(image: np.ndarray, x0: float, y0: float, half: int = 5, good=None) -> tuple[float, float]:
    """0-based centroid of a point source near (x0, y0): least-squares fit of a
    pixel-integrated circular Gaussian plus a constant background on a (2*half+1)^2 box,
    ignoring pixels where ``good`` (same shape as ``image``) is False.

    Written independently of the renderer (which uses a two-component profile).
    """
    ix, iy = int(round(x0)), int(round(y0))
    sub = image[iy - half : iy + half + 1, ix - half : ix + half + 1].astype(float)
    w = np.ones_like(sub) if good is None else good[iy - half : iy + half + 1, ix - half : ix + half + 1].astype(float)
    yy, xx = np.mgrid[iy - half : iy + half + 1, ix - half : ix + half + 1]

    def model(p):
        x, y, flux, sigma, bkg = p
        s = abs(sigma) * np.sqrt(2.0)
        gx = 0.5 * (erf((xx + 0.5 - x) / s) - erf((xx - 0.5 - x) / s))
        gy = 0.5 * (erf((yy + 0.5 - y) / s) - erf((yy - 0.5 - y) / s))
        return flux * gx * gy + bkg

    edge = np.concatenate([sub[0], sub[-1], sub[:, 0], sub[:, -1]])
    bkg0 = float(np.median(edge))
    p0 = [float(ix), float(iy), float(sub.sum() - bkg0 * sub.size), 1.0, bkg0]
    res = least_squares(lambda p: ((model(p) - sub) * w).ravel(), p0, x_scale="jac")
    return float(res.x[0]), float(res.x[1])

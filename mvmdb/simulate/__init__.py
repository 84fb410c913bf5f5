"""Synthetic HST exposures with a known truth, for tests and the demo.

Public API::

    simulate_scene(name, out_dir, *, seed=0, downscale=1, defects=(), header_only=False,
                   progress=False, n_exposures=None, proper_motion=None,
                   proper_motion_pa=45.0) -> SceneResult
    add_visit(out_dir, *, seed=None, instrument=None, detector=None, filter=None,
              n_exposures=2, exptime=None, progress=False) -> SceneResult
    SCENES, DEFECTS                 names of the scenes and of the optional defects
    DQ                              HST data-quality bits (IntFlag)
    ExposureSpec, write_exposure    one custom exposure from a truth table
    make_truth, scene_plan          truth catalogues and visit plans of the scenes
    read_manifest(dir)              exposures.ecsv as a Table (empty strings, not masked)
    positions_at(truth, mjd)        truth positions at a time (proper motions applied)
    moving_positions(truth)         per-exposure positions of moving stars (truth.ecsv meta)

Files look like the archive's ``<ipppssoot>_flt.fits`` / ``_flc.fits``: PRIMARY keywords,
SCI/ERR/DQ per chip with the real chip sizes and layout, a TAN-SIP WCS that is the true
mapping (forward and inverse SIP), pixels rendered from ``truth.ecsv`` with noise, sky,
cosmic rays and detector defects flagged with the archive's DQ bits, flat-fielded like
the archive's (a source has ``rate * EXPTIME / PAM`` e-, PAM the pixel area map).  See the module
docstrings of :mod:`.scene`, :mod:`.writer`, :mod:`.instruments` and :mod:`.render` for
units and pixel conventions (pixel positions are 0-based, CRPIX 1-based).
"""

from mvmdb.simulate.instruments import DETECTORS, DQ, DetectorModel, detector_model
from mvmdb.simulate.scene import (
    DEFECTS,
    MANIFEST_FILE,
    SCENES,
    TRUTH_FILE,
    SceneResult,
    SimulationError,
    add_visit,
    make_truth,
    read_manifest,
    scene_plan,
    simulate_scene,
)
from mvmdb.simulate.truth import flux_column, moving_positions, positions_at, source_rates
from mvmdb.simulate.writer import ExposureResult, ExposureSpec, write_exposure

__all__ = [
    "DEFECTS",
    "DETECTORS",
    "DQ",
    "MANIFEST_FILE",
    "SCENES",
    "TRUTH_FILE",
    "DetectorModel",
    "ExposureResult",
    "ExposureSpec",
    "SceneResult",
    "SimulationError",
    "add_visit",
    "detector_model",
    "flux_column",
    "make_truth",
    "moving_positions",
    "positions_at",
    "read_manifest",
    "scene_plan",
    "simulate_scene",
    "source_rates",
    "write_exposure",
]

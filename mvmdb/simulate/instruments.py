"""Detector models of the simulator: chip layout, pixel scales, SIP distortion, photometry.

Conventions used throughout :mod:`mvmdb.simulate`:

* Angles in degrees, sky offsets in arcsec unless a name says otherwise.
* The *focal frame* of a detector is a flat frame in arcsec, tangent to the sky at the
  aperture reference point (``RA_APER``/``DEC_APER``); its axes ``(p, q)`` run along the
  detector's +x and +y (up to the real skew).  ``orientat`` is the position angle of +q,
  east of north, at the aperture reference.  Every HST image has the usual parity
  (east to the left when north is up), so at ``orientat = 0`` +p points west.
* Chip pixels: FITS 1-based for CRPIX; every other pixel position in this package is
  0-based (numpy / ``astropy`` ``origin=0``): the centre of the first pixel is (0, 0)
  and it covers [-0.5, 0.5].
* Native numbers (chip sizes, CRPIX, linear terms, SIP coefficients) describe the real
  detector.  ``downscale K`` divides the chip size by K and multiplies the pixel scale by
  K, keeping the footprint on the sky (see :func:`chip_geometry`).

The linear terms, chip offsets and SIP coefficients of ACS/WFC, ACS/HRC, WFC3/UVIS and
WFC3/IR were derived from the real archive headers in ``tests/data/hst`` (SIP truncated
to order 4, lookup-table corrections dropped); ACS/SBC is modelled on its documented
pixel scale (0.034" x 0.030") with an HRC-like distortion.  In a simulated file the SIP
polynomial *is* the true mapping (no lookup tables), so the header WCS is exact.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

ARCSEC = 1.0 / 3600.0


class DQ(enum.IntFlag):
    """HST data-quality bits (ACS and WFC3 share the values; meanings per the handbooks).

    ===== ============== ==========================================================
    bit   name           meaning
    ===== ============== ==========================================================
    1     LOST           Reed-Solomon error / lost during compression
    2     FILLED         replaced by fill value
    4     BAD_DETECTOR   bad detector pixel, or beyond the aperture
    8     MASKED         masked (occulting finger/bar; IR deviant zero read)
    16    HOT            hot pixel
    32    UNSTABLE       ACS unstable pixel / UVIS CTE tail / IR unstable pixel
    64    WARM           warm pixel
    128   BAD_COLUMN     bad column (WFC3: bad bias value)
    256   SATURATED      full-well saturation
    512   BAD_FLAT       bad pixel in a reference file (flat, dust mote, IR blob)
    1024  TRAP           charge trap / UVIS sink pixel / IR CR spike in ramp fit
    2048  ATOD_SAT       A-to-D saturation / IR zero-read signal correction
    4096  CR_DRIZ        cosmic ray or artifact flagged by AstroDrizzle (driz_cr)
    8192  CR_CAL         cosmic ray flagged by the calibration pipeline: ACSREJ /
                         UVIS CR-SPLIT combination, or IR up-the-ramp fitting
    16384 GHOST          WFC3 ghost/crosstalk or more than max CRs; ACS user flag
    ===== ============== ==========================================================

    DQ arrays are written as 16-bit signed integers as in the archive, so bit 32768
    (WFC3 "user") is never used here.  ``SDQFLAGS`` in the SCI headers is 31743 as in
    archive files.
    """

    OK = 0
    LOST = 1
    FILLED = 2
    BAD_DETECTOR = 4
    MASKED = 8
    HOT = 16
    UNSTABLE = 32
    WARM = 64
    BAD_COLUMN = 128
    SATURATED = 256
    BAD_FLAT = 512
    TRAP = 1024
    ATOD_SAT = 2048
    CR_DRIZ = 4096
    CR_CAL = 8192
    GHOST = 16384


SDQFLAGS = 31743


@dataclass(frozen=True)
class FilterInfo:
    """Photometric facts of one filter on one detector.

    ``plam``: pivot wavelength (Angstrom, PHOTPLAM); ``zp_ab``: AB magnitude giving
    1 e-/s (counts/s for SBC); ``sky``: typical sky plus dark-like background in e-/s per
    *native* pixel; ``wheel``: ACS filter wheel (1 or 2; 0 for WFC3).
    """

    name: str
    plam: float
    zp_ab: float
    sky: float
    wheel: int = 0

    @property
    def photflam(self) -> float:
        """Inverse sensitivity, erg/cm2/A per e- (PHOTFLAM), from the AB zero point."""
        return 10.0 ** (-(self.zp_ab + 2.408 + 5.0 * math.log10(self.plam)) / 2.5)

    @property
    def is_dispersive(self) -> bool:
        return self.name.upper().startswith(("G", "PR"))


@dataclass(frozen=True)
class ChipModel:
    """One chip (SCI extension) of a detector, in native pixels.

    ``lin``: 2x2 linear term, focal arcsec per pixel, applied to SIP-corrected pixel
    offsets from CRPIX; ``offset``: focal position (arcsec) of the chip's reference pixel
    relative to the aperture reference; ``a``/``b``: SIP forward coefficients
    ``{(p, q): value}`` in native pixels (order <= 4).
    """

    extver: int
    ccdchip: int | None
    nx: int
    ny: int
    crpix: tuple[float, float]
    lin: tuple[tuple[float, float], tuple[float, float]]
    offset: tuple[float, float]
    a: dict[tuple[int, int], float]
    b: dict[tuple[int, int], float]
    centera: tuple[int, int]
    v2v3ref: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class DetectorModel:
    """Everything the simulator needs to know about one instrument/detector."""

    instrument: str  # 'ACS' | 'WFC3'
    detector: str  # 'WFC' | 'HRC' | 'SBC' | 'UVIS' | 'IR'
    letter: str  # first letter of the ipppssoot: 'j' ACS, 'i' WFC3
    chips: tuple[ChipModel, ...]
    bunit: str  # SCI/ERR units of the FLT/FLC
    per_second: bool  # True when BUNIT is a rate (WFC3/IR)
    read_noise: float  # e- per pixel (IR: effective ramp-fit noise)
    dark: float  # e-/s per native pixel (subtracted; only its shot noise remains)
    full_well: float  # e- per native pixel; 0 = no saturation model
    blur_arcsec: float  # detector/optics blur added in quadrature to the diffraction FWHM
    cr_rate: float  # cosmic-ray events per native pixel per second
    cr_length: float  # mean CR track length, native pixels
    theta_minus_pav3: float  # ORIENTAT - PA_V3 (deg) at the aperture reference
    idctab: str
    default_filetype: str  # 'flc' for CTE-corrected detectors, else 'flt'
    aperture: str
    obsmode: str  # 'ACCUM' | 'MULTIACCUM'
    filters: dict[str, FilterInfo] = field(default_factory=dict)
    gain: float = 1.0
    ccd: bool = True

    @property
    def key(self) -> str:
        """``'acs_wfc'``-style key used in column names."""
        return f"{self.instrument}_{self.detector}".lower()

    @property
    def has_cte(self) -> bool:
        return self.default_filetype == "flc"

    def filter(self, name: str) -> FilterInfo:
        try:
            return self.filters[name.upper()]
        except KeyError:
            raise ValueError(
                f"{self.instrument}/{self.detector} has no filter {name!r} in the simulator "
                f"(known: {', '.join(sorted(self.filters))})"
            ) from None

    def native_scale(self) -> float:
        """Mean native pixel scale, arcsec/px (square root of the first chip's area)."""
        lin = np.array(self.chips[0].lin)
        return float(math.sqrt(abs(np.linalg.det(lin))))


def _f(name, plam, zp, sky, wheel=0):
    return FilterInfo(name, plam, zp, sky, wheel)


# --- ACS/WFC: real jbt122x8q (SCI,1 = WFC2, SCI,2 = WFC1), SIP truncated to order 4 ---
_ACS_WFC2 = ChipModel(
    extver=1, ccdchip=2, nx=4096, ny=2048, crpix=(2048.0, 1024.0),
    lin=((0.0497298295, -0.0000216858), (0.0034592816, 0.0503094560)),
    offset=(-0.0723, -51.9940),
    a={(0, 2): 2.16637264746676e-06, (1, 1): -5.2138466070707e-06, (2, 0): 8.55493852067576e-06,
       (0, 3): 5.60296179679536e-12, (1, 2): -5.1968980318799e-10, (2, 1): -2.7063082190587e-11,
       (3, 0): -4.9200490300678e-10, (0, 4): 1.7696363541919e-14, (1, 3): -8.4361008880696e-15,
       (2, 2): 3.87946929136827e-14, (3, 1): 5.87855134415994e-15, (4, 0): 2.56454262955869e-14},
    b={(0, 2): -7.2360831937133e-06, (1, 1): 6.18811607751593e-06, (2, 0): -1.7414350824049e-06,
       (0, 3): -3.7881534849095e-10, (1, 2): -7.5271285714448e-11, (2, 1): -5.1652255503335e-10,
       (3, 0): 1.00539479699536e-10, (0, 4): 7.67613780175722e-15, (1, 3): 1.2187805583748e-14,
       (2, 2): -3.1376323058712e-14, (3, 1): -9.5798089996605e-16, (4, 0): -1.8467310712473e-14},
    centera=(2073, 1035), v2v3ref=(257.198, 302.541),
)
_ACS_WFC1 = ChipModel(
    extver=2, ccdchip=1, nx=4096, ny=2048, crpix=(2048.0, 1024.0),
    lin=((0.0490984754, 0.0003495906), (0.0040760549, 0.0486287639)),
    offset=(0.1003, 51.9842),
    a={(0, 2): 2.26373915146779e-06, (1, 1): -7.5301364893488e-06, (2, 0): 8.52332311426975e-06,
       (0, 3): 8.81029503904042e-11, (1, 2): -5.0112274444995e-10, (2, 1): -1.0670474379805e-10,
       (3, 0): -4.8986827349953e-10, (0, 4): 1.36031356300076e-13, (1, 3): -1.0877758906961e-14,
       (2, 2): 9.52162926703244e-14, (3, 1): 3.66850142908824e-14, (4, 0): 2.05331470735856e-14},
    b={(0, 2): -9.793895451783e-06, (1, 1): 6.4563799220223e-06, (2, 0): -2.9514279336166e-06,
       (0, 3): -3.7493807618954e-10, (1, 2): -3.771138992114e-11, (2, 1): -4.0888114093694e-10,
       (3, 0): 1.14411931227669e-10, (0, 4): -1.5346500886704e-13, (1, 3): 8.20369080162525e-15,
       (2, 2): -1.1195172026982e-13, (3, 1): -4.24647059854e-14, (4, 0): -2.0014206460667e-14},
    centera=(2073, 3083), v2v3ref=(261.4775, 198.66548),
)

# --- WFC3/UVIS: real ib4606c5q (SCI,1 = UVIS2, SCI,2 = UVIS1) ---
_UVIS2 = ChipModel(
    extver=1, ccdchip=2, nx=4096, ny=2051, crpix=(2048.0, 1026.0),
    lin=((0.0397625977, -0.0000146895), (0.0025261707, 0.0398375998)),
    offset=(0.0645, -41.2255),
    a={(0, 2): 9.68752216541829e-08, (1, 1): -3.0073309899834e-06, (2, 0): 2.93081163466262e-06,
       (0, 3): 1.83977137395279e-11, (1, 2): 1.52171396326211e-11, (2, 1): -1.2617092273945e-11,
       (3, 0): 3.05584134653132e-11, (0, 4): -1.5724178902718e-14, (1, 3): 1.06776659403511e-14,
       (2, 2): -1.725583405793e-14, (3, 1): 6.65929786678309e-15, (4, 0): -7.458238590171e-15},
    b={(0, 2): -3.1182425747255e-06, (1, 1): 2.81470255140448e-06, (2, 0): -5.8319285504418e-08,
       (0, 3): 1.49270537925503e-11, (1, 2): -5.0794595846563e-12, (2, 1): 1.02902087236718e-11,
       (3, 0): 1.80116277193471e-13, (0, 4): 1.7312015536267e-14, (1, 3): 8.68079140232788e-15,
       (2, 2): 1.89739365693031e-14, (3, 1): -6.694073536343e-16, (4, 0): 2.81833598801922e-15},
    centera=(2104, 1036), v2v3ref=(-27.4596, -33.2604),
)
_UVIS1 = ChipModel(
    extver=2, ccdchip=1, nx=4096, ny=2051, crpix=(2048.0, 1026.0),
    lin=((0.0395247483, -0.0000589957), (0.0027684583, 0.0393662633)),
    offset=(-0.0454, 41.2189),
    a={(0, 2): -1.630053740409e-08, (1, 1): -2.8946283867545e-06, (2, 0): 2.88097687020633e-06,
       (0, 3): -1.0712402125648e-13, (1, 2): 1.66169330210897e-11, (2, 1): -5.1076735491602e-12,
       (3, 0): 2.50273224837601e-11, (0, 4): 6.3349781445814e-15, (1, 3): 1.27995638473689e-14,
       (2, 2): 4.00539373548377e-16, (3, 1): 9.38427293471106e-16, (4, 0): -1.1174065984756e-15},
    b={(0, 2): -2.8811433607635e-06, (1, 1): 2.82933641443307e-06, (2, 0): -8.5296382052784e-10,
       (0, 3): 4.06599817677014e-11, (1, 2): -4.0592584819946e-12, (2, 1): 9.76389218216109e-13,
       (3, 0): 1.0933767977814e-11, (0, 4): -2.19132265003e-14, (1, 3): -5.1649283694224e-15,
       (2, 2): -6.541032706967e-15, (3, 1): -3.2278772092761e-15, (4, 0): -2.3237441451792e-15},
    centera=(2104, 3120), v2v3ref=(30.6428, 25.2420),
)

# --- WFC3/IR: real ib4606cpq ---
_IR = ChipModel(
    extver=1, ccdchip=None, nx=1014, ny=1014, crpix=(507.0, 507.0),
    lin=((0.1353954889, 0.0), (0.0004406792, 0.1209398408)),
    offset=(0.0, 0.0),
    a={(0, 2): 5.36543879655039e-08, (1, 1): 2.44567998516218e-05, (2, 0): -1.9767903795896e-07,
       (0, 3): 3.57608124801564e-11, (1, 2): 5.99977055536005e-11, (2, 1): 1.12426213281082e-10,
       (3, 0): -1.4547443693903e-10, (0, 4): -2.0298654411109e-13, (1, 3): 6.20421897334776e-13,
       (2, 2): -2.0999805662514e-14, (3, 1): 5.61137882880728e-13, (4, 0): -3.350311477329e-13},
    b={(0, 2): 3.00207750656021e-05, (1, 1): -1.7469718445787e-07, (2, 0): 6.98027411532913e-06,
       (0, 3): -1.6773547445182e-10, (1, 2): 4.26550075268506e-11, (2, 1): -2.6338747532099e-10,
       (3, 0): 5.31541345421763e-11, (0, 4): 7.74735188487937e-13, (1, 3): -9.0688431239891e-14,
       (2, 2): -6.9630146722556e-14, (3, 1): 1.00135300774332e-13, (4, 0): -6.1398288616439e-13},
    centera=(513, 513), v2v3ref=(1.019, -0.507),
)

# --- ACS/HRC: real j8bt06nyq ---
_HRC = ChipModel(
    extver=1, ccdchip=1, nx=1024, ny=1024, crpix=(512.0, 512.0),
    lin=((0.0282864429, 0.0), (0.0028743016, 0.0248442264)),
    offset=(0.0, 0.0),
    a={(0, 2): -7.0889395968097e-07, (1, 1): 9.01865480733676e-06, (2, 0): -3.3163602099644e-06,
       (0, 3): -1.8815236170312e-11, (1, 2): 4.10095454377589e-10, (2, 1): -2.9240036454705e-11,
       (3, 0): 9.65774472432314e-11, (0, 4): 3.52663128667526e-14, (1, 3): -1.8416520384227e-13,
       (2, 2): -1.3458234665785e-12, (3, 1): -2.2242752420711e-12, (4, 0): 3.23745227404317e-13},
    b={(0, 2): 1.1507696520549e-05, (1, 1): -2.6697404172385e-06, (2, 0): 2.00059877639217e-06,
       (0, 3): 7.3589451602895e-10, (1, 2): -6.3116444335245e-10, (2, 1): 3.02073232258143e-10,
       (3, 0): 4.48761161830502e-10, (0, 4): -1.2780970907036e-12, (1, 3): -5.3932063162612e-13,
       (2, 2): 9.93387657260949e-13, (3, 1): -1.306503280771e-12, (4, 0): 2.66823917315528e-13},
    centera=(532, 523), v2v3ref=(207.08, 471.474),
)

# --- ACS/SBC: modelled (0.0338" x 0.0301", HRC-like skew and distortion) ---
_SBC = ChipModel(
    extver=1, ccdchip=None, nx=1024, ny=1024, crpix=(512.0, 512.0),
    lin=((0.0338, 0.0), (0.0031, 0.0301)),
    offset=(0.0, 0.0),
    a={(0, 2): -1.1e-06, (1, 1): 1.05e-05, (2, 0): -3.6e-06, (0, 3): -2.0e-11, (1, 2): 3.9e-10,
       (2, 1): -3.0e-11, (3, 0): 9.0e-11, (0, 4): 3.0e-14, (1, 3): -1.7e-13, (2, 2): -1.2e-12,
       (3, 1): -2.0e-12, (4, 0): 3.0e-13},
    b={(0, 2): 1.25e-05, (1, 1): -3.0e-06, (2, 0): 2.3e-06, (0, 3): 7.0e-10, (1, 2): -6.0e-10,
       (2, 1): 3.0e-10, (3, 0): 4.2e-10, (0, 4): -1.2e-12, (1, 3): -5.0e-13, (2, 2): 9.0e-13,
       (3, 1): -1.2e-12, (4, 0): 2.5e-13},
    centera=(512, 512), v2v3ref=(205.0, 474.0),
)

ACS_WFC = DetectorModel(
    instrument="ACS", detector="WFC", letter="j", chips=(_ACS_WFC2, _ACS_WFC1), bunit="ELECTRONS",
    per_second=False, read_noise=4.2, dark=0.02, full_well=84700.0, blur_arcsec=0.070, cr_rate=3.5e-6,
    cr_length=4.0, theta_minus_pav3=-182.4517, idctab="4bb1536cj", default_filetype="flc",
    aperture="WFC", obsmode="ACCUM", gain=2.0,
    filters={f.name: f for f in (
        _f("F435W", 4329.9, 25.66, 0.030, 2), _f("F475W", 4746.9, 26.06, 0.050, 1),
        _f("F555W", 5361.0, 25.72, 0.050, 1), _f("F606W", 5921.9, 26.49, 0.100, 1),
        _f("F625W", 6311.4, 25.90, 0.080, 1), _f("F658N", 6584.0, 22.76, 0.006, 1),
        _f("F775W", 7693.5, 25.66, 0.090, 1), _f("F814W", 8045.5, 25.94, 0.100, 2),
        _f("F850LP", 9033.2, 24.84, 0.060, 1), _f("G800L", 7471.0, 24.50, 0.350, 1),
    )},
)
ACS_HRC = DetectorModel(
    instrument="ACS", detector="HRC", letter="j", chips=(_HRC,), bunit="ELECTRONS", per_second=False,
    read_noise=4.7, dark=0.006, full_well=155000.0, blur_arcsec=0.040, cr_rate=3.0e-6, cr_length=4.0,
    theta_minus_pav3=-0.1990, idctab="n721640fj", default_filetype="flt", aperture="HRC", obsmode="ACCUM",
    gain=2.0,
    filters={f.name: f for f in (
        _f("F250W", 2716.0, 22.30, 0.0005, 2), _f("F330W", 3363.0, 22.90, 0.0010, 2),
        _f("F435W", 4311.0, 25.20, 0.0050, 2), _f("F606W", 5888.0, 26.00, 0.0150, 1),
        _f("F814W", 8115.0, 25.30, 0.0120, 2), _f("PR200L", 5000.0, 24.00, 0.0100, 2),
    )},
)
ACS_SBC = DetectorModel(
    instrument="ACS", detector="SBC", letter="j", chips=(_SBC,), bunit="COUNTS", per_second=False,
    read_noise=0.0, dark=1.0e-5, full_well=0.0, blur_arcsec=0.070, cr_rate=0.0, cr_length=0.0,
    theta_minus_pav3=-0.2500, idctab="sbc_modelled", default_filetype="flt", aperture="SBC",
    obsmode="ACCUM", gain=1.0, ccd=False,
    filters={f.name: f for f in (
        _f("F115LP", 1406.0, 22.50, 0.0100, 1), _f("F125LP", 1438.0, 22.20, 0.0010, 1),
        _f("F140LP", 1528.0, 21.90, 0.0003, 1), _f("F150LP", 1612.0, 21.30, 0.0002, 1),
        _f("F165LP", 1762.0, 20.50, 0.0002, 1), _f("PR110L", 1500.0, 21.00, 0.0100, 1),
    )},
)
WFC3_UVIS = DetectorModel(
    instrument="WFC3", detector="UVIS", letter="i", chips=(_UVIS2, _UVIS1), bunit="ELECTRONS",
    per_second=False, read_noise=3.1, dark=0.005, full_well=63000.0, blur_arcsec=0.060, cr_rate=3.0e-6,
    cr_length=4.0, theta_minus_pav3=-315.2721, idctab="2731450pi", default_filetype="flc",
    aperture="UVIS", obsmode="ACCUM", gain=1.5,
    filters={f.name: f for f in (
        _f("F225W", 2359.0, 24.04, 0.0005), _f("F275W", 2704.0, 24.13, 0.0008),
        _f("F336W", 3355.0, 24.64, 0.0015), _f("F438W", 4325.0, 24.83, 0.0060),
        _f("F475W", 4772.0, 25.69, 0.0200), _f("F555W", 5308.0, 25.81, 0.0300),
        _f("F606W", 5889.0, 26.08, 0.0500), _f("F814W", 8039.0, 25.10, 0.0400),
        _f("F850LP", 9176.0, 23.82, 0.0150), _f("G280", 3000.0, 23.00, 0.0050),
    )},
)
WFC3_IR = DetectorModel(
    instrument="WFC3", detector="IR", letter="i", chips=(_IR,), bunit="ELECTRONS/S", per_second=True,
    read_noise=12.0, dark=0.05, full_well=78000.0, blur_arcsec=0.060, cr_rate=4.0e-6, cr_length=2.0,
    theta_minus_pav3=-315.3534, idctab="w3m18525i", default_filetype="flt", aperture="IR",
    obsmode="MULTIACCUM", gain=2.5, ccd=False,
    filters={f.name: f for f in (
        _f("F098M", 9864.0, 25.67, 0.35), _f("F105W", 10551.0, 26.27, 0.65),
        _f("F110W", 11534.0, 26.82, 1.10), _f("F125W", 12486.0, 26.23, 0.70),
        _f("F140W", 13923.0, 26.45, 0.85), _f("F160W", 15369.0, 25.95, 0.60),
        _f("G102", 9990.0, 25.10, 0.80), _f("G141", 13900.0, 25.50, 1.20),
    )},
)

DETECTORS: dict[tuple[str, str], DetectorModel] = {
    (d.instrument, d.detector): d for d in (ACS_WFC, ACS_HRC, ACS_SBC, WFC3_UVIS, WFC3_IR)
}


def detector_model(instrument: str, detector: str) -> DetectorModel:
    """The model of ``instrument``/``detector`` (case-insensitive: ``'acs', 'wfc'``)."""
    try:
        return DETECTORS[(instrument.upper(), detector.upper())]
    except KeyError:
        known = ", ".join(f"{i}/{d}" for i, d in DETECTORS)
        raise ValueError(f"unknown detector {instrument}/{detector} (simulated: {known})") from None


# ---------------------------------------------------------------------------------------
# sky <-> tangent plane


def tan_project(ra, dec, ra0: float, dec0: float):
    """Gnomonic projection about (ra0, dec0): returns (east, north) offsets in arcsec."""
    ra = np.radians(ra)
    dec = np.radians(dec)
    a0 = math.radians(ra0)
    d0 = math.radians(dec0)
    cosc = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    xi = np.cos(dec) * np.sin(ra - a0) / cosc
    eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cosc
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def tan_deproject(east, north, ra0: float, dec0: float):
    """Inverse of :func:`tan_project`: (east, north) arcsec -> (ra, dec) degrees, ra in [0, 360)."""
    xi = np.radians(np.asarray(east, dtype=float) / 3600.0)
    eta = np.radians(np.asarray(north, dtype=float) / 3600.0)
    a0 = math.radians(ra0)
    d0 = math.radians(dec0)
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        sin_c_over_rho = np.where(rho > 0, np.sin(c) / np.where(rho > 0, rho, 1.0), 1.0)
    dec = np.arcsin(np.cos(c) * math.sin(d0) + eta * sin_c_over_rho * np.cos(c) * math.cos(d0))
    ra = a0 + np.arctan2(xi * np.sin(c), rho * math.cos(d0) * np.cos(c) - eta * math.sin(d0) * np.sin(c))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def focal_to_sky_matrix(orientat: float) -> np.ndarray:
    """Matrix taking focal (p, q) arcsec to sky (east, north) arcsec; its own inverse."""
    t = math.radians(orientat)
    return np.array([[-math.cos(t), math.sin(t)], [math.sin(t), math.cos(t)]])


def offset_position(ra: float, dec: float, east: float, north: float) -> tuple[float, float]:
    """The position ``east``/``north`` arcsec (tangent plane) from (ra, dec), degrees."""
    r, d = tan_deproject(east, north, ra, dec)
    return float(r), float(d)


# ---------------------------------------------------------------------------------------
# chip WCS


@dataclass
class ChipGeometry:
    """The WCS of one chip for one pointing, at the file's (downscaled) pixel size.

    ``crpix`` is FITS 1-based; ``cd`` in degrees per pixel; ``a``/``b``/``ap``/``bp`` are
    SIP coefficients ``{(p, q): value}`` in file pixels; ``orientat`` = PA of the chip's
    +y axis (deg E of N) at CRVAL, from the CD matrix.
    """

    chip: ChipModel
    nx: int
    ny: int
    crpix: tuple[float, float]
    crval: tuple[float, float]
    cd: np.ndarray
    a: dict[tuple[int, int], float]
    b: dict[tuple[int, int], float]
    ap: dict[tuple[int, int], float]
    bp: dict[tuple[int, int], float]
    sip_order: int
    inv_order: int
    inv_max_error: float
    downscale: int

    @property
    def orientat(self) -> float:
        return math.degrees(math.atan2(self.cd[0, 1], self.cd[1, 1]))

    @property
    def pixel_scale(self) -> float:
        """Mean pixel scale at the reference pixel, arcsec/px."""
        return math.sqrt(abs(np.linalg.det(self.cd))) * 3600.0


def chip_shape(chip: ChipModel, downscale: int) -> tuple[int, int]:
    """(nx, ny) of a chip at ``downscale`` K: ``max(1, round(n / K))``."""
    return max(1, int(round(chip.nx / downscale))), max(1, int(round(chip.ny / downscale)))


def chip_geometry(
    det: DetectorModel,
    chip: ChipModel,
    ra_aper: float,
    dec_aper: float,
    orientat: float,
    downscale: int = 1,
) -> ChipGeometry:
    """The chip's TAN-SIP WCS when the aperture reference points at (ra_aper, dec_aper).

    Downscaling by K keeps the edges of the chip where they are on the sky: native pixel
    edge ``x_n - 0.5 = K (x_k - 0.5)`` (1-based), so ``CRPIX_k = (CRPIX_n - 0.5)/K + 0.5``,
    the linear term is multiplied by K and SIP coefficient (p, q) by ``K**(p + q - 1)``.
    """
    k = int(downscale)
    if k < 1:
        raise ValueError("downscale must be a positive integer")
    rot = focal_to_sky_matrix(orientat)
    off = np.array(chip.offset, dtype=float)
    east, north = rot @ off
    ra_c, dec_c = offset_position(ra_aper, dec_aper, east, north)
    # Jacobian of the chip's own tangent plane with respect to the focal frame at the
    # chip reference (1 arcsec central differences; exact to ~1e-11 relative).
    step = 1.0
    jac = np.empty((2, 2))
    for j, d in enumerate(([step, 0.0], [0.0, step])):
        pts = []
        for sgn in (1.0, -1.0):
            e, n = rot @ (off + sgn * np.array(d))
            r, dd = tan_deproject(e, n, ra_aper, dec_aper)
            pts.append(np.array(tan_project(r, dd, ra_c, dec_c), dtype=float))
        jac[:, j] = (pts[0] - pts[1]) / (2 * step)
    lin = np.array(chip.lin, dtype=float) * k
    cd = jac @ lin / 3600.0
    a = {pq: v * k ** (pq[0] + pq[1] - 1) for pq, v in chip.a.items()}
    b = {pq: v * k ** (pq[0] + pq[1] - 1) for pq, v in chip.b.items()}
    nx, ny = chip_shape(chip, k)
    crpix = ((chip.crpix[0] - 0.5) / k + 0.5, (chip.crpix[1] - 0.5) / k + 0.5)
    order = max(p + q for p, q in list(a) + list(b))
    ap, bp, inv_order, err = fit_inverse_sip(a, b, nx, ny, crpix)
    return ChipGeometry(
        chip=chip, nx=nx, ny=ny, crpix=crpix, crval=(ra_c, dec_c), cd=cd, a=a, b=b, ap=ap, bp=bp,
        sip_order=order, inv_order=inv_order, inv_max_error=err, downscale=k,
    )


def sip_eval(coeffs: dict[tuple[int, int], float], u, v):
    """Sum of ``c * u**p * v**q`` over the coefficients."""
    out = np.zeros(np.broadcast(u, v).shape)
    for (p, q), c in coeffs.items():
        out = out + c * u**p * v**q
    return out


def sip_gradient(coeffs: dict[tuple[int, int], float], u, v):
    """Partial derivatives (d/du, d/dv) of :func:`sip_eval` at (u, v)."""
    shape = np.broadcast(u, v).shape
    du, dv = np.zeros(shape), np.zeros(shape)
    for (p, q), c in coeffs.items():
        if p:
            du = du + c * p * u ** (p - 1) * v**q
        if q:
            dv = dv + c * q * u**p * v ** (q - 1)
    return du, dv


def idcscale(det: DetectorModel) -> float:
    """The file's ``IDCSCALE``: the nominal (IDCTAB) pixel scale, arcsec per native pixel."""
    return float(round(det.native_scale(), 6))


def pixel_area_map(geom: ChipGeometry, x, y, nominal_scale: float):
    """Pixel area map (PAM) of a chip: the sky area of the file pixel at 0-based (x, y) over
    the nominal pixel area ``(nominal_scale * K)**2`` (``nominal_scale``: IDCSCALE, arcsec per
    native pixel; K the downscale).

    The area is ``|det CD| |det (1 + d(f, g)/d(u, v))|`` of the TAN-SIP WCS (SIP ``f``, ``g``
    in pixel offsets ``u, v`` from CRPIX); the gnomonic projection's own area change
    (``cos**3`` of the distance from CRVAL, < 1e-6 over a chip) is neglected.  This is the
    factor by which drizzle, which takes FLT pixels as flat-fielded values per nominal
    pixel area, scales the counts of a source falling on that pixel.
    """
    u = np.asarray(x, float) + 1.0 - geom.crpix[0]
    v = np.asarray(y, float) + 1.0 - geom.crpix[1]
    fu, fv = sip_gradient(geom.a, u, v)
    gu, gv = sip_gradient(geom.b, u, v)
    jac = np.abs((1.0 + fu) * (1.0 + gv) - fv * gu)
    area = abs(np.linalg.det(geom.cd)) * 3600.0**2 * jac
    return area / (nominal_scale * geom.downscale) ** 2


_INVERSE_CACHE: dict[tuple, tuple] = {}


def fit_inverse_sip(a, b, nx: int, ny: int, crpix, tol: float = 2.0e-4, max_order: int = 9):
    """Fit the inverse SIP (AP/BP) of a forward SIP over the chip (plus a 2% margin).

    Returns ``(ap, bp, order, max_error_px)`` with the smallest order whose maximum
    round-trip error on a dense grid (61 x 61) is below ``tol`` pixels (well under the
    0.001 px requirement); the coefficients include the constant and linear terms, as
    SIP allows.  The fit is done in a Chebyshev basis (well conditioned normal
    equations) and converted to SIP monomials; the error is measured on the monomials.
    Results are cached per (coefficients, chip size, CRPIX).
    """
    from numpy.polynomial import chebyshev as cheb

    key = (tuple(sorted(a.items())), tuple(sorted(b.items())), nx, ny, tuple(crpix))
    hit = _INVERSE_CACHE.get(key)
    if hit is not None:
        return hit
    mx, my = 0.02 * nx + 2, 0.02 * ny + 2
    gx = np.linspace(0.5 - mx, nx + 0.5 + mx, 61)
    gy = np.linspace(0.5 - my, ny + 0.5 + my, 61)
    X, Y = np.meshgrid(gx, gy)
    u = (X - crpix[0]).ravel()
    v = (Y - crpix[1]).ravel()
    U = u + sip_eval(a, u, v)
    V = v + sip_eval(b, u, v)
    du, dv = u - U, v - V
    su = max(abs(U).max(), 1.0)
    sv = max(abs(V).max(), 1.0)
    fwd_order = max(p + q for p, q in list(a) + list(b))
    best = None
    for order in range(max(fwd_order, 2), max_order + 1):
        terms = [(i, n - i) for n in range(order + 1) for i in range(n, -1, -1)]
        tx = cheb.chebvander(U / su, order)
        ty = cheb.chebvander(V / sv, order)
        M = np.stack([tx[:, i] * ty[:, j] for i, j in terms], axis=1)
        A = M.T @ M
        cu = np.linalg.solve(A, M.T @ du)
        cv = np.linalg.solve(A, M.T @ dv)
        polys = [cheb.cheb2poly(np.eye(order + 1)[i]) for i in range(order + 1)]
        mono_u = np.zeros((order + 1, order + 1))
        mono_v = np.zeros((order + 1, order + 1))
        for (i, j), ci, cj in zip(terms, cu, cv):
            outer = np.outer(polys[i], polys[j])
            mono_u[: i + 1, : j + 1] += ci * outer
            mono_v[: i + 1, : j + 1] += cj * outer
        ap = {t: float(mono_u[t] / (su ** t[0] * sv ** t[1])) for t in terms}
        bp = {t: float(mono_v[t] / (su ** t[0] * sv ** t[1])) for t in terms}
        err = float(np.hypot(sip_eval(ap, U, V) - du, sip_eval(bp, U, V) - dv).max())
        best = (ap, bp, order, err)
        if err < tol:
            break
    _INVERSE_CACHE[key] = best
    return best


# ---------------------------------------------------------------------------------------
# PSF


def psf_fwhm_arcsec(det: DetectorModel, filt: FilterInfo) -> float:
    """PSF FWHM (arcsec): diffraction of the 2.4 m aperture at PHOTPLAM, plus detector blur."""
    diffraction = 1.03 * filt.plam * 1.0e-10 / 2.4 * 206264.806
    return math.hypot(diffraction, det.blur_arcsec)


MIN_FWHM_PX = 1.5


def psf_fwhm_pixels(det: DetectorModel, filt: FilterInfo, downscale: int) -> float:
    """Core FWHM in file pixels: native value / K, but never below 1.5 px.

    The floor keeps downscaled test images sampled well enough that a centroid is
    meaningful; at native scale every HST PSF is already above it except WFC3/IR,
    which is kept slightly undersampled as in the archive (about 1.2 px).
    """
    native = psf_fwhm_arcsec(det, filt) / det.native_scale()
    if downscale == 1:
        return native
    return max(native / downscale, MIN_FWHM_PX)

"""One synthetic exposure: :class:`ExposureSpec` -> an archive-like ``_flt``/``_flc`` file.

The file has the archive's layout: an empty PRIMARY HDU with the exposure keywords,
then SCI/ERR/DQ per chip (EXTVER 1, 2 in the archive's order: SCI,1 is WFC2/UVIS2, the
lower chip), plus SAMP/TIME for WFC3/IR.  SCI headers carry a TAN-SIP WCS (forward
A/B and inverse AP/BP); ERR/DQ carry the linear TAN part only, as in archive files.

Determinism: every random stream is seeded from ``(spec.seed, ipppssoot, chip)`` (stable
CRC-32, not Python's ``hash``), and time keywords (DATE, IRAF-TLM, PROCTIME) derive from
EXPSTART, so the same spec gives a byte-identical file.
"""

from __future__ import annotations

import datetime as _dt
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from mvmdb.simulate import render
from mvmdb.simulate.instruments import (
    DQ,
    SDQFLAGS,
    ChipGeometry,
    DetectorModel,
    FilterInfo,
    chip_geometry,
    detector_model,
    idcscale,
    pixel_area_map,
    psf_fwhm_pixels,
    sip_eval,
    tan_deproject,
    tan_project,
)
from mvmdb.simulate.truth import is_galaxy, positions_at, source_rates

MJD_EPOCH = _dt.datetime(1858, 11, 17)

ARTIFACTS: tuple[str, ...] = ("spikes", "bleed", "cte", "satellite")
"""Optional pixel artifacts of :class:`ExposureSpec` (see its docstring)."""
CTE_STRENGTH = 0.30  # charge fraction deferred at the far edge of a chip
CTE_SCALE_NATIVE_PX = 3.0  # e-folding length of the tail, native pixels

# First-order trace of the dispersers: (start, length) in native pixels along +x.
DISPERSION = {"G141": (20.0, 140.0), "G102": (20.0, 160.0), "G800L": (60.0, 130.0), "G280": (100.0, 200.0),
              "PR200L": (10.0, 60.0), "PR110L": (10.0, 60.0)}


def stable_seed(*parts) -> list[int]:
    """A seed list for ``np.random.default_rng`` from ints/strings (CRC-32 of strings)."""
    out = []
    for p in parts:
        if isinstance(p, (int, np.integer)):
            out.append(int(p) & 0xFFFFFFFF)
        else:
            out.append(zlib.crc32(str(p).encode()))
    return out


def mjd_to_datetime(mjd: float) -> _dt.datetime:
    return MJD_EPOCH + _dt.timedelta(days=float(mjd))


@dataclass
class ExposureSpec:
    """Everything that defines one simulated exposure.

    Pointing: the aperture reference point is at (``ra``, ``dec``) degrees (RA_APER,
    DEC_APER) and ``orientat`` is the position angle (deg E of N) of the detector's +y
    axis there (PA_APER); ``PA_V3`` is derived from it.  ``exptime`` in s, ``expstart`` in
    MJD.  ``filter`` is the spectral element (ACS: the non-CLEAR one; the other wheel gets
    CLEAR1L/CLEAR2L on WFC, CLEAR1S/CLEAR2S on HRC, N/A on SBC).

    Pixels: ``downscale`` K divides the chip size by K keeping the footprint;
    ``header_only`` writes empty data arrays (SIZAXIS1/2 keep the chip size).

    Sky: ``sky_level`` is the injected flat sky per chip *in the file's units*
    (e- for ACS/WFC, HRC, WFC3/UVIS; e-/s for WFC3/IR; counts for SBC), a number or one
    per chip; when None it is the filter's typical sky rate x ``sky_factor`` (x K^2 per
    pixel, x EXPTIME unless a rate) with a +-2% chip-to-chip difference.  ``sky_factor``
    None (the default) draws a factor in [0.7, 1.6] per exposure (zodiacal light and
    earthshine vary), so every exposure has its own sky level for sky matching.

    Flat field: like the archive's FLT/FLC files, pixels are flat-fielded to a uniform sky
    per pixel, so the counts of a source on a pixel whose sky area differs from the nominal
    ``(IDCSCALE * K)**2`` are divided by the pixel area map there (``rate * EXPTIME / PAM``,
    :func:`~mvmdb.simulate.instruments.pixel_area_map`): an FLT aperture sum must be
    multiplied by the PAM to give the truth rate, while drizzle (which multiplies by the
    pixel's area over nominal) gives it directly.

    Artifacts: ``cosmic_rays`` (rate per detector, scaled so the hit fraction of pixels
    is realistic at any K); ``cr_flag`` is the DQ bit set on hit pixels (None: 4096 on
    CCDs as after the pipeline's AstroDrizzle, 8192 on WFC3/IR where up-the-ramp fitting
    removes the charge; 0: leave them unflagged); ``detector_defects``: hot (16), warm
    (64), bad (4) pixels and a bad column (128); ``noise``: Poisson and read noise.

    Optional defects: ``trail`` = (length arcsec, PA deg) smears every source along a
    line on the sky (loss of guide-star lock, or a moving-target track); ``wcs_error`` =
    (dx, dy) file pixels added to CRPIX, so positions projected through the *header* WCS
    are the true positions + (dx, dy); ``mtflag`` sets MTFLAG='T'; dispersers (G*, PR*)
    get OBSTYPE='SPECTROSCOPIC' and first-order traces.  ``keywords`` overrides or adds
    PRIMARY keywords (e.g. ``{'SCAN_TYP': 'C'}``); ``labels`` go to the manifest.

    Artifacts that fool trail detectors (:data:`ARTIFACTS`, none by default, so default
    files stay byte-identical): ``spikes`` (diffraction spikes on stars that saturate),
    ``bleed`` (CCD saturation bleeding along columns, flagged 256), ``cte`` (CTE tails
    away from the serial register, up to 30% of the charge at the far edge),
    ``satellite`` (a bright streak across every chip); ``cr_factor`` multiplies the
    cosmic-ray rate (with ``cr_flag=0`` the hits are left unflagged, the hard case).

    Rendering: ``psf_fwhm`` is the PSF core FWHM in file pixels (None: diffraction at
    PHOTPLAM plus detector blur, divided by K, at least 1.5 px when K > 1); ``seed``
    seeds every random stream together with the ipppssoot.
    """

    instrument: str
    detector: str
    filter: str
    ra: float
    dec: float
    orientat: float = 0.0
    exptime: float = 500.0
    expstart: float = 55800.0
    ipppssoot: str | None = None
    proposid: int = 12286
    targname: str = "ANY"
    ra_targ: float | None = None
    dec_targ: float | None = None
    postarg: tuple[float, float] = (0.0, 0.0)
    pattern: str = "NONE"
    pattern_step: int = 1
    pattern_npts: int = 1
    pattern_spacing: float = 0.0
    asn_id: str | None = None
    linenum: str | None = None
    primesi: str | None = None
    filetype: str | None = None
    wcsname: str | None = None
    downscale: int = 1
    header_only: bool = False
    sky_level: float | tuple[float, ...] | None = None
    sky_factor: float | None = None
    cosmic_rays: bool = True
    cr_flag: int | None = None
    detector_defects: bool = True
    noise: bool = True
    seed: int = 0
    psf_fwhm: float | None = None
    trail: tuple[float, float] | None = None
    wcs_error: tuple[float, float] = (0.0, 0.0)
    mtflag: bool = False
    quality: str = ""
    pi_name: str = "Simulated"
    keywords: dict = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    scene: str = ""
    artifacts: tuple[str, ...] = ()
    cr_factor: float = 1.0

    @property
    def model(self) -> DetectorModel:
        return detector_model(self.instrument, self.detector)

    @property
    def filter_info(self) -> FilterInfo:
        return self.model.filter(self.filter)

    def __post_init__(self) -> None:
        det = self.model  # validates instrument/detector
        unknown = set(self.artifacts) - set(ARTIFACTS)
        if unknown:
            raise ValueError(f"unknown artifacts {sorted(unknown)} (known: {', '.join(ARTIFACTS)})")
        self.model.filter(self.filter)  # validates the filter
        if self.ipppssoot is None:
            # deterministic default from the pointing, time and filter: i/j + 'zz' + 5 + 'q'
            tag = zlib.crc32(f"{self.ra:.6f}{self.dec:.6f}{self.expstart:.6f}{self.filter}".encode())
            self.ipppssoot = f"{det.letter}zz{_b36(tag % 36**5, 5)}q"
        self.ipppssoot = self.ipppssoot.lower()
        if len(self.ipppssoot) != 9 or not self.ipppssoot.isalnum() or self.ipppssoot[0] != det.letter:
            raise ValueError(f"ipppssoot {self.ipppssoot!r} is not 9 characters starting with {det.letter!r} "
                             f"({self.instrument})")

    @property
    def rootname(self) -> str:
        """The lower-case ipppssoot (ROOTNAME)."""
        return self.ipppssoot

    @property
    def file_type(self) -> str:
        return (self.filetype or self.model.default_filetype).lower()

    @property
    def filename(self) -> str:
        return f"{self.rootname}_{self.file_type}.fits"

    @property
    def pa_v3(self) -> float:
        return (self.orientat - self.model.theta_minus_pav3) % 360.0


def _b36(n: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(width):
        out = digits[n % 36] + out
        n //= 36
    return out


@dataclass
class ExposureResult:
    """What was written: path, per-chip sky (file units), CR count, geometry."""

    path: Path
    spec: ExposureSpec
    sky_level: list[float]
    n_cr: int
    psf_fwhm: float
    geometries: list[ChipGeometry]
    bunit: str
    footprint: list[list[tuple[float, float]]]


# ---------------------------------------------------------------------------------------
# header helpers


def _format_float(value: float) -> str:
    text = repr(float(value)).upper()
    if "INF" in text or "NAN" in text:
        raise ValueError(f"cannot write {value!r} in a FITS header")
    if "E" in text:
        mant, exp = text.split("E")
        if "." not in mant:
            mant += ".0"
        text = f"{mant}E{exp}"
    elif "." not in text:
        text += ".0"
    if len(text) > 20:  # keep as many digits as fit in the fixed-format value field
        for digits in range(16, 0, -1):
            text = f"{float(value):.{digits}E}"
            if len(text) <= 20:
                break
    return text


def _card_image(key: str, value, comment: str) -> str | None:
    """One 80-column fixed-format card, or None when astropy must format it (CONTINUE)."""
    if key in ("HISTORY", "COMMENT"):
        return f"{key:8s}{value}"[:80].ljust(80)
    if isinstance(value, str):
        quoted = "'" + value.replace("'", "''").ljust(8) + "'"
        if len(quoted) > 68:
            return None
        field = quoted.ljust(20)
    elif isinstance(value, (bool, np.bool_)):
        field = ("T" if value else "F").rjust(20)
    elif isinstance(value, (int, np.integer)):
        field = str(int(value)).rjust(20)
    else:
        field = _format_float(value).rjust(20)
    image = f"{key:8s}= {field}"
    if comment:
        image = f"{image} / {comment}"
    return image[:80].ljust(80)


def _long_string_cards(key: str, value: str, comment: str) -> list[str]:
    """A long string value as a keyword card plus CONTINUE cards (the FITS convention)."""
    text = value.replace("'", "''")
    chunks = []
    while text:
        cut = 67
        if len(text) > cut and text[cut - 1] == "'":  # never split a doubled quote
            cut -= 1
        chunks.append(text[:cut])
        text = text[cut:]
    images = []
    for n, chunk in enumerate(chunks):
        last = n == len(chunks) - 1
        body = "'" + chunk + ("" if last else "&") + "'"
        head = f"{key:8s}= " if n == 0 else "CONTINUE  "
        image = head + body
        if last and comment and len(image) + 3 + len(comment) <= 80:
            image += " / " + comment
        images.append(image.ljust(80))
    return images


def _card_images(cards) -> list[str]:
    images = []
    for key, value, comment in cards:
        image = _card_image(key, value, comment)
        images.extend(_long_string_cards(key, value, comment) if image is None else [image])
    return images


_FITS_DTYPES = {np.dtype(np.float32): (-32, ">f4"), np.dtype(np.float64): (-64, ">f8"),
                np.dtype(np.int16): (16, ">i2"), np.dtype(np.int32): (32, ">i4"), np.dtype(np.uint8): (8, "u1")}


def _hdu_bytes(cards, data: np.ndarray | None, primary: bool) -> bytes:
    """One HDU as FITS bytes: mandatory keywords, ``cards``, END, padding, big-endian data."""
    if data is None:
        bitpix, shape, raw = 8, (), b""
    else:
        bitpix, be = _FITS_DTYPES[np.dtype(data.dtype)]
        shape = data.shape
        raw = np.ascontiguousarray(data, dtype=be).tobytes()
    if primary:
        head = [("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", bitpix, "array data type"),
                ("NAXIS", len(shape), "number of array dimensions")]
    else:
        head = [("XTENSION", "IMAGE", "Image extension"), ("BITPIX", bitpix, "array data type"),
                ("NAXIS", len(shape), "number of array dimensions")]
    head += [(f"NAXIS{i + 1}", int(n), "") for i, n in enumerate(reversed(shape))]
    head += [("EXTEND", True, "")] if primary else [("PCOUNT", 0, "number of parameters"),
                                                     ("GCOUNT", 1, "number of groups")]
    text = "".join(_card_images(head) + _card_images(cards)) + "END".ljust(80)
    text += " " * (-len(text) % 2880)
    return text.encode("ascii") + raw + b"\0" * (-len(raw) % 2880)


def write_fits(path: Path, hdus: list[tuple[list, np.ndarray | None]]) -> None:
    """Write [(cards, data), ...] as a FITS file (first = PRIMARY) atomically, byte-deterministic.

    The simulator formats its own cards (see :func:`make_header`), so going around
    ``astropy.io.fits`` here is ~10x faster for header-only files; the tests open every
    file with astropy (warnings as errors) and verify it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        for i, (cards, data) in enumerate(hdus):
            f.write(_hdu_bytes(cards, data, primary=(i == 0)))
    tmp.replace(path)


def make_header(cards) -> fits.Header:
    """``fits.Header`` from (key, value, comment) triples, formatted as fixed-format cards.

    Cards are formatted here (comments cut to 80 columns, floats with as many digits as
    fit) and parsed with ``Header.fromstring``: much faster than building ``Card``
    objects one by one, and free of astropy's truncation ``VerifyWarning``.  Long
    string values (S_REGION) become CONTINUE cards.
    """
    return fits.Header.fromstring("".join(_card_images(cards)))


def _sip_cards(geom: ChipGeometry, crpix: tuple[float, float]):
    cards = [
        ("A_ORDER", geom.sip_order, "SIP polynomial order, axis 0, detector to sky"),
    ]
    for (p, q), v in sorted(geom.a.items()):
        cards.append((f"A_{p}_{q}", v, "SIP distortion coefficient"))
    cards.append(("B_ORDER", geom.sip_order, "SIP polynomial order, axis 1, detector to sky"))
    for (p, q), v in sorted(geom.b.items()):
        cards.append((f"B_{p}_{q}", v, "SIP distortion coefficient"))
    cards.append(("AP_ORDER", geom.inv_order, "SIP polynomial order, axis 0, sky to detector"))
    for (p, q), v in sorted(geom.ap.items()):
        cards.append((f"AP_{p}_{q}", v, "SIP inverse distortion coefficient"))
    cards.append(("BP_ORDER", geom.inv_order, "SIP polynomial order, axis 1, sky to detector"))
    for (p, q), v in sorted(geom.bp.items()):
        cards.append((f"BP_{p}_{q}", v, "SIP inverse distortion coefficient"))
    return cards


def _wcs_cards(geom: ChipGeometry, crpix, sip: bool, wcsname: str):
    ctype = ("RA---TAN-SIP", "DEC--TAN-SIP") if sip else ("RA---TAN", "DEC--TAN")
    cards = [
        ("WCSAXES", 2, "Number of coordinate axes"),
        ("CRPIX1", float(crpix[0]), "Pixel coordinate of reference point"),
        ("CRPIX2", float(crpix[1]), "Pixel coordinate of reference point"),
        ("CRVAL1", float(geom.crval[0]), "[deg] Coordinate value at reference point"),
        ("CRVAL2", float(geom.crval[1]), "[deg] Coordinate value at reference point"),
        ("CTYPE1", ctype[0], "TAN (gnomonic) projection" + (" + SIP distortions" if sip else "")),
        ("CTYPE2", ctype[1], "TAN (gnomonic) projection" + (" + SIP distortions" if sip else "")),
        ("CUNIT1", "deg", "Units of coordinate increment and value"),
        ("CUNIT2", "deg", "Units of coordinate increment and value"),
        ("CD1_1", float(geom.cd[0, 0]), "partial of first axis coordinate w.r.t. x"),
        ("CD1_2", float(geom.cd[0, 1]), "partial of first axis coordinate w.r.t. y"),
        ("CD2_1", float(geom.cd[1, 0]), "partial of second axis coordinate w.r.t. x"),
        ("CD2_2", float(geom.cd[1, 1]), "partial of second axis coordinate w.r.t. y"),
        ("RADESYS", "ICRS", "Equatorial coordinate system"),
        ("WCSNAME", wcsname, "Coordinate system title"),
    ]
    return cards


def sci_wcs_header(geom: ChipGeometry, crpix=None, wcsname: str = "SIM") -> fits.Header:
    """A minimal header with the chip's full TAN-SIP WCS (forward and inverse SIP)."""
    crpix = geom.crpix if crpix is None else crpix
    return make_header([*_wcs_cards(geom, crpix, True, wcsname), *_sip_cards(geom, crpix)])


def pix2world(geom: ChipGeometry, x, y, crpix=None):
    """0-based pixel -> (ra, dec) degrees through the chip's TAN-SIP WCS (numpy only).

    Agrees with ``astropy.wcs.WCS.all_pix2world(..., 0)`` of the written header to
    ~1e-10 deg; used for footprints, where building an astropy WCS per chip is slow.
    """
    crpix = geom.crpix if crpix is None else crpix
    u = np.asarray(x, float) + 1.0 - crpix[0]
    v = np.asarray(y, float) + 1.0 - crpix[1]
    fu = u + sip_eval(geom.a, u, v)
    fv = v + sip_eval(geom.b, u, v)
    xi = (geom.cd[0, 0] * fu + geom.cd[0, 1] * fv) * 3600.0
    eta = (geom.cd[1, 0] * fu + geom.cd[1, 1] * fv) * 3600.0
    return tan_deproject(xi, eta, geom.crval[0], geom.crval[1])


def _s_region(geom: ChipGeometry, crpix) -> tuple[str, list[tuple[float, float]]]:
    nx, ny = geom.nx, geom.ny
    corners = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5]])
    ra, dec = pix2world(geom, corners[:, 0], corners[:, 1], crpix)
    pts = [(float(r) % 360.0, float(d)) for r, d in zip(ra, dec)]
    text = "POLYGON ICRS " + " ".join(f"{r:.9f} {d:.9f}" for r, d in pts + [pts[0]])
    return text, pts


def _filter_cards(spec: ExposureSpec, det: DetectorModel, filt: FilterInfo):
    if det.instrument == "WFC3":
        return [("FILTER", filt.name, "element selected from filter wheel")]
    if det.detector == "SBC":
        return [("FILTER1", filt.name, "element selected from filter wheel 1"),
                ("FILTER2", "N/A", "element selected from filter wheel 2")]
    size = "L" if det.detector == "WFC" else "S"
    if filt.wheel == 2:
        f1, f2 = f"CLEAR1{size}", filt.name
    else:
        f1, f2 = filt.name, f"CLEAR2{size}"
    return [("FILTER1", f1, "element selected from filter wheel 1"),
            ("FILTER2", f2, "element selected from filter wheel 2")]


def _photometry_cards(det: DetectorModel, filt: FilterInfo, mjd: float, chipname: str):
    return [
        ("PHOTMODE", f"{det.instrument} {chipname} {filt.name} MJD#{mjd:.4f}", "observation con"),
        ("PHOTFLAM", float(f"{filt.photflam:.7e}"), "inverse sensitivity, ergs/cm2/Ang/electron"),
        ("PHOTZPT", -21.1, "ST magnitude zero point"),
        ("PHOTPLAM", float(filt.plam), "Pivot wavelength (Angstroms)"),
        ("PHOTBW", float(round(filt.plam * 0.08, 3)), "RMS bandwidth of filter plus detector"),
    ]


def _chip_name(det: DetectorModel, geom: ChipGeometry) -> str:
    if det.detector == "WFC":
        return f"WFC{geom.chip.ccdchip}"
    if det.detector == "UVIS":
        return f"UVIS{geom.chip.ccdchip}"
    return det.detector


def primary_cards(spec: ExposureSpec, nextend: int, cr_flag: int) -> list[tuple]:
    """The PRIMARY keywords of ``spec``'s file as (key, value, comment) triples."""
    det = spec.model
    filt = spec.filter_info
    start = mjd_to_datetime(spec.expstart)
    written = mjd_to_datetime(spec.expstart + 1.0)
    ra_t = spec.ra if spec.ra_targ is None else spec.ra_targ
    dec_t = spec.dec if spec.dec_targ is None else spec.dec_targ
    root = spec.rootname
    visit_ss = root[4:6].upper()
    linenum = spec.linenum or f"{visit_ss}.001"
    asn = spec.asn_id or "NONE"
    dispersive = filt.is_dispersive
    cte = det.has_cte
    ccd = det.ccd
    cards = [
        ("ORIGIN", "mvmdb.simulate", "FITS file originator"),
        ("DATE", written.strftime("%Y-%m-%d"), "date this file was written (yyyy-mm-dd)"),
        ("IRAF-TLM", written.strftime("%H:%M:%S (%d/%m/%Y)"), "time of last modification"),
        ("NEXTEND", nextend, "Number of standard extensions"),
        ("FILENAME", spec.filename, "name of file"),
        ("FILETYPE", "SCI", "type of data found in data file"),
        ("TELESCOP", "HST", "telescope used to acquire data"),
        ("INSTRUME", det.instrument, "identifier for instrument used to acquire data"),
        ("EQUINOX", 2000.0, "equinox of celestial coord. system"),
        ("ROOTNAME", root, "rootname of the observation set"),
        ("IMAGETYP", "EXT", "type of exposure identifier"),
        ("PRIMESI", spec.primesi or det.instrument, "instrument designated as prime"),
        ("TARGNAME", spec.targname, "proposer's target name"),
        ("RA_TARG", float(ra_t), "right ascension of the target (deg) (J2000)"),
        ("DEC_TARG", float(dec_t), "declination of the target (deg) (J2000)"),
        ("PROPOSID", int(spec.proposid), "PEP proposal identifier"),
        ("LINENUM", linenum, "proposal logsheet line number"),
        ("PR_INV_L", spec.pi_name, "last name of principal investigator"),
        ("PR_INV_F", "A.", "first name of principal investigator"),
        ("FGSLOCK", "FINE", "commanded FGS lock (FINE,COARSE,GYROS,UNKNOWN)"),
        ("GYROMODE", "T", "number of gyros scheduled, T=3+OBAD"),
        ("REFFRAME", "ICRS", "guide star catalog version"),
        ("MTFLAG", "T" if spec.mtflag else " ", "moving target flag; T if it is a moving target"),
        ("DATE-OBS", start.strftime("%Y-%m-%d"), "UT date of start of observation (yyyy-mm-dd)"),
        ("TIME-OBS", start.strftime("%H:%M:%S"), "UT time of start of observation (hh:mm:ss)"),
        ("EXPSTART", float(spec.expstart), "exposure start time (Modified Julian Date)"),
        ("EXPEND", float(spec.expstart + spec.exptime / 86400.0), "exposure end time (Modified Julian Date)"),
        ("EXPTIME", float(spec.exptime), "exposure duration (seconds)--calculated"),
        ("TEXPTIME", float(spec.exptime), "total exposure time (seconds)"),
        ("EXPFLAG", "NORMAL", "Exposure interruption indicator"),
        ("QUALCOM1", "", ""),
        ("QUALCOM2", "", ""),
        ("QUALCOM3", "", ""),
        ("QUALITY", spec.quality, ""),
        ("DARKTIME", float(spec.exptime + 3.0), "fiducial pixel dark time (secs)"),
        ("PA_V3", float(round(spec.pa_v3, 6)), "position angle of V3-axis of HST (deg)"),
        ("POSTARG1", float(spec.postarg[0]), "POSTARG in axis 1 direction"),
        ("POSTARG2", float(spec.postarg[1]), "POSTARG in axis 2 direction"),
        ("PROCTIME", float(round(spec.expstart + 1.0, 8)), "pipeline processing time (MJD)"),
        ("OPUS_VER", "HSTDP 2024_1", "data processing software system version"),
        ("CAL_VER", "10.4.0" if det.instrument == "ACS" else "3.7.2", "calibration code version"),
        ("OBSTYPE", "SPECTROSCOPIC" if dispersive else "IMAGING", "observation type - imaging or spectroscopic"),
        ("OBSMODE", det.obsmode, "operating mode"),
        ("SCLAMP", "NONE", "lamp status, NONE or name of lamp which is on"),
        ("NRPTEXP", 1, "number of repeat exposures in set: default 1"),
        ("SUBARRAY", False, "data from a subarray (T) or full frame (F)"),
        ("DETECTOR", det.detector, "detector in use"),
        *_filter_cards(spec, det, filt),
        ("APERTURE", det.aperture, "aperture name"),
        ("PROPAPER", det.aperture, "proposed aperture name"),
        ("DIRIMAGE", "NONE", "direct image for grism or prism exposure"),
        ("CRSPLIT", 1, "number of cosmic ray split exposures"),
    ]
    if det.instrument == "WFC3":
        cards += [
            ("SCAN_TYP", "N", "C:bostrophidon; D:C with dwell; N:N/A"),
            ("SCAN_WID", 0.0, "scan width (arcsec)"),
            ("SCAN_RAT", 0.0, "commanded rate of the line scan (arcsec/sec)"),
            ("SCAN_LEN", 0.0, "scan length (arcsec)"),
            ("CSMID", det.detector, "Channel Select Mechanism ID"),
        ]
    driz = "COMPLETE" if cr_flag == int(DQ.CR_DRIZ) else "PERFORM"
    switches = [
        ("DQICORR", "COMPLETE", "data quality initialization"),
        ("ATODCORR", "OMIT", "correct for A to D conversion errors"),
        ("BLEVCORR", "COMPLETE" if ccd or det.detector == "IR" else "OMIT", "subtract bias level"),
        ("BIASCORR", "COMPLETE" if ccd else "OMIT", "Subtract bias image"),
        ("FLSHCORR", "OMIT", "post flash correction"),
        ("CRCORR", "COMPLETE" if det.detector == "IR" else "OMIT", "combine observations to reject cosmic rays"),
        ("EXPSCORR", "COMPLETE", "process individual observations after cr-reject"),
        ("SHADCORR", "OMIT", "apply shutter shading correction"),
    ]
    if cte:
        switches.append(("PCTECORR", "COMPLETE" if spec.file_type == "flc" else "PERFORM", "cte correction"))
    switches += [
        ("DARKCORR", "COMPLETE", "Subtract dark image"),
        ("FLATCORR", "COMPLETE", "flat field data"),
        ("PHOTCORR", "COMPLETE", "populate photometric header keywords"),
        ("DRIZCORR", driz, "drizzle processing"),
    ]
    if det.detector == "IR":
        switches.insert(0, ("UNITCORR", "COMPLETE", "convert to count rates"))
    cards += switches
    cards += [
        ("IDCTAB", f"{'jref' if det.instrument == 'ACS' else 'iref'}${det.idctab}_idc.fits",
         "image distortion correction table"),
    ]
    if det.detector == "IR":
        nsamp = int(min(15, max(2, round(spec.exptime / 100.0) + 1)))
        cards += [
            ("SAMP_SEQ", "SPARS100", "MultiAccum exposure time sequence name"),
            ("NSAMP", nsamp, "number of MULTIACCUM samples"),
            ("SAMPZERO", 2.911756, "sample time of the zeroth read (sec)"),
            ("SUBTYPE", "FULLIMAG", "Size/type of IR subarray"),
        ]
    cards += [
        ("PATTERN1", spec.pattern, "primary pattern type"),
        ("P1_SHAPE", spec.pattern.split("-")[-1] if spec.pattern != "NONE" else "", "primary pattern shape"),
        ("P1_PURPS", "DITHER" if spec.pattern != "NONE" else "", "primary pattern purpose"),
        ("P1_NPTS", int(spec.pattern_npts), "number of points in primary pattern"),
        ("P1_PSPAC", float(spec.pattern_spacing), "point spacing for primary pattern (arc-sec)"),
        ("P1_FRAME", "POS-TARG", "coordinate frame of primary pattern"),
        ("PATTSTEP", int(spec.pattern_step), "position number of this point in the pattern"),
    ]
    if ccd:
        cards += [
            ("FLASHDUR", 0.0, "Exposure time in seconds: 0.1 to 409.5"),
            ("FLASHCUR", "ZERO" if det.instrument == "WFC3" else "OFF", "Post flash current"),
            ("FLASHSTA", "NOT PERFORMED", "Status: SUCCESSFUL, ABORTED, NOT PERFORMED"),
            ("SHUTRPOS", "A", "Shutter position: A or B"),
        ]
    if det.detector == "UVIS":
        cards += [("CHINJECT", "NONE", "Charge Injection Mode")]
    if ccd:
        cards += [
            ("CCDAMP", "ABCD", "CCD Amplifier Readout Configuration"),
            ("CCDGAIN", float(det.gain), "commanded gain of CCD"),
        ] + [(f"READNSE{a}", float(det.read_noise), f"calibrated read noise for amplifier {a}") for a in "ABCD"]
    cards += [
        ("ASN_ID", asn, "unique identifier assigned to association"),
        ("ASN_TAB", f"{asn.lower()}_asn.fits" if asn != "NONE" else "NONE", "name of the association table"),
        ("ASN_MTYP", "EXP-DTH" if asn != "NONE" else "", "Role of the Member in the Association"),
    ]
    if det.instrument == "WFC3":
        # WFC3 keeps PHOTFLAM/PHOTPLAM in the primary header too (IR: only there).
        chip_name = "UVIS2" if det.detector == "UVIS" else "IR"
        cards += _photometry_cards(det, filt, spec.expstart, chip_name)
        cards.insert(-4, ("PHOTFNU", float(f"{filt.photflam * filt.plam**2 * 3.33564e4:.7e}"),
                          "inverse sensitivity, Jy*sec/electron"))
    cards += [
        ("SIMULATE", True, "synthetic exposure from mvmdb.simulate, not HST data"),
        ("SIMSCENE", spec.scene or "custom", "mvmdb.simulate scene name"),
        ("SIMSEED", int(spec.seed), "mvmdb.simulate random seed"),
        ("SIMDOWNS", int(spec.downscale), "detector downscale factor K (pixel scale x K)"),
    ]
    index = {c[0]: i for i, c in enumerate(cards)}
    for key, value in spec.keywords.items():
        key = key.upper()
        if key in index:
            cards[index[key]] = (key, value, cards[index[key]][2])
        else:
            index[key] = len(cards)
            cards.append((key, value, ""))
    cards += [
        ("HISTORY", "Synthetic exposure written by mvmdb.simulate: pixels rendered from a truth", ""),
        ("HISTORY", "catalogue through this file's own TAN-SIP WCS (no lookup-table distortion).", ""),
    ]
    return cards


def primary_header(spec: ExposureSpec, nextend: int, cr_flag: int) -> fits.Header:
    """The PRIMARY header of ``spec``'s file (archive keyword names, formats and units)."""
    return make_header(primary_cards(spec, nextend, cr_flag))


def _ext_header(extname: str, extver: int, spec: ExposureSpec, bunit: str) -> list:
    return [
        ("INHERIT", True, "inherit the primary header"),
        ("EXTNAME", extname, "extension name"),
        ("EXTVER", extver, "extension version number"),
        ("ROOTNAME", spec.rootname, "rootname of the observation set"),
        ("EXPNAME", spec.rootname, "exposure identifier"),
        ("BUNIT", bunit, "brightness units"),
    ]


def _true_wcs(geom: ChipGeometry) -> WCS:
    return WCS(sci_wcs_header(geom))


# ---------------------------------------------------------------------------------------
# rendering of one chip


def _source_positions(w: WCS, geom: ChipGeometry, ra: np.ndarray, dec: np.ndarray, margin_px: float):
    """0-based pixel positions of the sources near the chip (others dropped)."""
    if ra.size == 0:
        return np.zeros(0, int), np.zeros(0), np.zeros(0)
    e, n = tan_project(ra, dec, geom.crval[0], geom.crval[1])
    scale = geom.pixel_scale
    half_diag = 0.5 * math.hypot(geom.nx, geom.ny) * scale * 1.25 + margin_px * scale
    near = np.flatnonzero(np.isfinite(e) & (np.hypot(e, n) < half_diag))
    if near.size == 0:
        return near, np.zeros(0), np.zeros(0)
    x, y = w.all_world2pix(ra[near], dec[near], 0, tolerance=1e-8, maxiter=100, quiet=True)
    ok = np.isfinite(x) & np.isfinite(y)
    ok &= (x > -margin_px) & (x < geom.nx + margin_px) & (y > -margin_px) & (y < geom.ny + margin_px)
    return near[ok], x[ok], y[ok]


def _pixel_jacobian(w: WCS, ra: float, dec: float) -> np.ndarray:
    """2x2 matrix d(x, y)/d(east, north) in pixels per arcsec at (ra, dec)."""
    cosd = math.cos(math.radians(dec))
    step = 0.5 / 3600.0
    pts = np.array([
        [ra + step / cosd, dec], [ra - step / cosd, dec], [ra, dec + step], [ra, dec - step],
    ])
    x, y = w.all_world2pix(pts[:, 0], pts[:, 1], 0, tolerance=1e-10, maxiter=100, quiet=True)
    return np.array([[x[0] - x[1], x[2] - x[3]], [y[0] - y[1], y[2] - y[3]]])  # per 1 arcsec


def _smear(spec: ExposureSpec, det: DetectorModel, filt: FilterInfo, w: WCS, geom: ChipGeometry):
    """Pixel offsets (n, 2) over which every source is spread (trail / dispersion)."""
    offsets = []
    k = spec.downscale
    if spec.trail is not None and spec.trail[0] > 0:
        length, pa = spec.trail
        center = w.all_pix2world([[geom.nx / 2 - 0.5, geom.ny / 2 - 0.5]], 0)[0]
        jac = _pixel_jacobian(w, center[0], center[1])
        vec = jac @ np.array([length * math.sin(math.radians(pa)), length * math.cos(math.radians(pa))])
        npts = max(2, int(math.ceil(np.hypot(*vec) * 3)))
        t = np.linspace(-0.5, 0.5, npts)
        offsets.append(t[:, None] * vec[None, :])
    if filt.is_dispersive:
        start, length = DISPERSION.get(filt.name, (20.0, 120.0))
        npts = max(2, int(math.ceil(length / k * 2)))
        t = np.linspace(start / k, (start + length) / k, npts)
        offsets.append(np.stack([t, np.zeros_like(t)], axis=1))
    if not offsets:
        return np.zeros((1, 2))
    out = offsets[0]
    for extra in offsets[1:]:
        out = (out[:, None, :] + extra[None, :, :]).reshape(-1, 2)
    return out


def _source_signal(spec: ExposureSpec, geom: ChipGeometry, truth: Table | None, psf: render.PSF) -> np.ndarray:
    """Noiseless electrons of the truth sources on one chip (point sources and galaxies, smeared by guiding),
    flat-fielded: each source has ``rate * EXPTIME / PAM`` e- (see :class:`ExposureSpec`)."""
    det = spec.model
    filt = spec.filter_info
    k = spec.downscale
    t = float(spec.exptime)
    signal = np.zeros((geom.ny, geom.nx))
    w = _true_wcs(geom)
    smear = _smear(spec, det, filt, w, geom)
    art = set(spec.artifacts)
    if truth is not None and len(truth):
        ra, dec = positions_at(truth, spec.expstart + t / 2.0 / 86400.0)  # proper motions: mid-exposure
        rates = source_rates(truth, det, filt)
        gal = is_galaxy(truth)
        margin = psf.radius + 2 + float(np.abs(smear).max())
        idx, x, y = _source_positions(w, geom, ra, dec, margin + 50)
        counts = rates[idx] * t / pixel_area_map(geom, x, y, idcscale(det))  # flat-fielded (see ExposureSpec)
        point = ~gal[idx]
        if point.any():
            xs = (x[point][:, None] + smear[None, :, 0]).ravel()
            ys = (y[point][:, None] + smear[None, :, 1]).ravel()
            cs = np.repeat(counts[point] / smear.shape[0], smear.shape[0])
            render.add_point_sources(signal, xs, ys, cs, psf)
            if "spikes" in art and det.full_well > 0:
                angle = (45.0 + det.theta_minus_pav3) % 90.0
                render.add_spikes(signal, x[point], y[point], counts[point], psf, angle,
                                  0.5 * det.full_well * k * k / 0.15, 600.0 / k)
        for j in np.flatnonzero(~point):
            row = truth[int(idx[j])]
            pj = _pixel_jacobian(w, float(row["ra"]), float(row["dec"]))
            sky_per_px = np.linalg.inv(pj)
            for dx, dy in smear:
                render.add_galaxy(
                    signal, x[j] + dx, y[j] + dy, counts[j] / smear.shape[0], sky_per_px,
                    float(row["r_eff"]), float(row["sersic_n"]), float(row["axis_ratio"]), float(row["pa"]), psf,
                )
    if "satellite" in art:
        srng = np.random.default_rng(stable_seed(spec.seed, spec.rootname, geom.chip.extver, "satellite"))
        render.add_satellite(signal, srng, psf, float(srng.uniform(300.0, 3000.0)) * k)
    if "cte" in art and det.ccd:
        signal = render.cte_tails(signal, geom.chip.extver == 1, CTE_STRENGTH, CTE_SCALE_NATIVE_PX / k)
    return signal


def render_chip(
    spec: ExposureSpec,
    geom: ChipGeometry,
    truth: Table | None,
    sky_e: float,
    psf: render.PSF,
    rng: np.random.Generator,
    defect_rng: np.random.Generator,
    cr_flag: int,
):
    """Render one chip: returns (sci, err, dq, n_cr) in the file's units."""
    det = spec.model
    k = spec.downscale
    t = float(spec.exptime)
    shape = (geom.ny, geom.nx)
    signal = _source_signal(spec, geom, truth, psf)
    art = set(spec.artifacts)
    dark_e = det.dark * k * k * t
    full = det.full_well * k * k
    saturated = signal + sky_e > full if det.full_well > 0 else None  # decided on the noiseless signal
    bleed = None
    if "bleed" in art and saturated is not None and det.ccd and not det.per_second:
        bleed = render.bleed_mask(signal + sky_e, full)
        saturated = bleed
    mean = signal
    mean += sky_e + dark_e
    dq = np.zeros(shape, np.int16)
    defects = render.detector_defects(shape, defect_rng, ccd=det.ccd) if spec.detector_defects else None
    value = render.noisy(mean, det.read_noise, rng) if spec.noise else mean
    del mean, signal
    value -= dark_e
    if defects is not None:
        dq |= defects.dq
        hot = np.flatnonzero(defects.hot_rate)
        hot_e = defects.hot_rate.ravel()[hot] * t
        # dark-subtracted hot/warm pixels: their extra shot noise and a 10% residual
        value.ravel()[hot] += rng.normal(0.0, 1.0, hot.size) * np.sqrt(hot_e) + 0.1 * hot_e
        value[defects.bad] *= 0.1
    n_cr = 0
    if spec.cosmic_rays and det.cr_rate > 0:
        n_events = int(rng.poisson(det.cr_rate * spec.cr_factor * geom.nx * geom.ny * t))
        crs = render.cosmic_rays(shape, n_events, det.cr_length / k, rng)
        n_cr = crs.n_events
        if not det.per_second:  # CCDs keep the charge; IR ramp fitting removes it
            value += crs.charge
        if cr_flag:
            dq[crs.mask] |= cr_flag
    if saturated is not None:
        if det.per_second:
            dq[saturated] |= int(DQ.SATURATED)
        else:
            over = saturated | (value > full)
            np.minimum(value, full, out=value, where=over)
            if bleed is not None:
                value[bleed] = full
            dq[over] |= int(DQ.SATURATED)
    # ERR as the pipeline computes it: shot noise of everything collected (the dark
    # included, though it was subtracted) plus read noise.
    err = value + dark_e
    np.maximum(err, 1.0 if det.bunit == "COUNTS" else 0.0, out=err)
    err += det.read_noise**2
    np.sqrt(err, out=err)
    if det.per_second and t > 0:  # EXPTIME = 0 (an exclusion test case): no rate, left in e-
        value /= t
        err /= t
    return value.astype(np.float32), err.astype(np.float32), dq, n_cr


# ---------------------------------------------------------------------------------------


def _empty(dtype) -> np.ndarray:
    return np.zeros((1, 0), dtype)


def default_cr_flag(det: DetectorModel) -> int:
    """DQ bit given to CR pixels by default: 8192 on WFC3/IR, 4096 on CCDs, 0 on SBC."""
    if det.cr_rate <= 0:
        return 0
    return int(DQ.CR_CAL) if det.per_second else int(DQ.CR_DRIZ)


def sky_levels(spec: ExposureSpec, rng: np.random.Generator) -> list[float]:
    """Injected sky per chip in the file's units (see :class:`ExposureSpec`)."""
    det = spec.model
    nchip = len(det.chips)
    chip_factor = 1.0 + rng.uniform(-0.02, 0.02, nchip)
    if spec.sky_level is None:
        factor = rng.uniform(0.7, 1.6) if spec.sky_factor is None else spec.sky_factor
        rate = spec.filter_info.sky * factor * spec.downscale**2
        per = rate if det.per_second else rate * spec.exptime
        return [float(per * f) for f in chip_factor]
    if np.ndim(spec.sky_level) == 0:
        return [float(spec.sky_level)] * nchip
    levels = [float(v) for v in spec.sky_level]
    if len(levels) != nchip:
        raise ValueError(f"sky_level needs {nchip} values for {det.instrument}/{det.detector}")
    return levels


@dataclass
class _Prepared:
    """What every chip of an exposure shares: CR flag, sky per chip, PSF, chip geometries."""

    cr_flag: int
    skies: list[float]
    fwhm: float
    psf: render.PSF
    year: int
    geoms: list[ChipGeometry]


def _prepare(spec: ExposureSpec) -> _Prepared:
    det = spec.model
    if spec.downscale < 1 or int(spec.downscale) != spec.downscale:
        raise ValueError("downscale must be a positive integer")
    cr_flag = default_cr_flag(det) if spec.cr_flag is None else int(spec.cr_flag)
    skies = sky_levels(spec, np.random.default_rng(stable_seed(spec.seed, spec.rootname, "sky")))
    fwhm = spec.psf_fwhm or psf_fwhm_pixels(det, spec.filter_info, spec.downscale)
    geoms = [chip_geometry(det, c, spec.ra, spec.dec, spec.orientat, spec.downscale) for c in det.chips]
    return _Prepared(cr_flag, skies, fwhm, render.PSF(fwhm), mjd_to_datetime(spec.expstart).year, geoms)


def _render_pixels(spec: ExposureSpec, truth: Table | None, prep: _Prepared, geom: ChipGeometry, sky: float):
    """(sci, err, dq, n_cr) of one chip, from its own seeded random streams."""
    det = spec.model
    sky_e = sky * spec.exptime if det.per_second else sky
    rng = np.random.default_rng(stable_seed(spec.seed, spec.rootname, geom.chip.extver))
    drng = np.random.default_rng(stable_seed(spec.seed, det.instrument, det.detector, geom.chip.extver, prep.year))
    return render_chip(spec, geom, truth, sky_e, prep.psf, rng, drng, prep.cr_flag)


def header_crpix(spec: ExposureSpec, geom: ChipGeometry) -> tuple[float, float]:
    """CRPIX (1-based) written in the header: the true one plus ``spec.wcs_error``."""
    return (geom.crpix[0] + spec.wcs_error[0], geom.crpix[1] + spec.wcs_error[1])


def wcs_error_offset_mas(spec: ExposureSpec) -> tuple[float, float]:
    """Truth of the ``wcs_error`` defect on the sky: (east, north) milliarcseconds.

    The sky position that the *header* WCS gives a source minus its true position, at
    the centre of the first chip (tangent plane at the true position; the offset is
    the same over the chip to < 0.1% since the error is a CRPIX shift).  (0, 0) for a
    correct header.  Every exposure of a ``wcs_error`` visit has the same error in
    pixels, so this is the visit's offset from the rest of the layer.
    """
    det = spec.model
    geom = chip_geometry(det, det.chips[0], spec.ra, spec.dec, spec.orientat, spec.downscale)
    x, y = geom.nx / 2 - 0.5, geom.ny / 2 - 0.5
    ra_t, dec_t = pix2world(geom, x, y)
    ra_h, dec_h = pix2world(geom, x, y, header_crpix(spec, geom))
    east, north = tan_project(ra_h, dec_h, float(ra_t), float(dec_t))
    return float(east) * 1000.0, float(north) * 1000.0


@dataclass
class ChipPixels:
    """One rendered chip held in memory: what the file would hold, without writing it.

    ``sci``/``err`` in the file's units (BUNIT), ``dq`` HST bits; ``header_wcs``: the
    astropy WCS the SCI header would carry (``wcs_error`` included; 0-based pixel
    calls need ``origin=0``); ``pixel_scale``: arcsec per file pixel.
    """

    extver: int
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    header_wcs: WCS
    pixel_scale: float


def render_exposure(spec: ExposureSpec, truth: Table | None) -> list[ChipPixels]:
    """The pixels :func:`write_exposure` would write for ``spec`` (same seeds, same
    values), in EXTVER order, without any file: for evaluations that need many exposures."""
    prep = _prepare(spec)
    out = []
    for geom, sky in zip(prep.geoms, prep.skies):
        sci, err, dq, _ = _render_pixels(spec, truth, prep, geom, sky)
        w = WCS(sci_wcs_header(geom, header_crpix(spec, geom)))
        out.append(ChipPixels(geom.chip.extver, sci, err, dq, w, geom.pixel_scale))
    return sorted(out, key=lambda c: c.extver)


def _sci_cards(spec: ExposureSpec, geom: ChipGeometry, crpix: tuple[float, float], wcsname: str) -> tuple[list, np.ndarray]:
    """The SCI extension header of one chip (``crpix`` 1-based, with the spec's WCS error) and its S_REGION points."""
    det = spec.model
    filt = spec.filter_info
    chip = geom.chip
    sci_cards = _ext_header("SCI", chip.extver, spec, det.bunit)
    if chip.ccdchip is not None and det.ccd:
        sci_cards.append(("CCDCHIP", chip.ccdchip, "CCD chip (1 or 2)"))
    wcs_cards = _wcs_cards(geom, crpix, True, wcsname)
    s_region, pts = _s_region(geom, crpix)
    sci_cards += wcs_cards
    sci_cards += [
        ("LTV1", 0.0, "offset in X to subsection start"),
        ("LTV2", 0.0, "offset in Y to subsection start"),
        ("LTM1_1", 1.0, "reciprocal of sampling rate in X"),
        ("LTM2_2", 1.0, "reciprocal of sampling rate in Y"),
        ("ORIENTAT", float(round(geom.orientat, 6)), "position angle of image y axis (deg. e of n)"),
        ("RA_APER", float(spec.ra), "RA of aperture reference position"),
        ("DEC_APER", float(spec.dec), "Declination of aperture reference position"),
        ("PA_APER", float(round(spec.orientat, 6)), "Position Angle of reference aperture center (deg)"),
        ("VAFACTOR", 1.0, "velocity aberration plate scale factor"),
        ("CENTERA1", chip.centera[0], "subarray axis1 center pt in unbinned dect. pix"),
        ("CENTERA2", chip.centera[1], "subarray axis2 center pt in unbinned dect. pix"),
        ("SIZAXIS1", geom.nx, "subarray axis1 size in unbinned detector pixels"),
        ("SIZAXIS2", geom.ny, "subarray axis2 size in unbinned detector pixels"),
        ("BINAXIS1", 1, "axis1 data bin size in unbinned detector pixels"),
        ("BINAXIS2", 1, "axis2 data bin size in unbinned detector pixels"),
    ]
    if det.detector != "IR":
        sci_cards += _photometry_cards(det, filt, spec.expstart, _chip_name(det, geom))
    if det.detector == "IR":
        sci_cards += [
            ("SAMPTIME", float(spec.exptime), "total integration time (sec)"),
            ("DELTATIM", 100.0, "integration time of this sample (sec)"),
        ]
    sci_cards += [
        ("NCOMBINE", 1, "number of image sets combined during CR rejection"),
        ("SDQFLAGS", SDQFLAGS, "serious data quality flags"),
        ("S_REGION", s_region, ""),
        ("IDCSCALE", idcscale(det), "pixel scale from the IDCTAB reference file"),
        ("IDCXREF", float(chip.crpix[0]), "reference pixel location in X"),
        ("IDCYREF", float(chip.crpix[1]), "reference pixel location in Y"),
        ("IDCV2REF", float(chip.v2v3ref[0]), "reference pixel's V2 position"),
        ("IDCV3REF", float(chip.v2v3ref[1]), "reference pixel's V3 position"),
        *_sip_cards(geom, crpix),
    ]
    return sci_cards, pts


def write_exposure(spec: ExposureSpec, truth: Table | None, path: str | Path) -> ExposureResult:
    """Render ``spec`` from ``truth`` and write it to ``path`` (a directory or a file name).

    ``truth`` may be None for an empty sky.  Returns an :class:`ExposureResult`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / spec.filename
    det = spec.model
    prep = _prepare(spec)
    cr_flag, skies, fwhm, geoms = prep.cr_flag, prep.skies, prep.fwhm, prep.geoms
    wcsname = spec.wcsname or f"IDC_{det.idctab}-FIT_SVM_GAIAeDR3"
    extra = 2 if det.detector == "IR" else 0
    nextend = len(geoms) * (3 + extra)
    pcards = primary_cards(spec, nextend, cr_flag)
    hdus: list[tuple[list, np.ndarray | None]] = [(pcards, None)]
    n_cr_total = 0
    footprints = []
    for geom, sky in zip(geoms, skies):
        chip = geom.chip
        crpix = header_crpix(spec, geom)
        if spec.header_only:
            # Like the archive's header-only samples: NAXIS=2, NAXIS1=0, NAXIS2=1 (no
            # pixels, but a 2-axis image so the 2-axis WCS stays valid); the true chip
            # size is in SIZAXIS1/2.
            sci, err, dq = _empty(np.float32), _empty(np.float32), _empty(np.int16)
            n_cr = 0
        else:
            sci, err, dq, n_cr = _render_pixels(spec, truth, prep, geom, sky)
        n_cr_total += n_cr
        sci_cards, pts = _sci_cards(spec, geom, crpix, wcsname)
        footprints.append(pts)
        hdus.append((sci_cards, sci))
        lin_cards = _wcs_cards(geom, crpix, False, f"IDC_{det.idctab}")
        hdus.append((_ext_header("ERR", chip.extver, spec, det.bunit) + lin_cards, err))
        hdus.append((_ext_header("DQ", chip.extver, spec, "UNITLESS") + lin_cards, dq))
        if det.detector == "IR":
            nsamp = int(dict((c[0], c[1]) for c in pcards)["NSAMP"])
            samp = _empty(np.int16) if spec.header_only else np.full((geom.ny, geom.nx), nsamp, np.int16)
            time = _empty(np.float32) if spec.header_only else np.full((geom.ny, geom.nx), spec.exptime, np.float32)
            hdus.append((_ext_header("SAMP", chip.extver, spec, "SAMPLES") + lin_cards, samp))
            hdus.append((_ext_header("TIME", chip.extver, spec, "SECONDS") + lin_cards, time))
    write_fits(path, hdus)
    return ExposureResult(
        path=path, spec=spec, sky_level=skies, n_cr=n_cr_total, psf_fwhm=fwhm, geometries=geoms,
        bunit=det.bunit, footprint=footprints,
    )

"""Small exposure files for ingest tests: variants of the real HST files with edited headers.

``variant(src, dst, primary={...}, sci={...}, remove=[...])`` copies a real file (header
only; astropy) with primary and SCI keywords set or removed. The bases are small and
read through the fast TAN-SIP path unless noted:

* ``IR``   WFC3/IR F125W FLT ``ib3y01c6q`` (75 kB, 11x11 px cut-out, SIP),
* ``HRC``  ACS/HRC F606W FLT ``j8bt06nyq`` (43 kB, header-only, SIP),
* ``UVIS`` WFC3/UVIS F555W FLC ``ib4606c5q`` (1 MB, 10x10 px, SIP + lookup tables: astropy path),
* ``WFC``  ACS/WFC F814W FLC ``jbt122x8q`` (0.7 MB, header-only, SIP + lookup tables: astropy path).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import sqlalchemy as sa
from astropy.io import fits

from hst_files import hst_dir

HST = hst_dir()
IR = HST / "test_drizzlepac_flt.fits"
HRC = HST / "j8bt06nyq_sip_flt.fits"
UVIS = HST / "sample_ipppssoot_flc.fits"
WFC = HST / "sample_flc_header.fits"

TABLES = ("exposure", "chip", "chip_hpx", "exposure_sky_cell", "sky_cell", "layer", "layer_member", "ingest_error")


def variant(src: Path, dst: Path, *, primary: dict | None = None, sci: dict | None = None,
            remove: tuple[str, ...] = (), remove_sci: tuple[str, ...] = ()) -> Path:
    """Copy ``src`` to ``dst`` with primary keywords ``primary`` set (value ``None`` removes)
    and ``sci`` set in every SCI extension."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not (primary or sci or remove or remove_sci):
        shutil.copyfile(src, dst)
        return dst
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(src) as hdul:
            for key, value in (primary or {}).items():
                if value is None:
                    hdul[0].header.remove(key, ignore_missing=True)
                else:
                    hdul[0].header[key] = value
            for key in remove:
                hdul[0].header.remove(key, ignore_missing=True)
            for hdu in hdul[1:]:
                if hdu.name == "SCI":
                    for key, value in (sci or {}).items():
                        hdu.header[key] = value
                    for key in remove_sci:
                        hdu.header.remove(key, ignore_missing=True)
            hdul.writeto(dst, overwrite=True, output_verify="silentfix")
    return dst


def snapshot(engine: sa.Engine) -> dict[str, list]:
    """Every row of the ingest tables (sorted) and the member generation counter."""
    out: dict[str, list] = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            out[table] = sorted((tuple(map(repr, r)) for r in rows))
        out["seq"] = [conn.execute(sa.text("SELECT last_value FROM member_generation_seq")).scalar_one()]
    return out


def members(engine: sa.Engine) -> dict[tuple[str, str], tuple[str, int]]:
    """{(layer name, ipppssoot_filetype): (status, generation)}."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT l.name, e.ipppssoot || '_' || e.filetype, m.status, m.generation "
            "FROM layer_member m JOIN layer l ON l.id = m.layer_id JOIN exposure e ON e.id = m.exposure_id"
        )).all()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def exposure_rows(engine: sa.Engine) -> dict[str, sa.Row]:
    """{ipppssoot_filetype: exposure row}."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM exposure")).all()
    return {f"{r.ipppssoot}_{r.filetype}": r for r in rows}


def scalar(engine: sa.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def patch_cards(path: Path, key: str, value_text: str) -> Path:
    """Rewrite, in place, every ``key = ...`` card of the file's headers with a raw value text
    (e.g. ``'NAN'``, ``"'garbage'"``): values astropy refuses to write."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    head = f"{key:<8}= ".encode()
    card = (f"{key:<8}= " + f"{value_text:>20}").ljust(80)[:80].encode()
    pos = data.find(head)
    while pos != -1:
        if pos % 80 == 0:
            data[pos:pos + 80] = card
        pos = data.find(head, pos + 1)
    path.write_bytes(bytes(data))
    return path

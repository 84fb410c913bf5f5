"""A small builder of catalog rows for planner tests (no ingest, no FITS files).

Rows look like what ingest writes: exposures with ``ipppssoot``, ``filetype``, pipeline or
SVM-style file names, instrument/detector/filter, proposal, ``program_id``/``obset_id``
(``ppp``/``ss`` of the ``ipppssoot``), exposure time and an absolute path; sky cells with
their computed ids; layers named like the archive's products (fine ``all``, coarse
``coarse-all``; WFC3/IR and WFPC2 get both, spec §4.2); memberships NEW or OLD.

    cat = Catalog(engine)
    exp = cat.exposure("jbl70rtvq", "ACS", "WFC", "f775w", proposid=12286, exptime=486.0, svm=True)
    cat.member(exp, "skycell-p1889x07y19")          # NEW in every layer of that sky cell
    cat.mark_old()                                   # what processing does after drawing
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from mvmdb.db.models import Exposure, Job, Layer, LayerMember, SkyCellRow
from mvmdb.sky.grid import skycell_id

DATA_ROOT = "/data/hst"
COARSE_DETECTORS = ("IR", "PC")
"""Detectors whose layers are coarse (0.12"/px), each with a fine twin (spec §4.2)."""


@dataclass(frozen=True)
class Exp:
    """An exposure row as inserted: its id and the values a poller line shows."""

    id: int
    ipppssoot: str
    filename: str
    path: str
    instrument: str
    detector: str
    filter: str


def svm_filename(ipppssoot: str, filetype: str, proposid: int, instrument: str, detector: str, filt: str) -> str:
    """The SVM-style name, e.g. ``hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits``."""
    return f"hst_{proposid}_{ipppssoot[4:6]}_{instrument}_{detector}_{filt}_{ipppssoot[:8]}_{filetype}.fits".lower()


def layer_name(skycell: str, instrument: str, detector: str, filt: str, scale: str) -> str:
    """The archive's product basename, e.g. ``hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all``."""
    layerstr = "coarse-all" if scale == "coarse" else "all"
    return f"hst_{skycell}_{instrument}_{detector}_{filt}_{layerstr}".lower()


def parse_skycell(name: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"skycell-p(\d{4})x(\d{2})y(\d{2})", name)
    assert match, name
    pc, x, y = (int(g) for g in match.groups())
    return pc, x, y


class Catalog:
    """Inserts catalog rows through the models, one short transaction per call."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # -- rows ------------------------------------------------------------------------

    def sky_cell(self, name: str) -> int:
        """Create sky cell ``name`` if missing; return its id (``P*10000 + x*100 + y``)."""
        pc, x, y = parse_skycell(name)
        sid = skycell_id(pc, x, y)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(SkyCellRow.id).where(SkyCellRow.id == sid)).first() is None:
                conn.execute(sa.insert(SkyCellRow).values(id=sid, name=name, projection_cell_id=pc, x=x, y=y))
        return sid

    def exposure(
        self,
        ipppssoot: str,
        instrument: str,
        detector: str,
        filt: str,
        *,
        proposid: int,
        exptime: float,
        filetype: str = "flc",
        svm: bool = False,
        root: str = DATA_ROOT,
    ) -> Exp:
        """An exposure with a pipeline name (``jbl70rtvq_flc.fits``) or, with ``svm``, an SVM name."""
        if svm:
            filename = svm_filename(ipppssoot, filetype, proposid, instrument, detector, filt)
        else:
            filename = f"{ipppssoot}_{filetype}.fits"
        path = f"{root}/{proposid}/{ipppssoot}/{filename}"
        with self.engine.begin() as conn:
            eid = conn.execute(
                sa.insert(Exposure)
                .values(
                    ipppssoot=ipppssoot,
                    filetype=filetype,
                    filename=filename,
                    path=path,
                    instrument=instrument.upper(),
                    detector=detector.upper(),
                    filter=filt.lower(),
                    exptime=exptime,
                    proposid=proposid,
                    program_id=ipppssoot[1:4].upper(),
                    obset_id=ipppssoot[4:6].upper(),
                    header_hash=ipppssoot.ljust(64, "0"),
                    wcs_hash=ipppssoot.ljust(64, "1"),
                )
                .returning(Exposure.id)
            ).scalar_one()
        return Exp(eid, ipppssoot, filename, path, instrument.upper(), detector.upper(), filt.lower())

    def layer(self, skycell: str, instrument: str, detector: str, filt: str, scale: str) -> int:
        """Create the layer if missing; return its id."""
        sid = self.sky_cell(skycell)
        name = layer_name(skycell, instrument, detector, filt, scale)
        with self.engine.begin() as conn:
            lid = conn.execute(sa.select(Layer.id).where(Layer.name == name)).scalar()
            if lid is None:
                lid = conn.execute(
                    sa.insert(Layer)
                    .values(
                        sky_cell_id=sid,
                        instrument=instrument.upper(),
                        detector=detector.upper(),
                        filter=filt.lower(),
                        scale=scale,
                        name=name,
                    )
                    .returning(Layer.id)
                ).scalar_one()
        return lid

    def layers_of(self, exp: Exp, skycell: str) -> list[int]:
        """The layers ``exp`` belongs to in ``skycell``: fine, plus coarse for IR and PC."""
        scales = ["fine", "coarse"] if exp.detector in COARSE_DETECTORS else ["fine"]
        return [self.layer(skycell, exp.instrument, exp.detector, exp.filter, s) for s in scales]

    def member(self, exp: Exp, *skycells: str, status: str = "NEW") -> list[int]:
        """Make ``exp`` a member of all its layers in each sky cell; return the layer ids."""
        layer_ids = [lid for cell in skycells for lid in self.layers_of(exp, cell)]
        with self.engine.begin() as conn:
            for lid in layer_ids:
                conn.execute(sa.insert(LayerMember).values(layer_id=lid, exposure_id=exp.id, status=status))
        return layer_ids

    # -- state changes, as processing and ingest make them ------------------------------

    def mark_old(self, max_generation: int | None = None) -> int:
        """Flip NEW memberships to OLD (all, or those with ``generation <= max_generation``)."""
        stmt = sa.update(LayerMember).where(LayerMember.status == "NEW").values(status="OLD", changed_at=sa.func.now())
        if max_generation is not None:
            stmt = stmt.where(LayerMember.generation <= max_generation)
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def mark_new(self, layer_id: int) -> int:
        """Re-dirty a layer: all its members NEW again, with fresh generations."""
        stmt = (
            sa.update(LayerMember)
            .where(LayerMember.layer_id == layer_id)
            .values(status="NEW", generation=sa.func.nextval("member_generation_seq"), changed_at=sa.func.now())
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def layer_id(self, name: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(Layer.id).where(Layer.name == name)).scalar_one()

    def max_generation(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(LayerMember.generation))).scalar_one()

    def jobs(self) -> list[sa.Row]:
        """All jobs, oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(Job).order_by(Job.id)))

    def set_job_state(self, job_id: int, state: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(Job).where(Job.id == job_id).values(state=state))

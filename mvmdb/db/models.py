"""The catalog schema as SQLAlchemy 2.0 typed models.

Sized for the whole HST archive: ~1.5 M exposures, ~4 M chips, ~1.2 M sky cells,
~10 M layer memberships. Choices that follow from that:

* Surrogate keys are ``bigint`` identities where rows number in the millions
  (exposure, chip); ``sky_cell.id`` is a *computed* natural integer,
  ``projection_cell * 10000 + x * 100 + y`` (p1889x07y19 -> 18890719), so that
  ingest can write memberships without a round trip to look ids up.
* HEALPix coverage of each chip is a set of NESTED index ranges at order 29
  (``chip_hpx.hpx``, ``int8range``) under an SP-GiST index, the layout of
  healpix-alchemy: a point query is ``hpx @> pixel29``, an overlap ``hpx && range``.
* The planner's question ("which layers have NEW members?") is answered by a
  partial index on ``layer_member(layer_id) WHERE status = 'NEW'``: it holds only
  the NEW rows, a tiny fraction of the table in steady state.
* ``layer_member.generation`` is drawn from the sequence ``member_generation_seq``
  each time a membership becomes NEW. A job remembers the highest generation it
  saw when it was claimed; finishing flips to OLD only memberships with
  ``generation <= job.generation``, so members that became NEW while a layer was
  being drawn stay NEW for the next run.

Conventions: angles in degrees, times MJD (``expstart``/``expend``) or timestamptz;
pixel boxes are 0-based, inclusive, on the sky cell's fine (0.04"/px) grid.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, INT8RANGE, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MEMBER_STATUSES = ("NEW", "OLD")
JOB_STATES = ("queued", "running", "done", "failed")
SCALES = ("fine", "coarse")
LAYER_SET_NAMES = ("all", "year", "exptime", "epochs")
"""Layer sets (:mod:`mvmdb.layersets`); ``all`` is the archive's layers, always on."""
CATALOG_SCOPE = "catalog"
"""``layer_set.scope`` of a set enabled for the whole catalog (else a sky cell name)."""
FILETYPES = ("flt", "flc")

member_generation_seq = sa.Sequence("member_generation_seq", start=1)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: sa.DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


def _now() -> sa.ColumnElement:
    return sa.func.now()


class ProjectionCellRow(Base):
    """One of the 2644 PS1-style projection cells (seeded by the first migration)."""

    __tablename__ = "projection_cell"

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    ring: Mapped[int] = mapped_column(sa.SmallInteger)
    band: Mapped[int] = mapped_column(sa.SmallInteger, comment="index within the ring, 0-based")
    nband: Mapped[int] = mapped_column(sa.SmallInteger, comment="projection cells in the ring")
    ra_deg: Mapped[float] = mapped_column(sa.Float(53), comment="CRVAL1, degrees")
    dec_deg: Mapped[float] = mapped_column(sa.Float(53), comment="CRVAL2, degrees")
    dec_min_deg: Mapped[float] = mapped_column(sa.Float(53))
    dec_max_deg: Mapped[float] = mapped_column(sa.Float(53))

    __table_args__ = (sa.CheckConstraint("id BETWEEN 0 AND 2643", name="id_range"),)


class SkyCellRow(Base):
    """A sky cell, created when an exposure first touches it."""

    __tablename__ = "sky_cell"

    id: Mapped[int] = mapped_column(
        sa.Integer, primary_key=True, autoincrement=False, comment="projection_cell*10000 + x*100 + y"
    )
    name: Mapped[str] = mapped_column(sa.String(19), unique=True, comment="skycell-pPPPPxXXyYY")
    projection_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("projection_cell.id"), index=True)
    x: Mapped[int] = mapped_column(sa.SmallInteger, comment="1-based, westward")
    y: Mapped[int] = mapped_column(sa.SmallInteger, comment="1-based, northward")
    box_xmin: Mapped[int | None] = mapped_column(sa.Integer, comment="common trimmed box, fine px, 0-based inclusive")
    box_xmax: Mapped[int | None] = mapped_column(sa.Integer)
    box_ymin: Mapped[int | None] = mapped_column(sa.Integer)
    box_ymax: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (
        sa.CheckConstraint("x BETWEEN 1 AND 21 AND y BETWEEN 1 AND 21", name="xy_range"),
        sa.CheckConstraint("id = projection_cell_id * 10000 + x * 100 + y", name="id_encoding"),
    )


class Exposure(Base):
    """One calibrated exposure file (FLT or FLC)."""

    __tablename__ = "exposure"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    ipppssoot: Mapped[str] = mapped_column(sa.String(9), comment="lower case rootname")
    filetype: Mapped[str] = mapped_column(sa.String(3), comment="flt or flc")
    filename: Mapped[str] = mapped_column(sa.Text)
    path: Mapped[str] = mapped_column(sa.Text, comment="absolute path")
    file_size: Mapped[int | None] = mapped_column(
        sa.BigInteger, comment="bytes, when last read (re-ingest skips files whose path, size and mtime match)"
    )
    file_mtime_ns: Mapped[int | None] = mapped_column(sa.BigInteger, comment="file mtime when last read, ns since 1970")
    instrument: Mapped[str] = mapped_column(sa.String(8), comment="upper case: ACS, WFC3, WFPC2")
    detector: Mapped[str] = mapped_column(sa.String(8), comment="upper case: WFC, UVIS, IR, HRC, SBC, PC")
    filter: Mapped[str] = mapped_column(sa.String(40), comment="normalized, lower case (f814w, f606w-pol60v)")
    exptime: Mapped[float] = mapped_column(sa.Float(53), comment="seconds")
    expstart: Mapped[float | None] = mapped_column(sa.Float(53), comment="MJD")
    expend: Mapped[float | None] = mapped_column(sa.Float(53), comment="MJD")
    date_obs: Mapped[dt.date | None] = mapped_column(sa.Date)
    proposid: Mapped[int | None] = mapped_column(sa.Integer)
    program_id: Mapped[str] = mapped_column(sa.String(3), comment="ppp of ipppssoot, upper case")
    obset_id: Mapped[str] = mapped_column(sa.String(2), comment="ss of ipppssoot, upper case")
    wcsname: Mapped[str | None] = mapped_column(sa.Text)
    header_hash: Mapped[str] = mapped_column(sa.String(64), comment="sha256 of the keywords ingest reads")
    wcs_hash: Mapped[str] = mapped_column(sa.String(64), comment="sha256 of the chips' WCS keywords")
    excluded_reason: Mapped[str | None] = mapped_column(sa.Text, comment="null when usable for MVM")
    keywords: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    ingested_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (
        sa.UniqueConstraint("ipppssoot", "filetype"),
        sa.CheckConstraint(f"filetype IN {FILETYPES}", name="filetype"),
        sa.Index(None, "instrument", "detector", "filter"),
        sa.Index(None, "proposid"),
        sa.Index(None, "path", postgresql_using="hash"),  # a b-tree refuses paths over ~2.7 kB
    )


class Chip(Base):
    """One SCI extension of an exposure with its footprint on the sky."""

    __tablename__ = "chip"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    exposure_id: Mapped[int] = mapped_column(sa.ForeignKey("exposure.id", ondelete="CASCADE"))
    extver: Mapped[int] = mapped_column(sa.SmallInteger)
    naxis1: Mapped[int] = mapped_column(sa.Integer)
    naxis2: Mapped[int] = mapped_column(sa.Integer)
    ra_deg: Mapped[list[float]] = mapped_column(ARRAY(sa.Float(53)), comment="footprint vertices, degrees")
    dec_deg: Mapped[list[float]] = mapped_column(ARRAY(sa.Float(53)), comment="footprint vertices, degrees")
    center_ra_deg: Mapped[float] = mapped_column(sa.Float(53))
    center_dec_deg: Mapped[float] = mapped_column(sa.Float(53))

    __table_args__ = (sa.UniqueConstraint("exposure_id", "extver"),)


class ChipHpx(Base):
    """HEALPix NESTED ranges, at order 29, covering a chip (healpix-alchemy's layout)."""

    __tablename__ = "chip_hpx"

    chip_id: Mapped[int] = mapped_column(sa.ForeignKey("chip.id", ondelete="CASCADE"), primary_key=True)
    hpx: Mapped[Any] = mapped_column(INT8RANGE, primary_key=True)

    __table_args__ = (sa.Index("ix_chip_hpx_hpx", "hpx", postgresql_using="spgist"),)


class ExposureSkyCell(Base):
    """Sky cells an exposure's chips overlap (exact polygon overlap)."""

    __tablename__ = "exposure_sky_cell"

    exposure_id: Mapped[int] = mapped_column(sa.ForeignKey("exposure.id", ondelete="CASCADE"), primary_key=True)
    sky_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("sky_cell.id"), primary_key=True)

    __table_args__ = (sa.Index(None, "sky_cell_id"),)


class Layer(Base):
    """Sky cell + instrument + detector + filter at one plate scale: one product."""

    __tablename__ = "layer"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    sky_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("sky_cell.id"))
    instrument: Mapped[str] = mapped_column(sa.String(8))
    detector: Mapped[str] = mapped_column(sa.String(8))
    filter: Mapped[str] = mapped_column(sa.String(40))
    scale: Mapped[str] = mapped_column(sa.String(6), comment="fine (0.04\"/px) or coarse (0.12\"/px)")
    name: Mapped[str] = mapped_column(
        sa.Text, unique=True, comment="product basename, e.g. hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all"
    )
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    layer_set: Mapped[str] = mapped_column(sa.String(8), server_default="all",
                                           comment="all (the archive's layer), year, exptime or epochs")
    layer_key: Mapped[str] = mapped_column(
        sa.String(17), server_default="all",
        comment="the <layer> term without coarse-: all, 2011, short/med/long, YYYYMMDD-YYYYMMDD")

    __table_args__ = (
        sa.UniqueConstraint("sky_cell_id", "instrument", "detector", "filter", "scale", "layer_set", "layer_key",
                            name="uq_layer_identity"),
        sa.CheckConstraint(f"scale IN {SCALES}", name="scale"),
        sa.CheckConstraint(f"layer_set IN {LAYER_SET_NAMES}", name="layer_set"),
    )


class LayerSetRow(Base):
    """A time-domain layer set enabled (or disabled) for the catalog or one sky cell (migration 0006).

    ``all`` is implicit and always on. Each usable exposure gets, per enabled set that
    applies to its sky cell, the layer(s) of its key (:mod:`mvmdb.db.layersets`). A
    disabled set keeps its layers, memberships and products; they are no longer planned.
    """

    __tablename__ = "layer_set"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(8), comment="year, exptime or epochs")
    scope: Mapped[str] = mapped_column(sa.String(19), comment="catalog, or a sky cell name skycell-pPPPPxXXyYY")
    sky_cell_id: Mapped[int | None] = mapped_column(
        sa.Integer, comment="NULL for the catalog; else the sky cell's id (no FK: it may have no exposure yet)")
    gap_days: Mapped[float | None] = mapped_column(
        sa.Float(53), comment="epochs only, automatic: a new epoch after a gap > gap_days (days)")
    ranges: Mapped[list[str] | None] = mapped_column(
        ARRAY(sa.Text), comment="epochs only, user ranges: keys YYYYMMDD-YYYYMMDD, inclusive UTC dates")
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    changed_at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (
        sa.UniqueConstraint("name", "scope"),
        sa.CheckConstraint("name IN ('year', 'exptime', 'epochs')", name="name"),
        sa.CheckConstraint("(scope = 'catalog') = (sky_cell_id IS NULL)", name="scope"),
        sa.CheckConstraint("name = 'epochs' OR (gap_days IS NULL AND ranges IS NULL)", name="options"),
        sa.CheckConstraint("name <> 'epochs' OR ((gap_days IS NULL) <> (ranges IS NULL))", name="epochs"),
        sa.CheckConstraint("gap_days > 0", name="gap_days"),
    )


class LayerMember(Base):
    """An exposure's membership in a layer; NEW until a product containing it is on disk."""

    __tablename__ = "layer_member"

    layer_id: Mapped[int] = mapped_column(sa.ForeignKey("layer.id", ondelete="CASCADE"), primary_key=True)
    exposure_id: Mapped[int] = mapped_column(sa.ForeignKey("exposure.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(3), server_default="NEW")
    generation: Mapped[int] = mapped_column(
        sa.BigInteger, server_default=member_generation_seq.next_value(), comment="from member_generation_seq"
    )
    changed_at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (
        sa.CheckConstraint(f"status IN {MEMBER_STATUSES}", name="status"),
        sa.Index("ix_layer_member_new", "layer_id", postgresql_where=sa.text("status = 'NEW'")),
        sa.Index(None, "exposure_id"),
        # The plan query lists every member of an affected layer from this index alone
        # (index-only scan; migration 0007).
        sa.Index("ix_layer_member_plan", "layer_id", postgresql_include=["exposure_id", "status", "generation"]),
    )


class Product(Base):
    """The current product file of a layer."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    layer_id: Mapped[int] = mapped_column(sa.ForeignKey("layer.id", ondelete="CASCADE"), unique=True)
    path: Mapped[str] = mapped_column(sa.Text)
    checksum: Mapped[str] = mapped_column(sa.String(64), comment="sha256 of the file")
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    n_members: Mapped[int] = mapped_column(sa.Integer)
    keywords: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    box_xmin: Mapped[int] = mapped_column(sa.Integer, comment="product pixel box at the layer's scale, 0-based")
    box_xmax: Mapped[int] = mapped_column(sa.Integer)
    box_ymin: Mapped[int] = mapped_column(sa.Integer)
    box_ymax: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())


class Job(Base):
    """Processing queue: one job per sky cell with NEW members (see ``mvmdb.plan``)."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    sky_cell_id: Mapped[int] = mapped_column(sa.ForeignKey("sky_cell.id"))
    state: Mapped[str] = mapped_column(sa.String(8), server_default="queued")
    generation: Mapped[int] = mapped_column(sa.BigInteger, comment="highest member generation covered")
    poller_path: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    worker: Mapped[str | None] = mapped_column(sa.Text, comment="host:pid of the claiming worker")
    claimed_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (
        sa.CheckConstraint(f"state IN {JOB_STATES}", name="state"),
        sa.Index(
            "uq_job_sky_cell_queued", "sky_cell_id", unique=True, postgresql_where=sa.text("state = 'queued'")
        ),
        sa.Index("ix_job_open", "state", "id", postgresql_where=sa.text("state IN ('queued', 'running')")),
    )


class IngestError(Base):
    """A file that could not be ingested: one row per path while it keeps failing.

    A retry that fails again updates ``reason``, ``at`` and ``attempts``; a retry that
    succeeds deletes the row. So the table lists the files that need a look, not a log.
    """

    __tablename__ = "ingest_error"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    path: Mapped[str] = mapped_column(sa.Text)
    path_md5: Mapped[str] = mapped_column(
        sa.Text, sa.Computed("md5(path)", persisted=True), unique=True,
        comment="md5 of path: the unique key (paths of any length)",
    )
    reason: Mapped[str] = mapped_column(sa.Text, comment="why the last attempt failed")
    at: Mapped[dt.datetime] = mapped_column(server_default=_now(), comment="last failed attempt")
    first_at: Mapped[dt.datetime] = mapped_column(server_default=_now(), comment="first failed attempt")
    attempts: Mapped[int] = mapped_column(server_default="1", comment="failed attempts so far")


class IngestRun(Base):
    """One run of the nightly ingest over a root directory."""

    __tablename__ = "ingest_run"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    root: Mapped[str] = mapped_column(sa.Text)
    started_at: Mapped[dt.datetime] = mapped_column(server_default=_now())
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(sa.String(10), server_default="running")
    summary: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))

    __table_args__ = (sa.Index(None, "root", postgresql_using="hash"),)  # a b-tree refuses roots over ~2.7 kB


EXCLUSION_KINDS = ("operator", "trailed", "alignment")
QA_CHECKS = ("trail", "alignment")


class ExposureExclusion(Base):
    """An exposure excluded now by the operator or by ``mvm qa`` (migration 0004).

    Keyed by ipppssoot, not exposure id, so it survives re-ingest of the file; ingest
    writes no memberships for it (:func:`mvmdb.db.members.write_new`).
    """

    __tablename__ = "exposure_exclusion"

    ipppssoot: Mapped[str] = mapped_column(sa.String(9), primary_key=True,
                                           comment="lower case rootname (both FLT and FLC)")
    kind: Mapped[str] = mapped_column(sa.String(10), comment="operator, trailed or alignment")
    reason: Mapped[str] = mapped_column(sa.Text)
    excluded_by: Mapped[str] = mapped_column(sa.Text, comment="OS user or --by")
    excluded_at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (sa.CheckConstraint(f"kind IN {EXCLUSION_KINDS}", name="kind"),)


class ExclusionEvent(Base):
    """Every exclude and include, never updated: the audit trail of :class:`ExposureExclusion`."""

    __tablename__ = "exclusion_event"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    ipppssoot: Mapped[str] = mapped_column(sa.String(9), index=True)
    action: Mapped[str] = mapped_column(sa.String(7))
    kind: Mapped[str | None] = mapped_column(sa.String(10))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    by: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[dt.datetime] = mapped_column(server_default=_now())

    __table_args__ = (sa.CheckConstraint("action IN ('exclude', 'include')", name="action"),)


class QaCheck(Base):
    """One pixel quality check of an exposure (``mvm qa``); the latest result per check."""

    __tablename__ = "qa_check"

    ipppssoot: Mapped[str] = mapped_column(sa.String(9), primary_key=True)
    check: Mapped[str] = mapped_column(sa.String(9), primary_key=True)
    flagged: Mapped[bool] = mapped_column(sa.Boolean)
    value: Mapped[float | None] = mapped_column(
        sa.Float(53), comment="trail: score 0-1; alignment: offset in mas (NULL when unmeasured)")
    reason: Mapped[str] = mapped_column(sa.Text)
    wcs_family: Mapped[str | None] = mapped_column(sa.String(16), comment="rules.wcs_family of WCSNAME")
    file_size: Mapped[int | None] = mapped_column(sa.BigInteger, comment="bytes of the file checked")
    file_mtime_ns: Mapped[int | None] = mapped_column(sa.BigInteger,
                                                      comment="mtime of the file checked, ns since 1970")
    checked_at: Mapped[dt.datetime] = mapped_column(server_default=_now(), index=True)

    __table_args__ = (sa.CheckConstraint(f"\"check\" IN {QA_CHECKS}", name="check"),)


class QaSources(Base):
    """Alignment sources of a checked exposure: positions through its header WCS (``mvm qa``)."""

    __tablename__ = "qa_sources"

    ipppssoot: Mapped[str] = mapped_column(sa.String(9), primary_key=True)
    ra_deg: Mapped[list[float]] = mapped_column(ARRAY(sa.Float(53)),
                                                comment="source positions through the header WCS, degrees")
    dec_deg: Mapped[list[float]] = mapped_column(ARRAY(sa.Float(53)))


class QaSetting(Base):
    """Catalog-wide settings of ``mvm qa``: ``alignment_policy`` (report | exclude), ``alignment_threshold_mas``."""

    __tablename__ = "qa_setting"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


TABLES = [t.name for t in Base.metadata.sorted_tables]

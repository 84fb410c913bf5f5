"""initial schema: catalog tables, member generation sequence, projection cells seeded

The 2644 projection cells are seeded from the ring table shipped as package data
(``mvmdb/data/allsky_cells.csv``, HDU 1 of the archive's ``allsky_cells.fits``):
cell id = PROJCELL + band, CRVAL1 = band * 360 / NBAND, CRVAL2 = ring DEC.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import csv
import io
from importlib import resources

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def _projection_cells() -> list[dict]:
    text = resources.files("mvmdb").joinpath("data/allsky_cells.csv").read_text()
    rows = []
    for ring in csv.DictReader(io.StringIO(text)):
        nband = int(ring["NBAND"])
        for band in range(nband):
            rows.append(
                {
                    "id": int(ring["PROJCELL"]) + band,
                    "ring": int(ring["ZONE"]),
                    "band": band,
                    "nband": nband,
                    "ra_deg": band * 360.0 / nband,
                    "dec_deg": float(ring["DEC"]),
                    "dec_min_deg": float(ring["DEC_MIN"]),
                    "dec_max_deg": float(ring["DEC_MAX"]),
                }
            )
    return rows


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("member_generation_seq", start=1)))
    op.create_table('exposure',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('ipppssoot', sa.String(length=9), nullable=False, comment='lower case rootname'),
    sa.Column('filetype', sa.String(length=3), nullable=False, comment='flt or flc'),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False, comment='absolute path'),
    sa.Column('file_size', sa.BigInteger(), nullable=True, comment='bytes, when last read (re-ingest skips files whose path, size and mtime match)'),
    sa.Column('file_mtime_ns', sa.BigInteger(), nullable=True, comment='file mtime when last read, ns since 1970'),
    sa.Column('instrument', sa.String(length=8), nullable=False, comment='upper case: ACS, WFC3, WFPC2'),
    sa.Column('detector', sa.String(length=8), nullable=False, comment='upper case: WFC, UVIS, IR, HRC, SBC, PC'),
    sa.Column('filter', sa.String(length=40), nullable=False, comment='normalized, lower case (f814w, f606w-pol60v)'),
    sa.Column('exptime', sa.Float(precision=53), nullable=False, comment='seconds'),
    sa.Column('expstart', sa.Float(precision=53), nullable=True, comment='MJD'),
    sa.Column('expend', sa.Float(precision=53), nullable=True, comment='MJD'),
    sa.Column('date_obs', sa.Date(), nullable=True),
    sa.Column('proposid', sa.Integer(), nullable=True),
    sa.Column('program_id', sa.String(length=3), nullable=False, comment='ppp of ipppssoot, upper case'),
    sa.Column('obset_id', sa.String(length=2), nullable=False, comment='ss of ipppssoot, upper case'),
    sa.Column('wcsname', sa.Text(), nullable=True),
    sa.Column('header_hash', sa.String(length=64), nullable=False, comment='sha256 of the keywords ingest reads'),
    sa.Column('wcs_hash', sa.String(length=64), nullable=False, comment="sha256 of the chips' WCS keywords"),
    sa.Column('excluded_reason', sa.Text(), nullable=True, comment='null when usable for MVM'),
    sa.Column('keywords', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("filetype IN ('flt', 'flc')", name=op.f('ck_exposure_filetype')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exposure')),
    sa.UniqueConstraint('ipppssoot', 'filetype', name=op.f('uq_exposure_ipppssoot_filetype'))
    )
    op.create_index(op.f('ix_exposure_instrument_detector_filter'), 'exposure', ['instrument', 'detector', 'filter'], unique=False)
    op.create_index(op.f('ix_exposure_path'), 'exposure', ['path'], unique=False)
    op.create_index(op.f('ix_exposure_proposid'), 'exposure', ['proposid'], unique=False)
    op.create_table('ingest_error',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_error'))
    )
    op.create_index(op.f('ix_ingest_error_path'), 'ingest_error', ['path'], unique=False)
    op.create_table('ingest_run',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('root', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=10), server_default='running', nullable=False),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_run'))
    )
    op.create_index(op.f('ix_ingest_run_root_status_finished_at'), 'ingest_run', ['root', 'status', 'finished_at'], unique=False)
    op.create_table('projection_cell',
    sa.Column('id', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('ring', sa.SmallInteger(), nullable=False),
    sa.Column('band', sa.SmallInteger(), nullable=False, comment='index within the ring, 0-based'),
    sa.Column('nband', sa.SmallInteger(), nullable=False, comment='projection cells in the ring'),
    sa.Column('ra_deg', sa.Float(precision=53), nullable=False, comment='CRVAL1, degrees'),
    sa.Column('dec_deg', sa.Float(precision=53), nullable=False, comment='CRVAL2, degrees'),
    sa.Column('dec_min_deg', sa.Float(precision=53), nullable=False),
    sa.Column('dec_max_deg', sa.Float(precision=53), nullable=False),
    sa.CheckConstraint('id BETWEEN 0 AND 2643', name=op.f('ck_projection_cell_id_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projection_cell'))
    )
    op.create_table('chip',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('exposure_id', sa.BigInteger(), nullable=False),
    sa.Column('extver', sa.SmallInteger(), nullable=False),
    sa.Column('naxis1', sa.Integer(), nullable=False),
    sa.Column('naxis2', sa.Integer(), nullable=False),
    sa.Column('ra_deg', postgresql.ARRAY(sa.Float(precision=53)), nullable=False, comment='footprint vertices, degrees'),
    sa.Column('dec_deg', postgresql.ARRAY(sa.Float(precision=53)), nullable=False, comment='footprint vertices, degrees'),
    sa.Column('center_ra_deg', sa.Float(precision=53), nullable=False),
    sa.Column('center_dec_deg', sa.Float(precision=53), nullable=False),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_chip_exposure_id_exposure'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chip')),
    sa.UniqueConstraint('exposure_id', 'extver', name=op.f('uq_chip_exposure_id_extver'))
    )
    op.create_table('sky_cell',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False, comment='projection_cell*10000 + x*100 + y'),
    sa.Column('name', sa.String(length=19), nullable=False, comment='skycell-pPPPPxXXyYY'),
    sa.Column('projection_cell_id', sa.SmallInteger(), nullable=False),
    sa.Column('x', sa.SmallInteger(), nullable=False, comment='1-based, westward'),
    sa.Column('y', sa.SmallInteger(), nullable=False, comment='1-based, northward'),
    sa.Column('box_xmin', sa.Integer(), nullable=True, comment='common trimmed box, fine px, 0-based inclusive'),
    sa.Column('box_xmax', sa.Integer(), nullable=True),
    sa.Column('box_ymin', sa.Integer(), nullable=True),
    sa.Column('box_ymax', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('id = projection_cell_id * 10000 + x * 100 + y', name=op.f('ck_sky_cell_id_encoding')),
    sa.CheckConstraint('x BETWEEN 1 AND 21 AND y BETWEEN 1 AND 21', name=op.f('ck_sky_cell_xy_range')),
    sa.ForeignKeyConstraint(['projection_cell_id'], ['projection_cell.id'], name=op.f('fk_sky_cell_projection_cell_id_projection_cell')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sky_cell')),
    sa.UniqueConstraint('name', name=op.f('uq_sky_cell_name'))
    )
    op.create_index(op.f('ix_sky_cell_projection_cell_id'), 'sky_cell', ['projection_cell_id'], unique=False)
    op.create_table('chip_hpx',
    sa.Column('chip_id', sa.BigInteger(), nullable=False),
    sa.Column('hpx', postgresql.INT8RANGE(), nullable=False),
    sa.ForeignKeyConstraint(['chip_id'], ['chip.id'], name=op.f('fk_chip_hpx_chip_id_chip'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chip_id', 'hpx', name=op.f('pk_chip_hpx'))
    )
    op.create_index('ix_chip_hpx_hpx', 'chip_hpx', ['hpx'], unique=False, postgresql_using='spgist')
    op.create_table('exposure_sky_cell',
    sa.Column('exposure_id', sa.BigInteger(), nullable=False),
    sa.Column('sky_cell_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_exposure_sky_cell_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sky_cell_id'], ['sky_cell.id'], name=op.f('fk_exposure_sky_cell_sky_cell_id_sky_cell')),
    sa.PrimaryKeyConstraint('exposure_id', 'sky_cell_id', name=op.f('pk_exposure_sky_cell'))
    )
    op.create_index(op.f('ix_exposure_sky_cell_sky_cell_id'), 'exposure_sky_cell', ['sky_cell_id'], unique=False)
    op.create_table('job',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('sky_cell_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=8), server_default='queued', nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False, comment='highest member generation covered'),
    sa.Column('poller_path', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('worker', sa.Text(), nullable=True, comment='host:pid of the claiming worker'),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_job_state')),
    sa.ForeignKeyConstraint(['sky_cell_id'], ['sky_cell.id'], name=op.f('fk_job_sky_cell_id_sky_cell')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job'))
    )
    op.create_index('ix_job_open', 'job', ['state', 'id'], unique=False, postgresql_where=sa.text("state IN ('queued', 'running')"))
    op.create_index('uq_job_sky_cell_queued', 'job', ['sky_cell_id'], unique=True, postgresql_where=sa.text("state = 'queued'"))
    op.create_table('layer',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('sky_cell_id', sa.Integer(), nullable=False),
    sa.Column('instrument', sa.String(length=8), nullable=False),
    sa.Column('detector', sa.String(length=8), nullable=False),
    sa.Column('filter', sa.String(length=40), nullable=False),
    sa.Column('scale', sa.String(length=6), nullable=False, comment='fine (0.04"/px) or coarse (0.12"/px)'),
    sa.Column('name', sa.Text(), nullable=False, comment='product basename, e.g. hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all'),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("scale IN ('fine', 'coarse')", name=op.f('ck_layer_scale')),
    sa.ForeignKeyConstraint(['sky_cell_id'], ['sky_cell.id'], name=op.f('fk_layer_sky_cell_id_sky_cell')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_layer')),
    sa.UniqueConstraint('name', name=op.f('uq_layer_name')),
    sa.UniqueConstraint('sky_cell_id', 'instrument', 'detector', 'filter', 'scale', name=op.f('uq_layer_sky_cell_id_instrument_detector_filter_scale'))
    )
    op.create_table('layer_member',
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('exposure_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=3), server_default='NEW', nullable=False),
    sa.Column('generation', sa.BigInteger(), server_default=sa.text("nextval('member_generation_seq')"), nullable=False, comment='from member_generation_seq'),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('NEW', 'OLD')", name=op.f('ck_layer_member_status')),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_layer_member_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['layer_id'], ['layer.id'], name=op.f('fk_layer_member_layer_id_layer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('layer_id', 'exposure_id', name=op.f('pk_layer_member'))
    )
    op.create_index(op.f('ix_layer_member_exposure_id'), 'layer_member', ['exposure_id'], unique=False)
    op.create_index('ix_layer_member_new', 'layer_member', ['layer_id'], unique=False, postgresql_where=sa.text("status = 'NEW'"))
    op.create_table('product',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False, comment='sha256 of the file'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('n_members', sa.Integer(), nullable=False),
    sa.Column('keywords', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('box_xmin', sa.Integer(), nullable=False, comment="product pixel box at the layer's scale, 0-based"),
    sa.Column('box_xmax', sa.Integer(), nullable=False),
    sa.Column('box_ymin', sa.Integer(), nullable=False),
    sa.Column('box_ymax', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['layer.id'], name=op.f('fk_product_layer_id_layer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product')),
    sa.UniqueConstraint('layer_id', name=op.f('uq_product_layer_id'))
    )
    projection_cell = sa.table(
        "projection_cell",
        *(sa.column(c) for c in ("id", "ring", "band", "nband", "ra_deg", "dec_deg", "dec_min_deg", "dec_max_deg")),
    )
    op.bulk_insert(projection_cell, _projection_cells())


def downgrade() -> None:
    op.drop_table('product')
    op.drop_index('ix_layer_member_new', table_name='layer_member', postgresql_where=sa.text("status = 'NEW'"))
    op.drop_index(op.f('ix_layer_member_exposure_id'), table_name='layer_member')
    op.drop_table('layer_member')
    op.drop_table('layer')
    op.drop_index('uq_job_sky_cell_queued', table_name='job', postgresql_where=sa.text("state = 'queued'"))
    op.drop_index('ix_job_open', table_name='job', postgresql_where=sa.text("state IN ('queued', 'running')"))
    op.drop_table('job')
    op.drop_index(op.f('ix_exposure_sky_cell_sky_cell_id'), table_name='exposure_sky_cell')
    op.drop_table('exposure_sky_cell')
    op.drop_index('ix_chip_hpx_hpx', table_name='chip_hpx', postgresql_using='spgist')
    op.drop_table('chip_hpx')
    op.drop_index(op.f('ix_sky_cell_projection_cell_id'), table_name='sky_cell')
    op.drop_table('sky_cell')
    op.drop_table('chip')
    op.drop_table('projection_cell')
    op.drop_index(op.f('ix_ingest_run_root_status_finished_at'), table_name='ingest_run')
    op.drop_table('ingest_run')
    op.drop_index(op.f('ix_ingest_error_path'), table_name='ingest_error')
    op.drop_table('ingest_error')
    op.drop_index(op.f('ix_exposure_proposid'), table_name='exposure')
    op.drop_index(op.f('ix_exposure_path'), table_name='exposure')
    op.drop_index(op.f('ix_exposure_instrument_detector_filter'), table_name='exposure')
    op.drop_table('exposure')
    op.execute(sa.schema.DropSequence(sa.Sequence("member_generation_seq")))

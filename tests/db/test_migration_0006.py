"""Migration 0006 (layer sets): existing layers become the 'all' set; downgrade drops the time-domain layers."""

from __future__ import annotations

import sqlalchemy as sa

from mvmdb.db import migrate
from mvmdb.db.engine import make_engine

_LAYER = ("INSERT INTO layer (sky_cell_id, instrument, detector, filter, scale, name) VALUES "
          "(13590212, 'WFC3', 'IR', 'f160w', :scale, :name)")


def test_migration_0006_keeps_layers_as_all_and_round_trips(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO sky_cell (id, name, projection_cell_id, x, y) "
                             "VALUES (13590212, 'skycell-p1359x02y12', 1359, 2, 12)"))
        conn.execute(sa.text(_LAYER), {"scale": "fine", "name": "hst_skycell-p1359x02y12_wfc3_ir_f160w_all"})
    migrate.upgrade(engine, "0006")
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT layer_set, layer_key FROM layer")).all()
        assert [tuple(r) for r in rows] == [("all", "all")]
        conn.execute(sa.text(
            "INSERT INTO layer (sky_cell_id, instrument, detector, filter, scale, name, layer_set, layer_key) "
            "VALUES (13590212, 'WFC3', 'IR', 'f160w', 'fine', 'hst_skycell-p1359x02y12_wfc3_ir_f160w_2011', "
            "'year', '2011')"))
        conn.execute(sa.text("INSERT INTO layer_set (name, scope) VALUES ('year', 'catalog')"))
        assert conn.execute(sa.text("SELECT count(*) FROM v_layer_coverage")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM v_layer_set_coverage")).scalar_one() == 2
    migrate.downgrade(engine, "0005")
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM layer")).scalars().all()
        assert names == ["hst_skycell-p1359x02y12_wfc3_ir_f160w_all"]
        assert conn.execute(sa.text("SELECT count(*) FROM v_layer_coverage")).scalar_one() == 1
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()

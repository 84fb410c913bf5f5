"""The plan query (``schema/plan.sql`` ``plan_rows``) against a plain reference query.

``plan_rows`` aggregates the memberships per (sky cell, exposure) before it joins the
exposures (for speed, issue 17); the reference below joins everything first, as the
statement did before, and must give the same lines: same sky cells, exposures, columns,
order, NEW/OLD, generations and, as sets, the same layers. Checked on the ``years`` scene
(header-only) with the year and exptime sets on, NEW rows scattered over every layer set,
a disabled set and a sky cell filter.
"""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from mvmdb import rules
from mvmdb.db.members import plan_rows
from mvmdb.ingest import ingest
from mvmdb.layers import disable, enable
from mvmdb.simulate import simulate_scene

REFERENCE = """
SELECT s.id, s.name, e.id, e.filename, e.proposid, e.program_id, e.obset_id, e.exptime, e.filter, e.detector,
       CASE WHEN bool_or(m.status = 'NEW') THEN 'NEW' ELSE 'OLD' END,
       max(m.generation) FILTER (WHERE m.status = 'NEW'),
       string_agg(l.name, ' '),
       e.path
FROM layer AS l
JOIN sky_cell AS s ON s.id = l.sky_cell_id
JOIN layer_member AS m ON m.layer_id = l.id
JOIN exposure AS e ON e.id = m.exposure_id
WHERE EXISTS (SELECT 1 FROM layer_member AS n WHERE n.layer_id = l.id AND n.status = 'NEW')
  AND (CAST(:skycells AS text[]) IS NULL OR s.name = ANY (CAST(:skycells AS text[])))
  AND (l.layer_set = 'all' OR EXISTS (
          SELECT 1 FROM layer_set AS c
          WHERE c.enabled AND c.name = l.layer_set AND (c.sky_cell_id IS NULL OR c.sky_cell_id = l.sky_cell_id)))
GROUP BY s.id, e.filename COLLATE "C", e.id
ORDER BY s.id, e.filename COLLATE "C"
"""


def normalised(rows) -> list[tuple]:
    """Rows as tuples, the layers column (blank-separated, in no particular order) as a sorted tuple."""
    return [(*r[:12], tuple(sorted(r[12].split(" "))), r[13]) for r in rows]


def compare(engine, skycells=None) -> int:
    with engine.connect() as conn:
        want = conn.execute(sa.text(REFERENCE), {"skycells": skycells}).all()
        got = plan_rows(conn, skycells)
    assert normalised(got) == normalised(want)
    return len(got)


@pytest.fixture(scope="module")
def years_files(tmp_path_factory):
    return simulate_scene("years", tmp_path_factory.mktemp("years_plan"), seed=0, downscale=8, header_only=True)


@pytest.fixture
def catalog(engine, years_files):
    ingest(engine, [years_files.out_dir])
    enable(engine, "year")
    enable(engine, "exptime")
    return engine


def scatter_new(engine, fraction: float, seed: int) -> int:
    """Make a random ``fraction`` of all memberships NEW (each with a fresh generation), the rest OLD."""
    with engine.begin() as conn:
        keys = conn.execute(sa.text("SELECT layer_id, exposure_id FROM layer_member ORDER BY 1, 2")).all()
        pick = [tuple(k) for k in random.Random(seed).sample(keys, max(1, int(fraction * len(keys))))]
        conn.execute(sa.text("UPDATE layer_member SET status = 'OLD'"))
        conn.execute(
            sa.text("UPDATE layer_member SET status = 'NEW', generation = nextval('member_generation_seq') "
                    "WHERE (layer_id, exposure_id) IN (SELECT * FROM unnest(CAST(:l AS int[]), CAST(:e AS bigint[])))"),
            {"l": [k[0] for k in pick], "e": [k[1] for k in pick]},
        )
    return len(pick)


@pytest.mark.parametrize("fraction, seed", [(0.05, 1), (0.2, 2), (1.0, 3)])
def test_plan_rows_match_the_reference_with_scattered_new_rows(catalog, fraction, seed):
    scatter_new(catalog, fraction, seed)
    assert compare(catalog) > 0
    with catalog.connect() as conn:
        names = sorted(conn.execute(sa.text("SELECT name FROM sky_cell")).scalars())
    assert compare(catalog, names[:1]) > 0
    assert compare(catalog, ["skycell-p0001x01y01"]) == 0


def test_plan_rows_match_the_reference_with_a_set_disabled(catalog):
    scatter_new(catalog, 0.3, 4)
    disable(catalog, "exptime")
    assert compare(catalog) > 0
    with catalog.connect() as conn:  # every listed layer is 'all' or year
        layers = {n for r in plan_rows(conn) for n in r[12].split(" ")}
    assert {rules.parse_layer_name(n).key for n in layers} - {"all"} <= {str(y) for y in range(2000, 2030)}

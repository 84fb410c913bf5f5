"""Time-domain layer sets in the catalog (issue 17): memberships, planning, exclusions, scope.

On the ``years`` scene as header-only files (fast: nothing is drawn here; the drawn
products are checked in tests/process/test_layer_sets.py).
"""

from __future__ import annotations

import shutil
from collections import defaultdict

import pytest
import sqlalchemy as sa

from mvmdb import layersets, rules
from mvmdb.exclusion import exclude, include
from mvmdb.ingest import ingest
from mvmdb.layers import LayerSetError, disable, enable, list_sets
from mvmdb.plan import plan
from mvmdb.simulate import add_visit, simulate_scene

_MEMBERS = """
SELECT l.name, l.layer_set, l.layer_key, l.scale, l.sky_cell_id, l.instrument, l.detector, l.filter,
       e.ipppssoot, e.date_obs, e.expstart, e.exptime, m.status
FROM layer_member m JOIN layer l ON l.id = m.layer_id JOIN exposure e ON e.id = m.exposure_id
ORDER BY l.name, e.ipppssoot
"""


def members(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(_MEMBERS)).all()


def by_set(rows, name) -> list[sa.Row]:
    return [r for r in rows if r.layer_set == name]


@pytest.fixture(scope="module")
def years_files(tmp_path_factory):
    return simulate_scene("years", tmp_path_factory.mktemp("years_h"), seed=0, downscale=8, header_only=True)


@pytest.fixture
def catalog(engine, years_files, tmp_path):
    """The years scene ingested, planned and its jobs dropped (every membership OLD, as after processing)."""
    ingest(engine, [years_files.out_dir])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE layer_member SET status = 'OLD'"))
    return years_files


def _pairs(rows):
    """(sky cell, instrument, detector, filter, scale, ipppssoot) of each membership."""
    return sorted((r.sky_cell_id, r.instrument, r.detector, r.filter, r.scale, r.ipppssoot) for r in rows)


def test_enable_year_gives_each_all_membership_one_year_layer(engine, catalog):
    res = enable(engine, "year")
    rows = members(engine)
    year, all_ = by_set(rows, "year"), by_set(rows, "all")
    assert _pairs(year) == _pairs(all_)  # one year membership per 'all' membership, fine and coarse
    assert res.sync.added == len(year) and res.sync.removed == 0
    for r in year:
        assert r.layer_key == str(r.date_obs.year) == str(layersets.years(mjd=[r.expstart])[0])
        skycell = rules.parse_layer_name(r.name).skycell
        assert r.name == rules.layer_name(skycell, r.instrument, r.detector, r.filter, r.scale, r.layer_key)
        assert r.status == "NEW"
    assert all(r.status == "OLD" for r in all_)
    assert {r.scale for r in year if r.detector == "IR"} == {"fine", "coarse"}
    assert {r.layer_key for r in year} == {"2011", "2013", "2016"}


def test_enable_plans_only_the_new_layers_and_is_idempotent(engine, catalog, tmp_path):
    enable(engine, "year")
    planned = {lay for p in plan(engine, tmp_path / "p", dry_run=True) for lay in p.layers}
    assert planned and all(rules.parse_layer_name(n).layer_set == "year" for n in planned)
    again = enable(engine, "year")
    assert (again.sync.added, again.sync.removed, again.sync.layers_created) == (0, 0, 0)


def test_ingest_adds_memberships_of_enabled_sets_and_a_new_visit_dirties_only_its_year(engine, catalog, tmp_path):
    enable(engine, "year")
    enable(engine, "exptime")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE layer_member SET status = 'OLD'"))
    scene = tmp_path / "scene"  # the module's files stay as they are
    shutil.copytree(catalog.out_dir, scene)
    visit = add_visit(scene, instrument="WFC3", detector="IR", filter="F160W")
    ingest(engine, visit.paths)
    rows = members(engine)
    new = [r for r in rows if r.status == "NEW"]
    new_ipps = {p.name[:9] for p in visit.paths}
    assert {r.ipppssoot for r in new} == new_ipps
    years = {r.layer_key for r in by_set(new, "year")}
    assert years == {str(r.date_obs.year) for r in new}  # its own year only
    planned = {lay for p in plan(engine, tmp_path / "p", dry_run=True) for lay in p.layers}
    new_layers = {r.name for r in new}
    assert planned == new_layers  # all, its year and its class layers: never another year
    assert {rules.parse_layer_name(n).layer_set for n in planned} == {"all", "year", "exptime"}
    other_years = {r.name for r in by_set(rows, "year")} - new_layers
    assert other_years and not other_years & planned
    for r in by_set(new, "exptime"):
        assert r.layer_key == layersets.exptime_classes([r.exptime])[0]


def test_epoch_ranges_overlap_and_leave_exposures_out(engine, catalog):
    res = enable(engine, "epochs", ranges=["2011-01-01..2011-12-31", "20110301-20130630"])
    rows = by_set(members(engine), "epochs")
    keys = defaultdict(set)
    for r in rows:
        keys[r.ipppssoot].add(r.layer_key)
        rng = layersets.parse_epoch_key(r.layer_key)
        assert rng.first <= r.date_obs <= rng.last
    all_rows = by_set(members(engine), "all")
    in_none = {r.ipppssoot for r in all_rows if r.date_obs.year == 2016}
    assert in_none and not in_none & set(keys)
    assert any(len(k) == 2 for k in keys.values())  # overlap: 2011 after March is in both
    assert res.sync.layers_created == len({r.name for r in rows})
    # changing the ranges removes the memberships of a range no longer asked for
    res = enable(engine, "epochs", ranges=["2011-01-01..2011-12-31"])
    assert res.sync.removed > 0
    assert {r.layer_key for r in by_set(members(engine), "epochs")} == {"20110101-20111231"}


def test_exclusion_applies_to_every_set_and_include_restores(engine, catalog):
    enable(engine, "year")
    enable(engine, "exptime")
    ipp = by_set(members(engine), "year")[0].ipppssoot
    before = {r.name for r in members(engine) if r.ipppssoot == ipp}
    assert {rules.parse_layer_name(n).layer_set for n in before} == {"all", "year", "exptime"}
    res = exclude(engine, [ipp], "test")
    assert set(res.layers) == before
    assert not [r for r in members(engine) if r.ipppssoot == ipp]
    include(engine, [ipp])
    after = [r for r in members(engine) if r.ipppssoot == ipp]
    assert {r.name for r in after} == before and all(r.status == "NEW" for r in after)


def test_disable_stops_planning_and_keeps_layers(engine, catalog, tmp_path):
    enable(engine, "year")
    n_layers = len({r.name for r in by_set(members(engine), "year")})
    disable(engine, "year")
    assert plan(engine, tmp_path / "p", dry_run=True) == []
    assert len({r.name for r in by_set(members(engine), "year")}) == n_layers
    summary = {s.name: s for s in list_sets(engine)}
    assert not summary["year"].enabled and summary["year"].n_layers == n_layers
    assert summary["year"].n_new == summary["year"].n_members > 0
    enable(engine, "year")
    assert plan(engine, tmp_path / "p", dry_run=True) != []


def test_sky_cell_scope(engine, catalog, tmp_path):
    res = enable(engine, "year", skycell="p1359x02y12")
    assert res.config.scope == "skycell-p1359x02y12"
    cells = {r.sky_cell_id for r in by_set(members(engine), "year")}
    assert cells == {13590212}
    planned = plan(engine, tmp_path / "p", dry_run=True)
    assert [p.skycell for p in planned] == ["skycell-p1359x02y12"]


@pytest.mark.parametrize("args, message", [
    (("month",), "unknown layer set"),
    (("year",), None),
    (("epochs",), "needs either --range"),
    (("epochs", {"ranges": ["2011-13-01..2011-12-31"]}), "not a date range"),
    (("epochs", {"gap_days": -1.0}), "> 0"),
    (("year", {"ranges": ["2011-01-01"]}), "epochs set only"),
    (("year", {"skycell": "p9999x01y01"}), "sky cell"),
])
def test_bad_requests(engine, args, message):
    name, kw = args[0], (args[1] if len(args) > 1 else {})
    if message is None:
        assert enable(engine, name, **kw).config.enabled
        return
    with pytest.raises(LayerSetError, match=message):
        enable(engine, name, **kw)


def test_disable_never_enabled_is_an_error(engine):
    with pytest.raises(LayerSetError, match="never enabled"):
        disable(engine, "exptime")


def _auto_epoch_keys(engine, gap_days: float) -> tuple[dict, dict]:
    """Per (all layer name, ipppssoot): the catalog's epochs keys, and mvmdb.layersets.auto_epochs' key."""
    rows = members(engine)
    got = defaultdict(set)
    for r in by_set(rows, "epochs"):
        got[(r.name[: -len(r.layer_key)] + "all", r.ipppssoot)].add(r.layer_key)
    want = {}
    groups = defaultdict(list)
    for r in by_set(rows, "all"):
        groups[r.name].append(r)
    for name, rs in groups.items():
        e = layersets.auto_epochs([r.expstart for r in rs], gap_days)
        for r, k in zip(rs, e.keys[e.index]):
            want[(name, r.ipppssoot)] = {str(k)}
    return dict(got), want


@pytest.mark.parametrize("gap_days", [10.0, 30.0, 1000.0])
def test_automatic_epochs_match_auto_epochs(engine, catalog, gap_days):
    res = enable(engine, "epochs", gap_days=gap_days)
    got, want = _auto_epoch_keys(engine, gap_days)
    assert got == want and res.sync.added == len(want)
    keys_2011 = {k for (name, _), ks in got.items() for k in ks if k.startswith("2011") and "_wfc3_ir_" in name}
    # the 2011 WFC3/IR visits are 23 days apart: two epochs with a 10-day gap, one with 30
    assert len(keys_2011) == (2 if gap_days == 10.0 else 1)


def test_automatic_epochs_follow_a_new_visit(engine, catalog, tmp_path):
    enable(engine, "epochs", gap_days=200.0)
    before = {(r.name, r.ipppssoot) for r in by_set(members(engine), "epochs")}
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE layer_member SET status = 'OLD'"))
    scene = tmp_path / "scene"
    shutil.copytree(catalog.out_dir, scene)
    visit = add_visit(scene, instrument="WFC3", detector="IR", filter="F160W")  # 30-120 days after the last
    ingest(engine, visit.paths)
    got, want = _auto_epoch_keys(engine, 200.0)
    assert got == want
    rows = by_set(members(engine), "epochs")
    after = {(r.name, r.ipppssoot) for r in rows}
    renamed = before - after  # the last WFC3/IR epoch (2016) took the visit in and was renamed
    assert renamed and all("_wfc3_ir_" in n and "-2016" in n for n, _ in renamed)
    assert all(r.status == "OLD" for r in rows if "2011" in r.layer_key or "2013" in r.layer_key)
    planned = {lay for p in plan(engine, tmp_path / "p", dry_run=True) for lay in p.layers}
    assert {rules.parse_layer_name(n).key for n in planned} - {"all"} == {
        k for r in rows if r.status == "NEW" for k in [r.layer_key]}
    assert not any(rules.parse_layer_name(n).key.startswith(("2011", "2013")) for n in planned)


def test_excluded_counts_per_time_domain_layer(engine, catalog):
    """NEXCLUDE of a year layer counts only the excluded exposures of that year."""
    from mvmdb.db.snapshot import excluded_counts

    enable(engine, "year")
    enable(engine, "epochs", ranges=["2011-01-01..2011-12-31"])
    row = next(r for r in by_set(members(engine), "year") if r.layer_key == "2013")
    exclude(engine, [row.ipppssoot], "test")
    with engine.connect() as conn:
        layers = {r.name: r.id for r in conn.execute(sa.text(
            "SELECT name, id FROM layer WHERE sky_cell_id = :c AND instrument = :i AND detector = :d AND filter = :f"),
            {"c": row.sky_cell_id, "i": row.instrument, "d": row.detector, "f": row.filter})}
        counts = excluded_counts(conn, row.sky_cell_id)
    by_key = {rules.parse_layer_name(n).key + "/" + rules.parse_layer_name(n).scale: counts.get(i, 0)
              for n, i in layers.items()}
    assert by_key["2013/fine"] == by_key["all/fine"] == 1
    assert by_key["2011/fine"] == by_key["2016/fine"] == by_key["20110101-20111231/fine"] == 0

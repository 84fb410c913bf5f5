"""A renamed automatic epoch leaves no orphan (issue 17, ``mvm layers enable epochs --gap-days``).

The ``years`` scene (downscale 8) is ingested with automatic epochs on, planned and
processed; a new WFC3/IR visit then extends the last WFC3/IR epoch, whose key (first and
last start dates) changes. After ingest + plan + process: the old key's product row and
file are gone (retired by the processor, as ``mvm exclude`` retires a layer left without
members), the new key's product exists, and the other epochs' products are untouched.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from mvmdb.db.engine import make_engine
from mvmdb.db.products import current_products
from mvmdb.ingest import ingest
from mvmdb.layers import enable
from mvmdb.plan import plan
from mvmdb.process.run import run_queue
from mvmdb.simulate import add_visit, simulate_scene

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("full_size_products")]  # see tests/conftest.py

_EPOCH_LAYERS = """
SELECT l.name, count(m.exposure_id) AS n
FROM layer l LEFT JOIN layer_member m ON m.layer_id = l.id
WHERE l.layer_set = 'epochs' GROUP BY l.name
"""


def epoch_layers(engine) -> dict[str, int]:
    """Epoch layer name -> number of members (0: a layer whose key was renamed away)."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(_EPOCH_LAYERS)).all())


def products(engine) -> dict[str, Path]:
    return {p.layer: p.path for p in current_products(engine)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def processed(db_factory, tmp_path):
    """The years scene with automatic epochs (gap 200 d), ingested, planned and processed."""
    scene = simulate_scene("years", tmp_path / "scene", seed=0, downscale=8)
    url = db_factory.create()
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    ingest(engine, [scene.out_dir])
    enable(engine, "epochs", gap_days=200.0)
    plan(engine, tmp_path / "pollers")
    run_queue(engine, tmp_path / "products", executor="inline")
    yield engine, scene, tmp_path
    engine.dispose()
    db_factory.drop(url)
    shutil.rmtree(tmp_path / "products", ignore_errors=True)  # ~7 GB of full-size products: not kept for 3 runs


def test_renamed_epoch_is_retired_and_the_new_key_drawn(processed):
    engine, scene, root = processed
    before_layers = epoch_layers(engine)
    before = products(engine)
    assert set(before_layers) <= set(before)  # every epoch layer has its product
    sums = {name: sha256(path) for name, path in before.items()}

    visit = add_visit(scene.out_dir, instrument="WFC3", detector="IR", filter="F160W")
    ingest(engine, visit.paths)
    after_layers = epoch_layers(engine)
    renamed = {n for n, k in after_layers.items() if k == 0}
    new = set(after_layers) - set(before_layers)
    assert renamed and new  # the last WFC3/IR epochs took the visit in under new keys
    assert all(before[n].exists() for n in renamed)  # ingest leaves the files alone

    planned = plan(engine, root / "pollers")
    run_queue(engine, root / "products", executor="inline")
    after = products(engine)
    assert not renamed & set(after)  # no product row of an old key ...
    assert not any(before[n].exists() for n in renamed)  # ... nor its file
    for n in new:  # the new keys are drawn
        assert n in after and after[n].exists()
    kept = set(before) - renamed - {lay for p in planned for lay in p.layers}
    assert kept and all(sha256(after[n]) == sums[n] for n in kept)  # layers not planned: untouched

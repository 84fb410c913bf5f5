"""scripts/nightly_ingest: new files since the last successful run, locks, log, ingest_run, chaining."""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import subprocess
import sys
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
import sqlalchemy as sa
from mvmdb.db.runs import ADVISORY_LOCK_KEY
from ingest_data import HRC, IR, variant

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "nightly_ingest"


@pytest.fixture(autouse=True)
def restore_logging():
    """main() configures the 'mvmdb' logger (file + stderr handlers); undo that after each test."""
    logger = logging.getLogger("mvmdb")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def load_script():
    loader = SourceFileLoader("nightly_ingest_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_script(db_url, home, *args):
    env = {**os.environ, "MVMDB_URL": db_url.render_as_string(hide_password=False), "MVMDB_HOME": str(home)}
    env.pop("MVM_INCLUDE_SMALL", None)
    env.pop("MVM_ONLY_CTE", None)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600)


def runs(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, root, status, summary, finished_at FROM ingest_run ORDER BY id")).all()


def test_first_run_then_only_new_files(engine, db_url, tmp_path):
    root, home = tmp_path / "data", tmp_path / "home"
    variant(IR, root / "11530" / "ib3y01c6q_flt.fits")
    variant(HRC, root / "9019" / "j8bt06nyq_flt.fits")
    (root / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text("not an exposure")
    time.sleep(0.05)
    first = run_script(db_url, home, root, "--margin", "0", "--jobs", "1")
    assert first.returncode == 0, first.stderr
    (r1,) = runs(engine)
    assert r1.status == "success" and r1.root == str(root.resolve()) and r1.finished_at is not None
    assert r1.summary["candidates"] == 2 and r1.summary["ingested"] == 2 and r1.summary["since"] is None
    log = (home / "logs" / "nightly_ingest.log").read_text()
    assert f"run {r1.id}: 2 candidate files" in log and "success (exit 0)" in log

    time.sleep(0.05)
    variant(IR, root / "11530" / "ib3y01c7q_flt.fits", primary={"ROOTNAME": "ib3y01c7q"})
    second = run_script(db_url, home, root, "--margin", "0", "--jobs", "1")
    assert second.returncode == 0, second.stderr
    r2 = runs(engine)[-1]
    assert r2.summary["candidates"] == 1 and r2.summary["ingested"] == 1 and r2.summary["since"] is not None

    full = run_script(db_url, home, root, "--full", "--jobs", "1")
    assert full.returncode == 0
    assert runs(engine)[-1].summary["unchanged"] == 3


def test_file_errors_exit_2_and_still_count_as_success(engine, db_url, tmp_path):
    root, home = tmp_path / "data", tmp_path / "home"
    variant(IR, root / "ib3y01c6q_flt.fits")
    (root / "broken_flc.fits").write_bytes(b"\0" * 100)
    result = run_script(db_url, home, root, "--log", tmp_path / "n.log")
    assert result.returncode == 2
    assert "1 files could not be ingested" in result.stderr
    (r,) = runs(engine)
    assert r.status == "success" and r.summary["error"] == 1
    assert "broken_flc.fits" in (tmp_path / "n.log").read_text()


def test_lock_file_and_advisory_lock_prevent_overlap(engine, db_url, tmp_path):
    root, home = tmp_path / "data", tmp_path / "home"
    variant(IR, root / "ib3y01c6q_flt.fits")
    lock = home / "locks" / "nightly_ingest.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_script(db_url, home, root)
    assert result.returncode == 3 and "lock file" in result.stderr
    module = load_script()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.pg_try_advisory_lock(ADVISORY_LOCK_KEY))).scalar_one()
        result = run_script(db_url, home, root)
        conn.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
    assert result.returncode == 3 and "advisory lock" in result.stderr
    assert runs(engine) == []
    assert run_script(db_url, home, root).returncode == 0


def test_bad_switch_or_root_fails_with_one_line(db_url, tmp_path):
    result = run_script(db_url, tmp_path / "home", tmp_path / "missing")
    assert result.returncode == 1 and "is not a directory" in result.stderr
    env_home = tmp_path / "home"
    (tmp_path / "data").mkdir()
    env = {**os.environ, "MVMDB_URL": db_url.render_as_string(hide_password=False), "MVMDB_HOME": str(env_home),
           "MVM_ONLY_CTE": "sometimes"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "data")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 1
    assert "MVM_ONLY_CTE='sometimes' is not a switch value" in result.stderr


def test_plan_and_process_are_chained(engine, db_url, tmp_path, monkeypatch):
    root, home = tmp_path / "data", tmp_path / "home"
    variant(IR, root / "ib3y01c6q_flt.fits")
    monkeypatch.setenv("MVMDB_URL", db_url.render_as_string(hide_password=False))
    monkeypatch.setenv("MVMDB_HOME", str(home))
    monkeypatch.delenv("MVM_INCLUDE_SMALL", raising=False)
    monkeypatch.delenv("MVM_ONLY_CTE", raising=False)
    calls = []

    class Result:
        status = "done"

    class Outcome:
        results = [Result()]

    def fake_run_queue(engine_arg, products_dir):
        calls.append(Path(products_dir))
        return [Outcome()]

    import mvmdb.process.run

    monkeypatch.setattr(mvmdb.process.run, "run_queue", fake_run_queue)
    module = load_script()
    code = module.main([str(root), "--jobs", "1", "--plan", str(tmp_path / "pollers"), "--process",
                        "--products", str(tmp_path / "products")])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "pollers").iterdir())  # the real planner wrote poller files
    assert calls == [tmp_path / "products"]
    (r,) = runs(engine)
    assert r.summary["plan"]["pollers"] >= 1 and r.summary["process"] == {"jobs": 1, "done": 1, "skipped": 0, "failed": 0}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM job WHERE state = 'queued'")).scalar_one() >= 1


def test_process_needs_plan(tmp_path):
    module = load_script()
    with pytest.raises(SystemExit):
        module.parse_args([str(tmp_path), "--process"])


def test_failed_step_marks_the_run_failed(engine, db_url, tmp_path, monkeypatch):
    root, home = tmp_path / "data", tmp_path / "home"
    variant(IR, root / "ib3y01c6q_flt.fits")
    monkeypatch.setenv("MVMDB_URL", db_url.render_as_string(hide_password=False))
    monkeypatch.setenv("MVMDB_HOME", str(home))
    import mvmdb.ingest

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mvmdb.ingest, "ingest", boom)
    module = load_script()
    assert module.main([str(root)]) == 1
    (r,) = runs(engine)
    assert r.status == "failed" and "disk on fire" in r.summary["error"]

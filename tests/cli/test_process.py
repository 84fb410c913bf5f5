"""``mvm process`` and ``mvm worker``: options, the per-layer JSON contract, exit status."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mvmdb.cli.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "process"))
from test_run import tiny_cells  # noqa: E402
from test_job import ingest_and_plan  # noqa: E402

KEYS = ["layer", "product", "status", "reason", "members", "keywords"]
MVM_KEYWORDS = {"NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT", "SCELLID"}


def mvm(db_url, *args: str):
    url = db_url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)


@pytest.fixture
def planned(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 2)
    pollers = ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    return cells, pollers


def test_process_queue_json_contract(db_url, planned, tmp_path):
    products = tmp_path / "products"
    result = mvm(db_url, "process", "--queue", "--executor", "inline", "--products", str(products), "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    for r in records:
        assert list(r) == KEYS
        assert r["status"] == "done" and r["reason"] is None and r["members"] == 1
        assert Path(r["product"]).is_file() and Path(r["product"]).parent.parent == products
        assert set(r["keywords"]) == MVM_KEYWORDS and 0 < r["keywords"]["NPIXFRAC"] < 1
    again = mvm(db_url, "process", "--queue", "--executor", "inline", "--products", str(products), "--json")
    assert again.exit_code == 0 and again.stdout == ""


def test_process_human_output_and_products_env(db_url, planned, tmp_path, monkeypatch):
    monkeypatch.setenv("MVMDB_PRODUCTS", str(tmp_path / "env_products"))
    result = mvm(db_url, "process", "--queue", "--executor", "local:1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("done") for line in lines)
    assert "4 layers, 0 failed" in result.stderr
    assert len(list((tmp_path / "env_products").rglob("*.fits"))) == 4


def test_process_poller_files(db_url, planned, tmp_path):
    cells, pollers = planned
    result = mvm(db_url, "process", str(pollers[1].path), "--executor", "inline",
                 "--products", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["layer"].split("_")[1] for r in records} == {pollers[1].skycell}
    assert {r["status"] for r in records} == {"done"} and len(records) == 2


def test_process_archive_poller_not_in_catalog(db_url, tmp_path):
    from mvmdb.poller import PollerRow, write_poller

    (cell, path), = tiny_cells(tmp_path / "in", 1)
    row = PollerRow(filename=path.name, proposal_id=10000, program_id="B00", obset_id="00", exptime=100.0,
                    filters="F160W", detector="IR", skycell=cell.name, status="NEW", path=str(path))
    poller = write_poller(tmp_path / "x.out", [row])
    result = mvm(db_url, "process", str(poller), "--executor", "inline", "--products", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    assert all(r["status"] == "done" and "not in the catalog" in r["reason"] for r in records)


def test_failed_layer_gives_exit_status_1(db_url, planned, tmp_path):
    cells, _ = planned
    os.unlink(cells[0][1])
    result = mvm(db_url, "process", "--queue", "--executor", "inline", "--products", str(tmp_path / "p"), "--json")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 2 and all(str(cells[0][1]) in r["reason"] and r["product"] is None for r in failed)
    assert sum(r["status"] == "done" for r in records) == 2


def test_console_process_exits_fast_with_its_status_and_all_output(db_url, planned, tmp_path):
    """``mvm process`` as a real process ends with os._exit after the command: exit status, every
    line of stdout (a pipe) and the summary on stderr are all there, for success and for failure."""
    import subprocess

    cells, pollers = planned
    url = db_url.render_as_string(hide_password=False)
    cmd = [sys.executable, "-m", "mvmdb.cli.main", "--db", url, "process", "--executor", "local:2", "--json",
           "--products", str(tmp_path / "p")]
    ok = subprocess.run([*cmd, str(pollers[0].path)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["status"] for line in ok.stdout.splitlines()] == ["done", "done"]
    os.unlink(cells[1][1])
    bad = subprocess.run([*cmd, str(pollers[1].path)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert [json.loads(line)["status"] for line in bad.stdout.splitlines()] == ["failed", "failed"]
    assert "2 layers, 2 failed" not in bad.stderr  # --json: no summary line
    human = subprocess.run([c for c in cmd if c != "--json"] + [str(pollers[1].path)], capture_output=True,
                           text=True, timeout=300)
    assert human.returncode == 1 and human.stderr.rstrip().endswith("2 layers, 2 failed")
    assert len(human.stdout.splitlines()) == 2


def test_worker_once(db_url, planned, tmp_path):
    result = mvm(db_url, "worker", "--once", "--products", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    result = mvm(db_url, "worker", "--idle-exit", "0.2", "--poll", "0.05", "--products", str(tmp_path / "p"))
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize("args", [[], ["--queue", "x.out"], ["--queue", "--executor", "threads:2"],
                                  ["--queue", "--scheduler", "tcp://h:1"]])
def test_usage_errors(db_url, tmp_path, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.out").write_text("")
    result = mvm(db_url, "process", *args)
    assert result.exit_code == 1, result.output

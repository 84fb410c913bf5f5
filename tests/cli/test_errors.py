"""Every error a user can cause is one line ``mvm: error: ...`` with a non-zero exit status, never a traceback.

The cases of issue 15's hostile probe: out-of-range and non-finite positions, a cone too
small for healpy, unwritable output paths, a bad database URL, corrupted exposure files,
a bad poller among good ones, an unwritable products directory, a database lost mid-run.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mvmdb.cli.main import cli, user_error

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "process"))
from test_run import tiny_cells  # noqa: E402
from test_job import ingest_and_plan  # noqa: E402

HST = Path(__file__).resolve().parents[1] / "data" / "hst"
WAIT = 300.0  # hang guard only


def mvm(url, *args: str):
    url = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)


def one_line_error(result, code: int = 1) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("mvm: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args", [
    ["--ra", "nan", "--dec", "1"], ["--ra", "inf", "--dec", "1"], ["--ra", "1e308", "--dec", "1"],
    ["--ra", "1", "--dec", "nan"], ["--ra", "1", "--dec", "1", "--radius", "nan"],
    ["--ra", "1", "--dec", "1", "--radius", "-1"],
])
def test_coverage_rejects_non_finite_positions(db_url, args):
    assert "Invalid value" in one_line_error(mvm(db_url, "coverage", *args), code=1)  # a usage error: one line, exit 1


def test_coverage_tiny_cone_is_answered_not_aborted(db_url):
    """healpy aborts the interpreter (C++ PlanckError) for cones under ~1e-6 deg at order 29."""
    for radius in ("1e-8", "1e-300"):
        result = mvm(db_url, "coverage", "--ra", "10", "--dec", "20", "--radius", radius, "--json")
        assert result.exit_code == 0 and json.loads(result.stdout) == []


@pytest.mark.parametrize("args", [["coverage", "map", "--out", "/nonexistent/x.png"],
                                  ["coverage", "moc", "--out", "/nonexistent/x.fits"],
                                  ["plan", "--out", "/proc/forbidden"]])
def test_unwritable_outputs(db_url, engine, tmp_path, args):
    cells = tiny_cells(tmp_path / "in", 1)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    with engine.begin() as conn:  # plan has something to write again
        conn.execute(sa.text("DELETE FROM job"))
    one_line_error(mvm(db_url, *args))


def test_bad_database_url():
    line = one_line_error(mvm("postgresql+psycopg://h:notaport/x", "status"))
    assert "cannot parse database URL" in line


def test_skycell_errors_say_mvm_error():
    result = CliRunner().invoke(cli, ["skycell"], catch_exceptions=False)
    one_line_error(result, code=1)


def _corrupted(tmp_path: Path) -> list[Path]:
    from astropy.io import fits

    raw = gzip.decompress((HST / "ib6o23rtq_flt.fits.gz").read_bytes())
    files = []
    for name, key, value in [("extver", "EXTVER", "abc"), ("sip", "A_ORDER", 99), ("ctype", "CTYPE1", "RA---XYZ"),
                             ("crval", "CRVAL2", 1e10), ("naxis", "NAXIS", 0)]:
        with fits.open(__import__("io").BytesIO(raw)) as h:
            h[1].header[key] = value
            h.writeto(tmp_path / f"{name}_flt.fits", output_verify="ignore")
        files.append(tmp_path / f"{name}_flt.fits")
    for n in (0, 100, 2880 * 3 + 17):
        (tmp_path / f"trunc{n}_flt.fits").write_bytes(raw[:n])
        files.append(tmp_path / f"trunc{n}_flt.fits")
    return files


def test_skycell_footprint_of_corrupted_files(tmp_path):
    good = tmp_path / "good_flt.fits"
    good.write_bytes(gzip.decompress((HST / "ib6o23rtq_flt.fits.gz").read_bytes()))
    bad = _corrupted(tmp_path)
    result = CliRunner().invoke(cli, ["skycell", "--footprint", "--json", str(good), *map(str, bad)],
                                catch_exceptions=False)
    assert result.exit_code == 2  # some files failed
    listed = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    errors = result.stderr.strip().splitlines()
    assert str(good) in listed and len(listed) + len(errors) == 1 + len(bad)  # one line per file, out or err
    assert "Traceback" not in result.stderr and all(e.startswith("mvm: error: ") for e in errors)
    for f in bad:
        single = CliRunner().invoke(cli, ["skycell", "--footprint", str(f)], catch_exceptions=False)
        if single.exit_code:
            one_line_error(single)


def test_user_error_for_a_lost_database():
    import psycopg

    exc = sa.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection\nunexpectedly"))
    assert user_error(exc) == "lost the connection to the database: server closed the connection unexpectedly"
    assert user_error(RuntimeError("a bug")) is None


def test_bad_poller_among_good_ones_with_the_default_executor(db_url, engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 1)
    pollers = ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    bad = tmp_path / "bad_mvm_poller.txt"
    bad.write_text("not,a,poller\n")
    result = mvm(db_url, "process", "--executor", "local:2", "--products", str(tmp_path / "p"), "--json",
                 str(bad), *(str(p.path) for p in pollers))
    assert result.exit_code == 1 and "Traceback" not in result.output, (pollers, result.output)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["status"] for r in records) == ["done", "done", "failed"]  # the good poller's layers are kept
    assert next(r for r in records if r["status"] == "failed")["layer"] == str(bad)


def test_worker_that_cannot_write_stops_before_claiming(db_url, engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 1)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    line = one_line_error(mvm(db_url, "worker", "--once", "--products", "/proc/nope"))
    assert "cannot write products in /proc/nope" in line
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT state, attempts FROM job")).one() == ("queued", 0)


def test_database_lost_mid_run_is_one_line(db_url, engine, db_factory, tmp_path):
    cells = tiny_cells(tmp_path / "in", 1)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    engine.dispose()
    markers = tmp_path / "markers"
    url = db_url.render_as_string(hide_password=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvmdb.cli.main", "--db", url, "worker", "--once", "--products", str(tmp_path / "p")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MVMDB_FAILPOINT": "after_claim:sleep", "MVMDB_FAILPOINT_SLEEP": "10",
             "MVMDB_FAILPOINT_DIR": str(markers)})
    t0 = time.monotonic()
    while not (markers.is_dir() and any(markers.iterdir())):
        assert proc.poll() is None and time.monotonic() - t0 < WAIT, proc.communicate()
        time.sleep(0.02)
    db_factory.drop(db_url)  # the database goes away under the running worker
    _, err = proc.communicate(timeout=WAIT)
    lines = [ln for ln in err.splitlines() if not ln.startswith("failpoint ") and " WARNING " not in ln
             and " ERROR " not in ln]
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("mvm: error: lost the connection to the database"), err


@pytest.mark.parametrize(("args", "message"), [
    (["--db"], "Option '--db' requires an argument"),
    (["--no-such-option"], "No such option '--no-such-option'"),
    (["no-such-command"], "No such command 'no-such-command'"),
])
def test_top_level_usage_errors_are_one_line(args, message):
    """Bad options of ``mvm`` itself read like every other user error: one line, exit 1."""
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert message in one_line_error(result)

"""``mvm ingest``: JSON lines, error lines, summary, exit codes, switches."""

from __future__ import annotations

import json

from click.testing import CliRunner
from ingest_data import HRC, IR, variant

from mvmdb.cli.main import cli

KEYS = ["path", "ipppssoot", "status", "reason", "sky_cells", "layers"]


def mvm(db_url, *args: str, env: dict | None = None):
    url = db_url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--db", url, "ingest", *args], env=env, catch_exceptions=False)


def test_json_lines_and_exit_code(db_url, tmp_path):
    good = variant(IR, tmp_path / "ib3y01c6q_flt.fits")
    bad = tmp_path / "broken_flt.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage" * 10)
    result = mvm(db_url, "--json", "--jobs", "1", str(tmp_path))
    assert result.exit_code == 2
    records = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == {str(good), str(bad)}
    assert all(list(r) == KEYS for r in records.values())
    ok = records[str(good)]
    assert ok["status"] == "ingested" and ok["reason"] is None and ok["ipppssoot"] == "ib3y01c6q"
    assert ok["sky_cells"] == sorted(ok["sky_cells"]) and ok["layers"] == sorted(ok["layers"])
    assert all(name.startswith("hst_skycell-p") for name in ok["layers"])
    assert records[str(bad)]["status"] == "error" and records[str(bad)]["reason"]
    assert f"mvm: {bad}: {records[str(bad)]['reason']}" in result.stderr.splitlines()
    assert "1 ingested, 0 unchanged, 0 updated, 0 excluded, 1 errors" in result.stderr

    again = mvm(db_url, "--json", str(good))
    assert again.exit_code == 0
    (record,) = map(json.loads, again.stdout.splitlines())
    assert record["status"] == "unchanged" and record["layers"] == ok["layers"] and record["sky_cells"] == ok["sky_cells"]


def test_plain_output_is_a_summary_on_stderr(db_url, tmp_path):
    variant(IR, tmp_path / "ib3y01c6q_flt.fits")
    result = mvm(db_url, str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "1 files in" in result.stderr and "1 ingested" in result.stderr


def test_switch_options_and_environment(db_url, tmp_path):
    hrc = variant(HRC, tmp_path / "j8bt06nyq_flt.fits")
    result = mvm(db_url, "--json", "--no-include-small", str(hrc))
    record = json.loads(result.stdout)
    assert result.exit_code == 0 and record["status"] == "excluded"
    assert record["reason"] == "small detector (ACS/HRC, MVM_INCLUDE_SMALL=false)"
    assert "excluded: 1 small detector" in result.stderr

    result = mvm(db_url, "--json", str(hrc), env={"MVM_INCLUDE_SMALL": " YES "})
    assert json.loads(result.stdout)["status"] == "updated"

    result = mvm(db_url, str(hrc), env={"MVM_ONLY_CTE": "perhaps"})
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "mvm: error: MVM_ONLY_CTE='perhaps' is not a switch value: use one of on/yes/true or off/no/false"
    ]
    # an explicit option wins over a bad environment value
    assert mvm(db_url, "--only-cte", str(hrc), env={"MVM_ONLY_CTE": "perhaps"}).exit_code == 0


def test_missing_path_is_an_error_line(db_url, tmp_path):
    result = mvm(db_url, str(tmp_path / "nothere_flt.fits"))
    assert result.exit_code == 2
    assert f"mvm: {tmp_path / 'nothere_flt.fits'}: no such file or directory" in result.stderr

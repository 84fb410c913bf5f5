"""``mvm layers``: enable / disable / list, JSON and one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mvmdb.cli.main import cli


def test_enable_list_disable(db_url):
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", db_url, "layers", "enable", "epochs", "--range", "2011-01-01..2011-12-31",
                            "--range", "20160101-20161231", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["set"], out["scope"], out["enabled"]) == ("epochs", "catalog", True)
    assert out["ranges"] == ["20110101-20111231", "20160101-20161231"] and out["added"] == 0
    r = runner.invoke(cli, ["--db", db_url, "layers", "enable", "year", "--skycell", "p1359x02y12"])
    assert r.exit_code == 0 and "layer set year enabled for skycell-p1359x02y12" in r.output
    r = runner.invoke(cli, ["--db", db_url, "layers", "disable", "epochs"])
    assert r.exit_code == 0 and "stay" in r.output
    r = runner.invoke(cli, ["--db", db_url, "layers", "list", "--json"])
    rows = json.loads(r.output)
    assert [(x["set"], x["scope"], x["enabled"]) for x in rows] == [
        ("all", "catalog", True), ("epochs", "catalog", False), ("year", "skycell-p1359x02y12", True)]
    assert set(rows[0]) >= {"n_layers", "n_products", "n_members", "n_new"}
    r = runner.invoke(cli, ["--db", db_url, "layers", "list"])
    assert r.exit_code == 0 and "skycell-p1359x02y12" in r.output


def test_user_errors_are_one_line_exit_1(db_url):
    runner = CliRunner()
    for args, text in ((["enable", "epochs"], "--range"), (["enable", "year", "--range", "2011"], "epochs set only"),
                       (["enable", "epochs", "--range", "2011-02-30"], "not a date range"),
                       (["disable", "exptime"], "never enabled"), (["enable", "decade"], "decade")):
        r = runner.invoke(cli, ["--db", db_url, "layers", *args])
        assert r.exit_code == 1, (args, r.output)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("mvm: error:") and text in lines[0], (args, r.output)

"""``mvm init`` / ``mvm status`` / ``mvm db``: configuration and the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mvmdb.cli.main import cli
from mvmdb.db import migrate
from mvmdb.db.engine import make_engine


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_init_then_status_json(empty_db_url):
    url = empty_db_url.render_as_string(hide_password=False)
    result = invoke("--db", url, "init")
    assert result.exit_code == 0, result.output
    assert "0001" in result.output or migrate.head_revision() in result.output
    result = invoke("--db", url, "status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["schema_revision"] == status["head_revision"] == migrate.head_revision()
    assert status["tables"]["projection_cell"] == 2644
    assert status["tables"]["exposure"] == 0
    assert status["source"] == "--db"


def test_status_refuses_uninitialised_database(empty_db_url):
    result = invoke("--db", empty_db_url.render_as_string(hide_password=False), "status")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["mvm: error: the database has no mvmdb schema: run mvm init"]


def test_status_says_upgrade_when_schema_is_older(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    script = migrate.ScriptDirectory.from_config(migrate.alembic_config())
    head = script.get_revision(migrate.head_revision())
    if head.down_revision is None:
        # Only one revision exists: pretend the database is one revision behind by
        # stamping a known older id that alembic can walk to (the base).
        pytest.skip("needs at least two migrations")
    migrate.upgrade(engine, head.down_revision)
    result = invoke("--db", empty_db_url.render_as_string(hide_password=False), "status")
    assert result.exit_code == 1
    assert "run mvm db upgrade" in result.output
    assert len(result.output.strip().splitlines()) == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///catalog.db", "unsupported database URL scheme 'sqlite'"),
        ("mysql://root@localhost/x", "unsupported database URL scheme 'mysql'"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere"),
        ("::nonsense::", "cannot parse database URL"),
    ],
)
def test_bad_configuration_is_one_line(url, expected):
    result = invoke("--db", url, "status")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mvm: error: ") and expected in lines[0]


def test_env_var_is_used(db_url, monkeypatch):
    monkeypatch.setenv("MVMDB_URL", db_url.render_as_string(hide_password=False))
    status = json.loads(invoke("status", "--json").output)
    assert status["source"] == "MVMDB_URL" and status["database"].endswith(db_url.database)


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("init", "status", "db"):
        assert f"  {name} " in result.output


def test_embedded_default_when_nothing_configured(tmp_path):
    """No --db, no MVMDB_URL: an embedded server in $MVMDB_HOME, reused by the next command."""
    env = {k: v for k, v in os.environ.items() if k != "MVMDB_URL"}
    env["MVMDB_HOME"] = str(tmp_path / "home")
    mvm = [sys.executable, "-m", "mvmdb.cli.main"]

    def run(*args):
        return subprocess.run([*mvm, *args], env=env, capture_output=True, text=True, timeout=600)

    try:
        first = run("init")
        assert first.returncode == 0, first.stderr
        assert "embedded PostgreSQL" in first.stdout and str(tmp_path) in first.stdout
        a = json.loads(run("status", "--json").stdout)
        b = json.loads(run("status", "--json").stdout)
        assert a["source"] == b["source"] == "embedded"
        assert a["data_dir"] == b["data_dir"] == str(tmp_path / "home" / "pgdata")
        assert a["tables"]["projection_cell"] == 2644 and a["schema_revision"] == migrate.head_revision()
    finally:
        stopped = run("db", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout

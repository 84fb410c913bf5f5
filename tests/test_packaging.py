"""The wheel is complete: every subpackage is listed, migrations and SQL ship inside the package."""

from __future__ import annotations

import tomllib
from pathlib import Path

from mvmdb.resources import resource_dir, sql_statements

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mvmdb").rglob("__init__.py")}
    assert found <= listed
    assert {"mvmdb.migrations", "mvmdb.migrations.versions", "mvmdb.schema"} <= listed


def test_package_dirs_map_the_top_level_folders():
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert mapping["mvmdb.migrations"] == "migrations" and mapping["mvmdb.schema"] == "schema"


def test_resources_are_found_and_the_planner_sql_loads():
    assert (resource_dir("migrations") / "env.py").is_file()
    assert {"plan_rows", "enqueue_jobs", "open_jobs"} <= set(sql_statements("plan.sql"))

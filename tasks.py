#!/usr/bin/env python3
"""Developer and operator tasks that need nothing but Python 3.11+ and pip.

    python3 tasks.py demo     # the whole pipeline on an embedded database
    python3 tasks.py test     # the whole test suite (talks to a real PostgreSQL)
    python3 tasks.py bench    # benchmark table (not part of the tests)
    python3 tasks.py schema   # regenerate schema/ddl.sql from the models

Each task creates or reuses ``.venv`` (installing the package and its test extras when
``pyproject.toml`` changed) and runs inside it. Extra arguments go to the tool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".mvmdb-installed"


def run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"mvmdb needs Python >= 3.11 (this is {sys.version.split()[0]})")
    python = BIN / "python"
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception:  # Debian without python3-venv: fall back to virtualenv
            run(sys.executable, "-m", "pip", "install", "-q", "--user", "virtualenv")
            run(sys.executable, "-m", "virtualenv", "-q", VENV)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        print("installing mvmdb and its dependencies into .venv (first run takes a minute or two)", flush=True)
        run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", ".[test]")
        STAMP.touch()


def task_demo(args: list[str]) -> None:
    run(BIN / "mvm", "demo", *args)


def task_test(args: list[str]) -> None:
    workers = os.environ.get("MVMDB_TEST_WORKERS", "auto")
    # loadgroup: the modules marked xdist_group("full_size_products") run on one worker, one after
    # the other, so their several GB of products are never on disk at the same time
    run(BIN / "python", "-m", "pytest", "-n", workers, "--dist", "loadgroup", *args)


def task_bench(args: list[str]) -> None:
    run(BIN / "python", ROOT / "benchmarks" / "run_all.py", *args)


def task_schema(args: list[str]) -> None:
    run(BIN / "python", ROOT / "scripts" / "dump_schema.py")


TASKS = {"demo": task_demo, "test": task_test, "bench": task_bench, "schema": task_schema}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(__doc__)
    ensure_venv()
    TASKS[sys.argv[1]](sys.argv[2:])

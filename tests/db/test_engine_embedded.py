"""The embedded server's pid-file check (no server is started here)."""

from __future__ import annotations

import os
import subprocess
import sys

from mvmdb.db.engine import postmaster_alive, stop_embedded_server


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_postmaster_alive_reads_the_pid_file(tmp_path):
    assert not postmaster_alive(tmp_path)  # no pid file
    pid_file = tmp_path / "postmaster.pid"
    pid_file.write_text("not a pid\n")
    assert not postmaster_alive(tmp_path)
    pid_file.write_text(f"{os.getpid()}\n{tmp_path}\n1700000000\n5432\n")
    assert postmaster_alive(tmp_path)
    pid_file.write_text(f"{_dead_pid()}\n{tmp_path}\n")
    assert not postmaster_alive(tmp_path)


def test_stopping_with_a_stale_pid_file_starts_nothing(tmp_path):
    (tmp_path / "postmaster.pid").write_text(f"{_dead_pid()}\n{tmp_path}\n")
    assert stop_embedded_server(tmp_path) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["postmaster.pid"]  # no initdb, no server

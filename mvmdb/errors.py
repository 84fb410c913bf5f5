"""Exceptions that reach the user as one clear line (the CLI prints ``str(exc)``, no traceback)."""

from __future__ import annotations


class MvmdbError(Exception):
    """Base class for errors that are the user's to fix (configuration, bad input)."""


class ConfigError(MvmdbError):
    """The database URL or another setting is unusable."""


class DatabaseUnavailable(MvmdbError):
    """The PostgreSQL server cannot be reached or refused the connection."""


class SchemaOutOfDate(MvmdbError):
    """The database schema is not at the revision this code expects."""


def one_line(exc: BaseException, limit: int = 500) -> str:
    """``str(exc)`` on one line (blanks collapsed), at most ``limit`` characters; the type name if empty."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit]

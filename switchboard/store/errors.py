"""Typed errors of the storage boundary, and which database errors are transient."""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions as pgexc


class StoreError(Exception):
    """Base class for storage errors."""


class MigrationError(StoreError):
    """A migration file failed; its transaction was rolled back."""

    def __init__(self, filename: str, cause: BaseException) -> None:
        super().__init__(f"migration {filename} failed: {type(cause).__name__}: {cause}")
        self.filename = filename
        self.cause = cause


class WriterOverloaded(StoreError):
    """The in-memory queue and the disk spool are both full: the event was NOT accepted."""


class WriterClosed(StoreError):
    """``submit`` after ``stop``."""


# Errors that mean "the database is not reachable right now" (retry later),
# classified by type / SQLSTATE class, never by message text.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,                                   # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,                              # our own timeout= on a network await
    asyncpg.PostgresConnectionError,           # SQLSTATE class 08
    asyncpg.InterfaceError,                    # connection closed / lost mid-operation
    pgexc.OperatorInterventionError,           # class 57: admin shutdown, cannot connect now
    pgexc.InsufficientResourcesError,          # class 53: disk full, too many connections
)

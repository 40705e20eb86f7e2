"""What an integrity violation from the database means for the caller.

A unique, primary-key, foreign-key or exclusion violation is a conflict with other rows (409). A
NOT NULL or check violation is a value the row may not hold, often a hook that left a field empty
(`owner_id` from `Actor.system()`, which is no user): a validation error naming the field (422),
never a "conflict". Told apart by the driver's codes, without importing a driver: PostgreSQL's
SQLSTATE (`pgcode`) and SQLite's extended result code (`sqlite_errorcode`, Python 3.11+).
"""

import sqlite3
from collections.abc import Mapping

from sqlalchemy import exc as sa_exc

from app.domains.base.exceptions import ConflictError, DomainError, DomainValidationError

POSTGRES_NOT_NULL = "23502"
POSTGRES_CHECK = "23514"


def as_domain_error(error: sa_exc.IntegrityError, conflict_messages: Mapping[str, str]) -> DomainError:
    """The domain error for `error`. `conflict_messages` maps a unique column the driver's message
    names to what the caller is told (`"email": "a user with this e-mail already exists"`)."""
    driver_error = error.orig
    if (column := _not_null_column(driver_error)) is not None:
        return DomainValidationError(
            f"{column} must have a value", [{"key": column, "message": "required: the row cannot be stored without it"}]
        )
    if (check := _check_constraint(driver_error)) is not None:
        return DomainValidationError(
            f"the row breaks the check {check}", [{"key": check, "message": "the value breaks this check"}]
        )
    message = str(driver_error)
    detail = next(
        (text for column, text in conflict_messages.items() if column in message),
        "the change conflicts with an existing row",
    )
    return ConflictError(detail)


def _not_null_column(driver_error: object) -> str | None:
    if getattr(driver_error, "pgcode", None) == POSTGRES_NOT_NULL:
        return str(getattr(getattr(driver_error, "diag", None), "column_name", None) or "a column")
    if getattr(driver_error, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_NOTNULL:
        # "NOT NULL constraint failed: notes.owner_id"
        return str(driver_error).rpartition(": ")[2].rpartition(".")[2] or "a column"
    return None


def _check_constraint(driver_error: object) -> str | None:
    if getattr(driver_error, "pgcode", None) == POSTGRES_CHECK:
        return str(getattr(getattr(driver_error, "diag", None), "constraint_name", None) or "a check")
    if getattr(driver_error, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_CHECK:
        # "CHECK constraint failed: ck_projects_name_not_blank" (or the expression, when unnamed)
        return str(driver_error).partition(": ")[2] or "a check"
    return None

"""What crosses the boundary: the base of input schemas, shared field types, and row -> schema."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, field_validator
from sqlmodel import SQLModel


def reject_nul(value: Any) -> Any:
    """PostgreSQL refuses NUL in text (and a NUL hides the rest of a string from most readers)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for item in value:
            reject_nul(item)
    return value


class InputSchema(SQLModel):
    """Base of every Create/Update schema: unknown fields refused, NUL refused in every string."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return reject_nul(value)


def _as_utc(value: datetime | None) -> datetime | None:
    """Aware values are converted to UTC here, where an out-of-range one is a validation error (not
    an OverflowError when the database binds it); a naive one is read as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("out of range once converted to UTC") from error


UTCDatetime = Annotated[datetime | None, AfterValidator(_as_utc)]  # naive read as UTC (query strings)
AwareUTCDatetime = Annotated[AwareDatetime | None, AfterValidator(_as_utc)]  # an offset is required


def to_public[S: BaseModel](schema: type[S], row: object) -> S:
    """The `schema` view of a row (its Public schema): only the schema's fields leave, validated.

    Calls pydantic's validator directly: SQLModel's `model_validate` wrapper doubles the cost, which
    a page of 50 rows feels.
    """
    return schema.__pydantic_validator__.validate_python(row, from_attributes=True)

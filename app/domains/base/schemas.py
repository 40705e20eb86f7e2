"""What crosses the boundary: the base of input schemas, shared field types, and row -> schema."""

from datetime import UTC, datetime
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from sqlmodel import SQLModel


def reject_nul(value: Any) -> Any:
    """PostgreSQL refuses NUL in text (and a NUL hides the rest of a string from most readers)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for item in value:
            reject_nul(item)
    return value


class NotNull:
    """For an Update schema's fields that are optional only because a PATCH may leave them out:
    `name: Annotated[str | None, NOT_NULL] = None`. Absent, the field is None and unchanged; sent as
    `null`, it is refused, naming the field. Its JSON schema has no null branch, so the document
    promises what validation checks (a generated client cannot send `{"name": null}`)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_null, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        if "anyOf" not in json_schema:
            return json_schema
        branches = [branch for branch in json_schema["anyOf"] if branch != {"type": "null"}]
        if len(branches) == 1:
            del json_schema["anyOf"]
            json_schema.update(branches[0])
        else:  # a type of several branches itself (a Decimal: a number or a string)
            json_schema["anyOf"] = branches
        return json_schema


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null", "cannot be null")
    return value


NOT_NULL = NotNull()


class InputSchema(SQLModel):
    """Base of every Create/Update schema: unknown fields refused, NUL refused in every string."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]  # SQLModel's config type extends it, privately

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


def _iso_8601(value: Any) -> Any:
    """A string must be an ISO 8601 instant (pydantic alone would also read "0.5" as Unix time)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError as error:
            raise ValueError("must be an ISO 8601 date-time") from error
    return value


# Naive read as UTC (query strings); a string must be ISO 8601.
UTCDatetime = Annotated[datetime | None, BeforeValidator(_iso_8601), AfterValidator(_as_utc)]
AwareUTCDatetime = Annotated[AwareDatetime | None, AfterValidator(_as_utc)]  # an offset is required


def to_public[S: BaseModel](schema: type[S], row: object) -> S:
    """The `schema` view of a row (its Public schema): only the schema's fields leave, validated.

    Calls pydantic's validator directly: SQLModel's `model_validate` wrapper doubles the cost, which
    a page of 50 rows feels.
    """
    return cast(S, schema.__pydantic_validator__.validate_python(row, from_attributes=True))

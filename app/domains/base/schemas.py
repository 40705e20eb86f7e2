"""From rows to what crosses the boundary."""

from pydantic import BaseModel


def to_public[S: BaseModel](schema: type[S], row: object) -> S:
    """The `schema` view of a row (its Public schema): only the schema's fields leave, validated.

    Calls pydantic's validator directly: SQLModel's `model_validate` wrapper doubles the cost, which
    a page of 50 rows feels.
    """
    return schema.__pydantic_validator__.validate_python(row, from_attributes=True)

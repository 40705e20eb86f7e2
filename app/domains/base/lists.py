"""List parameters and pages: defined once, for every domain and every adapter.

The API derives its query parameters (every constraint included, from `ListParams`' JSON schema)
from its fields, so the OpenAPI, the validation and the domain agree by construction.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, or_

from app.domains.base.schemas import UTCDatetime, reject_nul

# Totals are counted up to this many rows; past it a page says `total_is_exact: false`. Counting
# every row for every page is what made lists slow down with the size of the table.
COUNT_CAP = 10_000
MAX_OFFSET = 1_000_000


class ListParams(BaseModel):
    """`order_by` is checked by the service against its `sortable_fields` (the API's enum)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=20, ge=1, le=100, description="Rows per page")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Rows to skip")
    search: str | None = Field(
        default=None, min_length=1, max_length=100, description="Case-insensitive substring of the searchable fields"
    )
    order_by: str = Field(default="created_at", description="Field to sort on (ties are broken by id)")
    sort_order: Literal["asc", "desc"] = Field(
        default="desc", description="The direction of `order_by`: `asc` (smallest or oldest first) or `desc`"
    )
    created_after: UTCDatetime = Field(default=None, description="Only rows created after this instant")
    created_before: UTCDatetime = Field(default=None, description="Only rows created before this instant")

    _no_nul = field_validator("search", mode="before")(reject_nul)

    def conditions(self, model: type[Any], search_fields: frozenset[str]) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.search:
            pattern = f"%{escape_like(self.search)}%"
            conditions.append(
                or_(*(getattr(model, name).ilike(pattern, escape="\\") for name in sorted(search_fields)))
            )
        if self.created_after is not None:
            conditions.append(model.created_at > self.created_after)
        if self.created_before is not None:
            conditions.append(model.created_at < self.created_before)
        return conditions


def escape_like(value: str) -> str:
    """`%`, `_` and `\\` match themselves, not any text."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class Page[T]:
    """One page of a list, and how many rows the whole list holds."""

    items: list[T]
    limit: Annotated[int, Field(description="The `limit` asked for: at most this many items")]
    offset: Annotated[int, Field(description="The `offset` asked for: the rows skipped before `items`")]
    total: Annotated[
        int,
        Field(description=f"Rows in the whole list, counted up to {COUNT_CAP}: past that, {COUNT_CAP} (inexact)"),
    ]
    total_is_exact: Annotated[bool, Field(description=f"False when the list holds more than {COUNT_CAP} rows")]

    def map[U](self, convert: Any) -> "Page[U]":
        return Page([convert(item) for item in self.items], self.limit, self.offset, self.total, self.total_is_exact)

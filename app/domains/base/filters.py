"""Pagination, search, sort and date-range parameters shared by every list operation."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from advanced_alchemy.filters import BeforeAfter, LimitOffset, OrderBy, SearchFilter, StatementFilter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _as_utc(value: datetime | None) -> datetime | None:
    """A naive datetime is read as UTC: the columns store aware UTC values."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


UTCDatetime = Annotated[datetime | None, AfterValidator(_as_utc)]


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0)
    search: str | None = Field(default=None, min_length=1, max_length=100)
    order_by: str = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    created_after: UTCDatetime = None
    created_before: UTCDatetime = None

    def to_filters(self, search_fields: frozenset[str] = frozenset()) -> list[StatementFilter]:
        """advanced-alchemy filters; `order_by` must already be checked against a whitelist."""
        filters: list[StatementFilter] = [
            LimitOffset(limit=self.limit, offset=self.offset),
            OrderBy(field_name=self.order_by, sort_order=self.sort_order),
            OrderBy(field_name="id", sort_order=self.sort_order),  # a stable order across pages
        ]
        if self.search:
            filters.append(SearchFilter(field_name=set(search_fields), value=self.search, ignore_case=True))
        if self.created_after or self.created_before:
            filters.append(BeforeAfter("created_at", before=self.created_before, after=self.created_after))
        return filters

"""A route that returns a table fails when it is declared: a table serialises every column (hashes
included), so handlers return Public schemas. Wherever the table hides in the return type."""

from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from app.api.route_decorators import get
from app.domains.base.lists import Page
from app.domains.users.models import APIKey, User
from app.domains.users.schemas import UserPublic


class UserWithKeys(BaseModel):
    user: UserPublic
    keys: list[APIKey]


@dataclass
class Report:
    count: int
    newest: User | None


@pytest.mark.parametrize(
    ("returned", "table"),
    [
        (User, User),
        (list[User], User),
        (Page[User], User),
        (User | None, User),
        (dict[str, tuple[APIKey, ...]], APIKey),
        (UserWithKeys, APIKey),
        (Page[UserWithKeys], APIKey),
        (Report, User),
    ],
    ids=str,
)
def test_a_table_anywhere_in_the_return_type_fails_at_declaration(returned: object, table: type) -> None:
    def handler() -> None: ...

    handler.__annotations__["return"] = returned
    with pytest.raises(TypeError, match=f"returns the table {table.__name__}; return its Public schema"):
        get("/", operation_id="leaky", public=True)(handler)


@pytest.mark.parametrize("returned", [UserPublic, list[UserPublic], Page[UserPublic], None, dict[str, int]], ids=str)
def test_public_schemas_and_plain_values_are_accepted(returned: object) -> None:
    def handler() -> None: ...

    handler.__annotations__["return"] = returned
    assert get("/", operation_id="fine", public=True)(handler).handler_name == "handler"

"""A throwaway table and its service for tests of the base service and of the API's problems.

`Gadget` lives in a metadata of its own, never in the app's (so Alembic's drift check never sees
it); `gadgets_table` creates it for one test and drops it after. Its service has README's
"Adding a domain" hook, which takes the owner from the actor: under `Actor.system()` that is no user.
"""

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import CheckConstraint
from sqlalchemy.orm import registry

from app.domains.base.models import TableBase
from app.domains.base.policies import OwnedBy
from app.domains.base.repository import Repository
from app.domains.base.service import Service
from app.infrastructure.database import Database


class Scratch(TableBase, registry=registry()):
    """Tables of this module only: their own metadata, not the app's."""


class Gadget(Scratch, table=True):
    __tablename__ = "scratch_gadgets"
    __table_args__ = (CheckConstraint("length(name) > 0", name="ck_scratch_gadgets_name_not_blank"),)
    name: str
    owner_id: UUID  # NOT NULL


class GadgetRepository(Repository[Gadget]):
    model_type = Gadget


class GadgetService(Service[Gadget]):
    repository_type = GadgetRepository
    policy = OwnedBy("owner_id")
    received: list[Any]

    def to_model_on_create(self, data: Any) -> Any:
        type(self).received.append(data)
        return {**data, "owner_id": self.actor.user_id}  # README's "Adding a domain" hook


@pytest.fixture
def gadgets_table(database: Database) -> Iterator[None]:
    Scratch.metadata.create_all(database.engine)
    GadgetService.received = []
    yield
    Scratch.metadata.drop_all(database.engine)

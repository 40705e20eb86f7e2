"""Factories for tests and seed data: realistic rows without hand-built dictionaries."""

from polyfactory import Use
from uuid_utils.compat import uuid7

from app.domains.base.authorization import Role
from app.domains.base.factory import TableFactory
from app.domains.users.models import User


class UserFactory(TableFactory[User]):
    __model__ = User

    id = Use(uuid7)
    email = Use(lambda: f"user-{uuid7().hex[-12:]}@example.com")
    clerk_id = None
    clerk_updated_at = None
    first_name = Use(TableFactory.__faker__.first_name)
    last_name = Use(TableFactory.__faker__.last_name)
    image_url = None
    role = Role.MEMBER
    is_active = True
    deleted_at = None

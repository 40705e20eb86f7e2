"""Test-data factories (polyfactory, a dev dependency): realistic rows without hand-built dicts."""

from typing import Any, Generic, TypeVar

from polyfactory import Use
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from uuid_utils.compat import uuid7

from app.domains.base.actors import Role
from app.domains.base.models import TableBase, utcnow
from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project, ProjectStatus
from app.domains.users.models import User

T = TypeVar("T", bound=TableBase)


class TableFactory(SQLAlchemyFactory[T], Generic[T]):
    """Build rows with `build()`; tests add them through a real session."""

    __is_base_factory__ = True
    __set_relationships__ = False
    __check_model__ = False

    @classmethod
    def created_at(cls) -> Any:
        return utcnow()

    @classmethod
    def updated_at(cls) -> Any:
        return utcnow()


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


class OrganizationFactory(TableFactory[Organization]):
    __model__ = Organization

    id = Use(uuid7)
    clerk_id = Use(lambda: f"org_{uuid7().hex}")
    name = Use(TableFactory.__faker__.company)
    slug = None
    image_url = None
    clerk_updated_at = None
    deleted_at = None


class MembershipFactory(TableFactory[Membership]):
    __model__ = Membership

    id = Use(uuid7)
    role = "member"
    clerk_id = Use(lambda: f"orgmem_{uuid7().hex}")
    clerk_created_at = None
    clerk_updated_at = None
    deleted_at = None


class ProjectFactory(TableFactory[Project]):
    __model__ = Project

    id = Use(uuid7)
    name = Use(lambda: TableFactory.__faker__.catch_phrase()[:200])
    description = None
    status = ProjectStatus.DRAFT
    created_by = None

"""Repositories of the organizations domain."""

from app.domains.base.repository import Repository
from app.domains.organizations.models import Membership, Organization


class OrganizationRepository(Repository[Organization]):
    model_type = Organization


class MembershipRepository(Repository[Membership]):
    model_type = Membership

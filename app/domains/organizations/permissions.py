"""What the organizations domain lets a credential do. Registered with the base registry on import."""

from enum import StrEnum

from app.domains.base.permissions import permissions


@permissions.register
class OrganizationPermission(StrEnum):
    ORGANIZATIONS_READ = "organizations:read"

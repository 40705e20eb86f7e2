"""What the projects domain lets a credential do. Registered with the base registry on import."""

from enum import StrEnum

from app.domains.base.permissions import permissions


@permissions.register
class ProjectPermission(StrEnum):
    PROJECTS_READ = "projects:read"
    PROJECTS_WRITE = "projects:write"

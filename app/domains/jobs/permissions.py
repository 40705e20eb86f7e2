"""What the jobs domain lets a credential do. Registered with the base registry on import."""

from enum import StrEnum

from app.domains.base.permissions import permissions


@permissions.register
class JobPermission(StrEnum):
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"  # start jobs (an export, say)

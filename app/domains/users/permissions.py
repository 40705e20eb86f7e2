"""What the users domain lets a credential do. Registered with the base registry on import."""

from enum import StrEnum

from app.domains.base.permissions import permissions


@permissions.register
class UserPermission(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"

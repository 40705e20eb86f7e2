"""Permissions: what a credential may do ("users:read"). Each domain declares its own.

A domain lists its permissions in a `StrEnum` and registers it here when its package is imported
(`app/models.py` imports every domain). API-key scopes and route requirements are validated against
this registry, so adding a domain never means editing another domain's list.
"""

from collections.abc import Iterable
from enum import StrEnum


class PermissionRegistry:
    def __init__(self) -> None:
        self._names: set[str] = set()

    def register[E: type[StrEnum]](self, permissions: E) -> E:
        """Register every member of a domain's permission enum (usable as a class decorator)."""
        for permission in permissions:
            if ":" not in permission.value:
                raise ValueError(f"permission {permission.value!r} must read '<domain>:<action>'")
            self._names.add(permission.value)
        return permissions

    def all(self) -> frozenset[str]:
        return frozenset(self._names)

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names that no domain declares, sorted (empty when every name is known)."""
        return sorted(set(names) - self._names)


permissions = PermissionRegistry()

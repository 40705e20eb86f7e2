"""A fake of Clerk's Backend API for the clerk-reconciliation tests, served over real HTTP by
`tests.clerk_helpers.json_server` (the fixtures are in tests/workers/conftest.py).

It speaks the shapes of the real one: `GET /v1/users` answers a JSON array; the organizations'
endpoints answer `{"data": [...], "total_count": N}`, and 404 for an id Clerk does not have.
"""

import dataclasses
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.clerk_helpers import user_event

SECRET_KEY = "sk_test_reconciliation0123456789"
T0 = 1_735_689_600_000  # Clerk times are Unix milliseconds

Script = list[tuple[int, dict[str, str]]]


def clerk_user(n: int, updated: int = 0, email: str | None = None, **fields: Any) -> dict[str, Any]:
    """A Clerk User object, as GET /users lists it."""
    fields.setdefault("first_name", f"First{n}")
    fields.setdefault("created_at", T0 + n * 1000)
    return user_event("user.created", f"user_{n:03d}", T0 + n * 1000 + updated, email or f"u{n}@example.com", **fields)[
        "data"
    ]


def clerk_organization(n: int, updated: int = 0, **fields: Any) -> dict[str, Any]:
    """A Clerk Organization object, as GET /organizations lists it (`org_00n`)."""
    return {
        "object": "organization",
        "id": f"org_{n:03d}",
        "name": f"Organization {n}",
        "slug": f"organization-{n}",
        "image_url": f"https://img.clerk.com/org{n}",
        "has_image": True,
        "max_allowed_memberships": 5,
        "admin_delete_enabled": True,
        "public_metadata": {},
        "private_metadata": {},
        "created_by": "user_000",
        "created_at": T0 + n * 1000,
        "updated_at": T0 + n * 1000 + updated,
        **fields,
    }


def clerk_membership(
    organization: dict[str, Any], user: int, role: str = "org:member", updated: int = 0, **fields: Any
) -> dict[str, Any]:
    """A Clerk OrganizationMembership object (`orgmem_<org>_<user>`): it embeds its organization
    and its user's public data."""
    created_at = organization["created_at"] + user * 10
    return {
        "object": "organization_membership",
        "id": f"orgmem_{organization['id'].removeprefix('org_')}_{user:03d}",
        "role": role,
        "role_name": role.removeprefix("org:").title(),
        "permissions": [],
        "public_metadata": {},
        "private_metadata": {},
        "organization": organization,
        "public_user_data": {
            "user_id": f"user_{user:03d}",
            "first_name": f"First{user}",
            "last_name": None,
            "image_url": f"https://img.clerk.com/user{user}",
            "has_image": True,
            "identifier": f"u{user}@example.com",
        },
        "created_at": created_at,
        "updated_at": created_at + updated,
        **fields,
    }


@dataclasses.dataclass
class FakeClerk:
    """Clerk's `GET /v1/users` (limit/offset paging, the `user_id` filter), `GET /v1/organizations`,
    `GET /v1/organizations/{id}`, `GET /v1/organizations/{id}/memberships` and
    `GET /v1/users/{id}/organization_memberships`; the bearer key checked."""

    url: str
    users: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # in listing order
    hidden: set[str] = dataclasses.field(default_factory=set)  # exist, but the listings skip them
    script: Script = dataclasses.field(default_factory=list)  # served first, whatever the path
    fail_from_offset: int | None = None  # users' listing pages from there on always answer 503
    delay: float = 0.0  # before answering the next request (once)
    requests: list[dict[str, list[str]]] = dataclasses.field(default_factory=list)  # to /v1/users
    organizations: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # in listing order
    memberships: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)  # by organization id
    scripts: dict[str, Script] = dataclasses.field(default_factory=dict)  # served first on that path
    broken: dict[str, int] = dataclasses.field(default_factory=dict)  # path -> always 500 from this offset on
    calls: list[tuple[str, dict[str, list[str]]]] = dataclasses.field(default_factory=list)  # every request

    def offsets(self, path: str = "/v1/users") -> list[int]:
        queries = self.requests if path == "/v1/users" else [query for at, query in self.calls if at == path]
        return [int(query["offset"][0]) for query in queries if "offset" in query]

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]

    def add_members(self, organization: dict[str, Any], *users: int, role: str = "org:member") -> None:
        self.memberships.setdefault(organization["id"], []).extend(
            clerk_membership(organization, user, role) for user in users
        )

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], Any]:
        split = urlsplit(path)
        if authorization != f"Bearer {SECRET_KEY}":
            return 401, {}, {"errors": [{"message": "Unauthorized request", "code": "authentication_invalid"}]}
        query = parse_qs(split.query)
        self.calls.append((split.path, query))
        if split.path == "/v1/users":
            self.requests.append(query)
        delay, self.delay = self.delay, 0.0
        time.sleep(delay)
        scripted = self.script or self.scripts.get(split.path)
        if scripted:
            status, headers = scripted.pop(0)
            return status, headers, {"errors": [{"message": f"scripted {status}"}]}
        offset = int(query.get("offset", ["0"])[0])
        if split.path in self.broken and offset >= self.broken[split.path]:
            return 500, {}, {"errors": [{"message": "internal server error"}]}
        return self._resource(split.path.removeprefix("/v1/").split("/"), query)

    def _resource(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        limit, offset = int(query.get("limit", ["10"])[0]), int(query.get("offset", ["0"])[0])
        organizations = {organization["id"]: organization for organization in self.organizations}
        match parts:
            case ["users"]:
                answer = self._users(query, limit, offset)
            case ["organizations"]:
                listed = [organization for organization in self.organizations if organization["id"] not in self.hidden]
                answer = 200, {}, _paginated(listed, limit, offset)
            case ["organizations", organization_id] if organization_id in organizations:
                answer = 200, {}, organizations[organization_id]
            case ["organizations", organization_id, "memberships"] if organization_id in organizations:
                memberships = self.memberships.get(organization_id, [])
                answer = 200, {}, _paginated([m for m in memberships if m["id"] not in self.hidden], limit, offset)
            case ["users", user_id, "organization_memberships"] if any(user["id"] == user_id for user in self.users):
                everyone = [membership for memberships in self.memberships.values() for membership in memberships]
                mine = [m for m in everyone if m["public_user_data"]["user_id"] == user_id]
                answer = 200, {}, _paginated(mine, limit, offset)
            case _:
                answer = 404, {}, {"errors": [{"message": "not found", "code": "resource_not_found"}]}
        return answer

    def _users(self, query: dict[str, list[str]], limit: int, offset: int) -> tuple[int, dict[str, str], Any]:
        if "user_id" in query:
            wanted = set(query["user_id"])
            return 200, {}, [user for user in self.users if user["id"] in wanted][:limit]
        if self.fail_from_offset is not None and offset >= self.fail_from_offset:
            return 503, {}, {"errors": [{"message": "service unavailable"}]}
        listed = [user for user in self.users if user["id"] not in self.hidden]
        return 200, {}, listed[offset : offset + limit]


def _paginated(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    return {"data": items[offset : offset + limit], "total_count": len(items)}

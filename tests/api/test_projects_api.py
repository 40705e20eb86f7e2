"""/api/projects over HTTP: input validation, app admins' choice of organization, list parameters
and key scopes. (Who reaches which project: tests/api/test_tenant_idor.py.)"""

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from app.domains.base.actors import Role
from app.domains.base.models import utcnow
from app.domains.organizations.models import Organization
from app.domains.projects.models import Project, ProjectStatus


@pytest.fixture
def org(make_organization: Callable[..., Organization]) -> Organization:
    return make_organization(name="Acme")


@pytest.fixture
def admin_headers(org: Organization, as_member: Callable[..., tuple[Any, dict]]) -> dict[str, str]:
    """An admin of `org`, through a key bound to it."""
    return as_member(org, "admin")[1]


def error_keys(response: Any) -> list[str]:
    return [error.get("key") for error in response.json()["errors"]]


# body -> the field the 400 names
INVALID_CREATES: dict[str, tuple[dict[str, Any], str]] = {
    "no name": ({}, "name"),
    "empty name": ({"name": ""}, "name"),
    "name of 201 characters": ({"name": "n" * 201}, "name"),
    "null name": ({"name": None}, "name"),
    "name not a string": ({"name": 7}, "name"),
    "NUL in name": ({"name": "nu\x00l"}, "name"),
    "description of 2001 characters": ({"name": "ok", "description": "d" * 2001}, "description"),
    "NUL in description": ({"name": "ok", "description": "\x00"}, "description"),
    "unknown status": ({"name": "ok", "status": "deleted"}, "status"),
    "status in capitals": ({"name": "ok", "status": "DRAFT"}, "status"),
    "unknown field": ({"name": "ok", "colour": "red"}, "colour"),
    "author": ({"name": "ok", "created_by": str(UUID(int=1))}, "created_by"),
    "id": ({"name": "ok", "id": str(UUID(int=1))}, "id"),
    "organization_id not a uuid": ({"name": "ok", "organization_id": "acme"}, "organization_id"),
}

INVALID_CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "null name": ({"name": None}, "name"),
    "null status": ({"status": None}, "status"),
    "empty name": ({"name": ""}, "name"),
    "name of 201 characters": ({"name": "n" * 201}, "name"),
    "NUL in name": ({"name": "a\x00"}, "name"),
    "description of 2001 characters": ({"description": "d" * 2001}, "description"),
    "unknown status": ({"status": "deleted"}, "status"),
    "unknown field": ({"colour": "red"}, "colour"),
    "organization": ({"organization_id": str(UUID(int=1))}, "organization_id"),
    "author": ({"created_by": str(UUID(int=1))}, "created_by"),
}


@pytest.mark.parametrize("case", INVALID_CREATES)
def test_invalid_creates_are_400_naming_the_field(client: TestClient, admin_headers: dict[str, str], case: str) -> None:
    body, field = INVALID_CREATES[case]
    response = client.post("/api/projects", headers=admin_headers, json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert error_keys(response) == [field], response.json()
    assert client.get("/api/projects", headers=admin_headers).json()["total"] == 0


@pytest.mark.parametrize("case", INVALID_CHANGES)
def test_invalid_changes_are_400_naming_the_field(
    client: TestClient, org: Organization, admin_headers: dict[str, str], make_project: Callable, case: str
) -> None:
    body, field = INVALID_CHANGES[case]
    project = make_project(org, name="kept", status=ProjectStatus.ACTIVE)
    response = client.patch(f"/api/projects/{project.id}", headers=admin_headers, json=body)
    assert response.status_code == 400, response.text
    assert error_keys(response) == [field], response.json()
    after = client.get(f"/api/projects/{project.id}", headers=admin_headers).json()
    assert (after["name"], after["status"], after["organization_id"]) == ("kept", "active", str(org.id))


def test_the_bounds_themselves_are_accepted(
    client: TestClient, org: Organization, admin_headers: dict[str, str]
) -> None:
    body = {"name": "ń" * 200, "description": "d" * 2000, "status": "active"}
    created = client.post("/api/projects", headers=admin_headers, json=body)
    assert created.status_code == 201, created.text
    project = created.json()
    assert {name: project[name] for name in body} == body
    assert project["organization_id"] == str(org.id)
    # A change sets only what it names; description (optional) may be cleared with null.
    changed = client.patch(f"/api/projects/{project['id']}", headers=admin_headers, json={"description": None})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["description"], changed.json()["status"]) == (
        "ń" * 200,
        None,
        "active",
    )
    assert client.patch(f"/api/projects/{project['id']}", headers=admin_headers, json={}).json()["name"] == "ń" * 200


def test_a_new_project_is_a_draft_created_by_the_caller(
    client: TestClient, org: Organization, as_member: Callable[..., tuple[Any, dict]]
) -> None:
    user, headers = as_member(org, "admin")
    project = client.post("/api/projects", headers=headers, json={"name": "fresh"}).json()
    assert (project["status"], project["created_by"], project["description"]) == ("draft", str(user.id), None)


# -- app admins choose the organization -------------------------------------------------------


def test_an_app_admin_without_an_active_organization_must_name_one(
    client: TestClient, org: Organization, as_user: Callable[..., tuple[Any, dict]]
) -> None:
    _, headers = as_user(role=Role.ADMIN)
    response = client.post("/api/projects", headers=headers, json={"name": "nowhere"})
    assert response.status_code == 422, response.text
    assert error_keys(response) == ["organization_id"]
    named = client.post("/api/projects", headers=headers, json={"name": "somewhere", "organization_id": str(org.id)})
    assert (named.status_code, named.json()["organization_id"]) == (201, str(org.id))


@pytest.mark.parametrize("which", ["deleted", "unknown"])
def test_an_app_admin_cannot_create_in_a_deleted_or_unknown_organization(
    client: TestClient,
    make_organization: Callable[..., Organization],
    as_user: Callable[..., tuple[Any, dict]],
    make_api_key: Callable[..., str],
    which: str,
) -> None:
    admin, personal = as_user(role=Role.ADMIN)
    live = make_organization()
    target = make_organization(deleted_at=utcnow()).id if which == "deleted" else UUID(int=42)
    bound = {"X-API-Key": make_api_key(admin, organization=live)}  # with an active organization too
    for headers in (personal, bound):
        response = client.post("/api/projects", headers=headers, json={"name": "x", "organization_id": str(target)})
        assert response.status_code == 422, response.text
        assert error_keys(response) == ["organization_id"]
    listed = client.get("/api/projects", headers=personal).json()
    assert listed["total"] == 0


# -- list parameters --------------------------------------------------------------------------

NAMES = ["alpha", "bravo", "charlie 100%", "delta_x", "echo"]
STATUSES = ["active", "draft", "archived", "draft", "active"]


@pytest.fixture
def listed_projects(
    org: Organization, make_organization: Callable[..., Organization], make_project: Callable[..., Project]
) -> dict[str, Project]:
    """Five projects of `org`, and another organization's with the same names (never listed)."""
    other = make_organization()
    projects = {}
    for name, status in zip(NAMES, STATUSES, strict=True):
        projects[name] = make_project(org, name=name, status=ProjectStatus(status))
        make_project(other, name=name, status=ProjectStatus(status))
    return projects


def names(client: TestClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = client.get("/api/projects", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


@pytest.mark.usefixtures("listed_projects")
def test_search_is_a_case_insensitive_substring_of_the_name(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert names(client, admin_headers, search="ALPH") == ["alpha"]
    assert sorted(names(client, admin_headers, search="a")) == ["alpha", "bravo", "charlie 100%", "delta_x"]
    assert names(client, admin_headers, search="%") == ["charlie 100%"]  # LIKE's wildcards match themselves
    assert names(client, admin_headers, search="_") == ["delta_x"]
    assert names(client, admin_headers, search="zulu") == []
    response = client.get("/api/projects", headers=admin_headers, params={"search": "a"})
    assert response.json()["total"] == 4


@pytest.mark.usefixtures("listed_projects")
def test_order_by_name_and_status_both_ways(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert names(client, admin_headers, order_by="name", sort_order="asc") == NAMES
    assert names(client, admin_headers, order_by="name", sort_order="desc") == NAMES[::-1]
    response = client.get("/api/projects", headers=admin_headers, params={"order_by": "status", "sort_order": "asc"})
    statuses = [item["status"] for item in response.json()["items"]]
    assert statuses == ["active", "active", "archived", "draft", "draft"]
    response = client.get("/api/projects", headers=admin_headers, params={"order_by": "status", "sort_order": "desc"})
    assert [item["status"] for item in response.json()["items"]] == ["draft", "draft", "archived", "active", "active"]


def test_the_default_order_is_newest_first(
    client: TestClient, listed_projects: dict[str, Project], admin_headers: dict[str, str]
) -> None:
    expected = [p.name for p in sorted(listed_projects.values(), key=lambda p: (p.created_at, p.id), reverse=True)]
    assert names(client, admin_headers) == expected


@pytest.mark.usefixtures("listed_projects")
def test_limit_and_offset_page_through_the_tenants_rows(client: TestClient, admin_headers: dict[str, str]) -> None:
    page = client.get(
        "/api/projects",
        headers=admin_headers,
        params={"order_by": "name", "sort_order": "asc", "limit": 2, "offset": 1},
    ).json()
    assert ([item["name"] for item in page["items"]], page["limit"], page["offset"]) == (NAMES[1:3], 2, 1)
    assert (page["total"], page["total_is_exact"]) == (5, True)
    assert names(client, admin_headers, order_by="name", sort_order="asc", offset=4, limit=10) == ["echo"]
    assert names(client, admin_headers, offset=5) == []


@pytest.mark.parametrize(
    "params",
    [
        {"order_by": "organization_id"},
        {"order_by": "description"},
        {"order_by": "created_by"},
        {"sort_order": "sideways"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"search": ""},
        {"search": "x" * 101},
        {"search": "a\x00"},
    ],
    ids=repr,
)
def test_bad_list_parameters_are_400_naming_the_parameter(
    client: TestClient, admin_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = client.get("/api/projects", headers=admin_headers, params=params)
    assert response.status_code == 400, response.text
    assert error_keys(response) == list(params), response.json()


# -- scopes -----------------------------------------------------------------------------------


def test_a_read_scoped_key_of_an_admin_cannot_write(
    client: TestClient, org: Organization, as_member: Callable[..., tuple[Any, dict]], make_project: Callable
) -> None:
    _, headers = as_member(org, "admin", scopes=["projects:read"])
    project = make_project(org, name="untouched")
    assert client.get(f"/api/projects/{project.id}", headers=headers).status_code == 200
    for response in (
        client.post("/api/projects", headers=headers, json={"name": "x"}),
        client.patch(f"/api/projects/{project.id}", headers=headers, json={"name": "x"}),
        client.delete(f"/api/projects/{project.id}", headers=headers),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["required_permission"] == "projects:write"
    assert client.get(f"/api/projects/{project.id}", headers=headers).json()["name"] == "untouched"


def test_a_key_without_project_scopes_reads_none(
    client: TestClient, org: Organization, as_member: Callable[..., tuple[Any, dict]], make_project: Callable
) -> None:
    _, headers = as_member(org, "admin", scopes=["users:read"])
    project = make_project(org)
    for response in (
        client.get("/api/projects", headers=headers),
        client.get(f"/api/projects/{project.id}", headers=headers),
    ):
        assert (response.status_code, response.json()["required_permission"]) == (403, "projects:read")
    response = client.get("/api/organizations", headers=headers)
    assert (response.status_code, response.json()["required_permission"]) == (403, "organizations:read")


def test_a_write_scoped_key_cannot_read_but_writes(
    client: TestClient, org: Organization, as_member: Callable[..., tuple[Any, dict]]
) -> None:
    """Scopes are not nested: projects:write does not imply projects:read."""
    _, headers = as_member(org, "admin", scopes=["projects:write"])
    created = client.post("/api/projects", headers=headers, json={"name": "blind"})
    assert created.status_code == 201, created.text
    response = client.get(f"/api/projects/{created.json()['id']}", headers=headers)
    assert (response.status_code, response.json()["required_permission"]) == (403, "projects:read")

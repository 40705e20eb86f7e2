"""API keys and organizations over HTTP: a key created while an organization is active is bound to
it, and acts there with the role its owner holds at the time of use. Memberships and organizations
change through signed Clerk webhooks, as in production."""

import json
from collections.abc import Callable
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domains.base.actors import Role
from app.domains.base.models import utcnow
from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project
from app.domains.users.models import User
from tests.clerk_helpers import SESSION_KEY, bearer, organization_claim, svix_headers

CREATED_AT = 1_700_000_000_000  # Clerk's milliseconds


def deliver(client: TestClient, event: dict[str, Any]) -> None:
    body = json.dumps(event)
    response = client.post(
        "/webhooks/clerk", content=body, headers={**svix_headers(body), "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed", response.json()


def membership_event(event_type: str, org: str, user: str, role: str, updated_at: int) -> dict[str, Any]:
    """An organizationMembership.* envelope shaped like Clerk's (see tests/data/clerk)."""
    organization = {"id": org, "object": "organization", "name": "Keyed Inc", "slug": "keyed", "public_metadata": {}}
    data = {
        "id": f"orgmem_{org}_{user}",
        "object": "organization_membership",
        "role": role,
        "created_at": CREATED_AT,
        "updated_at": updated_at,
        "organization": {**organization, "created_at": CREATED_AT, "updated_at": CREATED_AT},
        "public_user_data": {"user_id": user, "first_name": "Kim", "last_name": "Lee", "identifier": "kim@example.com"},
    }
    return {"data": data, "object": "event", "type": event_type, "timestamp": updated_at}


def organization_deleted(org: str) -> dict[str, Any]:
    data = {"deleted": True, "id": org, "object": "organization"}
    return {"data": data, "object": "event", "type": "organization.deleted", "timestamp": CREATED_AT + 10_000}


def joined(client: TestClient, session: Session, org: str, user: str, role: str) -> tuple[Organization, User]:
    """The user joins the organization (Clerk's webhook): both rows, as the sync made them."""
    deliver(client, membership_event("organizationMembership.created", org, user, role, CREATED_AT))
    session.expire_all()
    organization = session.scalars(select(Organization).where(Organization.clerk_id == org)).one()
    return organization, session.scalars(select(User).where(User.clerk_id == user)).one()


def test_a_key_created_while_an_organization_is_active_is_bound_to_it(
    clerk_client: TestClient,
    session: Session,
    make_project: Callable[..., Project],
    make_organization: Callable[..., Organization],
) -> None:
    org, _ = joined(clerk_client, session, "org_keyed", "user_keyed", "org:admin")
    other = make_organization()
    mine, theirs = make_project(org), make_project(other)
    in_org = bearer(SESSION_KEY.mint(sub="user_keyed", o=organization_claim("org_keyed", "admin", slug="keyed")))
    no_org = bearer(SESSION_KEY.mint(sub="user_keyed"))

    from_token = clerk_client.post("/api/api-keys", headers=in_org, json={"name": "from a session"})
    assert from_token.status_code == 201, from_token.text
    assert from_token.json()["organization_id"] == str(org.id)
    key_headers = {"X-API-Key": from_token.json()["key"]}
    from_key = clerk_client.post("/api/api-keys", headers=key_headers, json={"name": "from the bound key"})
    assert from_key.status_code == 201, from_key.text
    assert from_key.json()["organization_id"] == str(org.id)
    personal = clerk_client.post("/api/api-keys", headers=no_org, json={"name": "no organization active"})
    assert personal.json()["organization_id"] is None

    listed = clerk_client.get("/api/api-keys", headers=no_org).json()["items"]
    bindings = {item["name"]: item["organization_id"] for item in listed}
    assert bindings == {
        "from a session": str(org.id),
        "from the bound key": str(org.id),
        "no organization active": None,
    }
    # The key from the key acts in the organization, as an admin of it.
    child = {"X-API-Key": from_key.json()["key"]}
    assert [p["id"] for p in clerk_client.get("/api/projects", headers=child).json()["items"]] == [str(mine.id)]
    assert clerk_client.get(f"/api/projects/{theirs.id}", headers=child).status_code == 404
    assert clerk_client.patch(f"/api/projects/{mine.id}", headers=child, json={"name": "renamed"}).status_code == 200


def test_a_bound_key_acts_with_its_owners_current_role(
    clerk_client: TestClient,
    session: Session,
    make_project: Callable[..., Project],
    make_api_key: Callable[..., str],
) -> None:
    org, user = joined(clerk_client, session, "org_roles", "user_roles", "org:admin")
    project = make_project(org)
    headers = {"X-API-Key": make_api_key(user, organization=org)}

    assert (
        clerk_client.patch(f"/api/projects/{project.id}", headers=headers, json={"name": "as admin"}).status_code == 200
    )

    # Demoted in Clerk: the same key now reads only.
    deliver(
        clerk_client,
        membership_event("organizationMembership.updated", "org_roles", "user_roles", "org:member", CREATED_AT + 1),
    )
    refused = clerk_client.patch(f"/api/projects/{project.id}", headers=headers, json={"name": "as member"})
    assert (refused.status_code, refused.json()["reason"]) == (403, "organization_role")
    assert clerk_client.delete(f"/api/projects/{project.id}", headers=headers).status_code == 403
    created = clerk_client.post("/api/projects", headers=headers, json={"name": "new"})
    assert (created.status_code, created.json()["reason"]) == (403, "organization_role")
    assert clerk_client.get(f"/api/projects/{project.id}", headers=headers).json()["name"] == "as admin"

    # Promoted again: writes again.
    deliver(
        clerk_client,
        membership_event("organizationMembership.updated", "org_roles", "user_roles", "org:admin", CREATED_AT + 2),
    )
    assert clerk_client.patch(f"/api/projects/{project.id}", headers=headers, json={"name": "again"}).status_code == 200

    # Removed from the organization: the key stops at once (it was just used, and remembered).
    deliver(
        clerk_client,
        membership_event("organizationMembership.deleted", "org_roles", "user_roles", "org:admin", CREATED_AT + 3),
    )
    for response in (
        clerk_client.get(f"/api/projects/{project.id}", headers=headers),
        clerk_client.get("/api/projects", headers=headers),
        clerk_client.get("/api/users/me", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert "no longer a member" in response.json()["detail"]


def test_an_ended_membership_stops_its_keys_whatever_ended_it(
    clerk_client: TestClient,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    make_api_key: Callable[..., str],
    session: Session,
) -> None:
    """A membership ended without a webhook (the reconciliation sets `deleted_at`) counts the same."""
    org, user = make_organization(), make_user()
    make_membership(org, user, "admin")
    headers = {"X-API-Key": make_api_key(user, organization=org)}
    assert clerk_client.get("/api/projects", headers=headers).status_code == 200
    session.execute(update(Membership).where(Membership.user_id == user.id).values(deleted_at=utcnow()))
    session.commit()
    assert clerk_client.get("/api/projects", headers=headers).status_code == 401


def test_a_deleted_organization_revokes_its_keys(
    clerk_client: TestClient,
    session: Session,
    make_project: Callable[..., Project],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    make_api_key: Callable[..., str],
) -> None:
    org, user = joined(clerk_client, session, "org_doomed", "user_doomed", "org:admin")
    survivor = make_organization()
    make_membership(survivor, user, "admin")
    project, kept = make_project(org), make_project(survivor)
    doomed_key = {"X-API-Key": make_api_key(user, organization=org)}
    other_key = {"X-API-Key": make_api_key(user, organization=survivor)}
    personal = {"X-API-Key": make_api_key(user)}
    assert clerk_client.get(f"/api/projects/{project.id}", headers=doomed_key).status_code == 200

    deliver(clerk_client, organization_deleted("org_doomed"))

    response = clerk_client.get(f"/api/projects/{project.id}", headers=doomed_key)
    assert response.status_code == 401
    assert response.json()["detail"] == "API key revoked"
    keys = {
        item["organization_id"]: item for item in clerk_client.get("/api/api-keys", headers=personal).json()["items"]
    }
    assert keys[str(org.id)]["revoked_at"] is not None
    assert keys[str(survivor.id)]["revoked_at"] is None
    assert keys[None]["revoked_at"] is None
    # The other organization's key is untouched, and the deleted organization's project is out of reach.
    assert clerk_client.get(f"/api/projects/{kept.id}", headers=other_key).status_code == 200
    assert clerk_client.get(f"/api/projects/{project.id}", headers=other_key).status_code == 404


def test_a_personal_key_reaches_no_organizations_project(
    clerk_client: TestClient,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    make_project: Callable[..., Project],
    make_api_key: Callable[..., str],
) -> None:
    user = make_user()
    orgs = [make_organization(), make_organization()]
    for org in orgs:
        make_membership(org, user, "admin")  # an admin of both, yet its personal key is of neither
    projects = [make_project(org) for org in orgs]
    headers = {"X-API-Key": make_api_key(user)}

    listed = clerk_client.get("/api/projects", headers=headers).json()
    assert (listed["items"], listed["total"]) == ([], 0)
    for project in projects:
        assert clerk_client.get(f"/api/projects/{project.id}", headers=headers).status_code == 404
        assert clerk_client.patch(f"/api/projects/{project.id}", headers=headers, json={"name": "x"}).status_code == 404
        assert clerk_client.delete(f"/api/projects/{project.id}", headers=headers).status_code == 404
    for body in ({"name": "x"}, {"name": "x", "organization_id": str(orgs[0].id)}):
        created = clerk_client.post("/api/projects", headers=headers, json=body)
        assert (created.status_code, created.json()["reason"]) == (403, "no_active_organization")
    # It still lists the organizations its user belongs to (to choose one).
    organizations = clerk_client.get("/api/organizations", headers=headers).json()["items"]
    assert {item["id"] for item in organizations} == {str(org.id) for org in orgs}


def test_an_app_admins_keys_reach_every_organizations_projects(
    clerk_client: TestClient,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_project: Callable[..., Project],
    make_api_key: Callable[..., str],
) -> None:
    admin = make_user(role=Role.ADMIN)  # a member of no organization
    a, b = make_organization(), make_organization()
    projects = {a.id: make_project(a), b.id: make_project(b)}
    for bound_to in (None, a):
        headers = {"X-API-Key": make_api_key(admin, organization=bound_to)}
        listed = clerk_client.get("/api/projects?limit=100", headers=headers).json()["items"]
        assert {item["id"] for item in listed} >= {str(project.id) for project in projects.values()}, bound_to
        for org_id, project in projects.items():
            changed = clerk_client.patch(f"/api/projects/{project.id}", headers=headers, json={"status": "active"})
            assert changed.status_code == 200, (bound_to, changed.text)
            created = clerk_client.post(
                "/api/projects", headers=headers, json={"name": "x", "organization_id": str(org_id)}
            )
            assert (created.status_code, created.json()["organization_id"]) == (201, str(org_id))
    # The bound key creates in its organization by default; the personal one must name one.
    bound = {"X-API-Key": make_api_key(admin, organization=b)}
    assert clerk_client.post("/api/projects", headers=bound, json={"name": "y"}).json()["organization_id"] == str(b.id)
    unbound = clerk_client.post("/api/projects", headers={"X-API-Key": make_api_key(admin)}, json={"name": "y"})
    assert unbound.status_code == 422, unbound.text
    assert [error["key"] for error in unbound.json()["errors"]] == ["organization_id"]

"""The `o` claim of Clerk session tokens (v2) over HTTP: the active organization and the role in it.

Tokens are real RS256 JWTs; organizations and memberships unknown here are created from the claim,
deleted ones refuse the request, and a claim that is not what Clerk sends is a 401, never a 500.
"""

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.base.models import utcnow
from app.domains.organizations.clerk_organization_reconciliation import ClerkOrganizationReconciliation
from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project
from app.domains.users.models import User
from tests.clerk_helpers import SESSION_KEY, bearer, organization_claim, svix_headers


def as_session(sub: str, o: Any = None, **claims: Any) -> dict[str, str]:
    return bearer(SESSION_KEY.mint(sub=sub, o=o, **claims))


def stored(session: Session, clerk_id: str) -> tuple[Organization, list[Membership]]:
    session.expire_all()
    organization = session.scalars(select(Organization).where(Organization.clerk_id == clerk_id)).one()
    memberships = session.scalars(select(Membership).where(Membership.organization_id == organization.id)).all()
    return organization, list(memberships)


# rol as the token says it -> the stored role, and whether it lets the member change the organization's data.
ROLES = {
    "admin": ("admin", True),
    "org:admin": ("admin", True),
    "member": ("member", False),
    "org:member": ("member", False),
    "basic_member": ("member", False),
    "org:billing_manager": ("org:billing_manager", False),  # a custom role is kept as Clerk names it
    "viewer": ("viewer", False),
}


@pytest.mark.parametrize("rol", ROLES)
def test_an_unknown_organization_and_membership_are_created_from_the_claim(
    clerk_client: TestClient, session: Session, rol: str
) -> None:
    role, writes = ROLES[rol]
    headers = as_session("user_newcomer", organization_claim("org_newco", rol, slug="new-co"))

    listed = clerk_client.get("/api/organizations", headers=headers)  # the very first request: a read
    assert listed.status_code == 200, listed.text
    [organization] = listed.json()["items"]
    assert (organization["clerk_id"], organization["slug"], organization["name"]) == ("org_newco", "new-co", "new-co")

    members = clerk_client.get(f"/api/organizations/{organization['id']}/members", headers=headers).json()["items"]
    me = clerk_client.get("/api/users/me", headers=headers).json()
    assert [(member["user_id"], member["role"]) for member in members] == [(me["id"], role)]

    created = clerk_client.post("/api/projects", headers=headers, json={"name": "first"})
    if writes:
        assert (created.status_code, created.json()["organization_id"]) == (201, organization["id"])
    else:  # a custom role grants what a member gets: reads, no writes
        assert (created.status_code, created.json()["reason"]) == (403, "organization_role")
        assert clerk_client.get("/api/projects", headers=headers).json()["total"] == 0

    org_row, memberships = stored(session, "org_newco")
    assert (org_row.deleted_at, [(m.role, m.clerk_id, m.deleted_at) for m in memberships]) == (
        None,
        [(role, None, None)],  # no Clerk membership id yet: known from the token only
    )


def test_an_organization_without_a_slug_is_named_by_its_id(clerk_client: TestClient, session: Session) -> None:
    headers = as_session("user_noslug", organization_claim("org_noslug", "admin", slug=None))
    assert clerk_client.get("/api/projects", headers=headers).status_code == 200
    organization, _ = stored(session, "org_noslug")
    assert (organization.name, organization.slug) == ("org_noslug", None)


def test_a_known_organization_gains_the_member_from_the_claim(
    clerk_client: TestClient,
    session: Session,
    make_organization: Callable[..., Organization],
    make_project: Callable[..., Project],
) -> None:
    organization = make_organization(clerk_id="org_known", name="Known Inc", slug="known")
    project = make_project(organization)
    headers = as_session("user_joins", organization_claim("org_known", "member", slug="renamed-in-token"))
    assert clerk_client.get(f"/api/projects/{project.id}", headers=headers).status_code == 200
    org_row, memberships = stored(session, "org_known")
    assert (org_row.name, org_row.slug) == ("Known Inc", "known")  # the claim does not rename it
    assert [m.role for m in memberships] == ["member"]


def test_many_first_requests_make_one_organization_and_one_membership(
    clerk_client: TestClient, session: Session
) -> None:
    for _ in range(3):
        headers = as_session("user_repeat", organization_claim("org_repeat", "admin", slug="repeat"))
        assert clerk_client.get("/api/projects", headers=headers).status_code == 200
    _, memberships = stored(session, "org_repeat")
    assert len(memberships) == 1
    assert len(session.scalars(select(Organization).where(Organization.clerk_id == "org_repeat")).all()) == 1


def test_a_deleted_organization_refuses_the_session(
    clerk_client: TestClient,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
) -> None:
    """The token outlives the deletion by up to its lifetime: the deletion wins at once."""
    organization = make_organization(clerk_id="org_deleted", deleted_at=utcnow())
    make_membership(organization, make_user(clerk_id="user_was_there"), "admin")
    for sub in ("user_was_there", "user_never_seen"):
        headers = as_session(sub, organization_claim("org_deleted", "admin"))
        for response in (
            clerk_client.get("/api/projects", headers=headers),
            clerk_client.get("/api/organizations", headers=headers),
            clerk_client.post("/api/projects", headers=headers, json={"name": "x"}),
        ):
            assert (response.status_code, response.json()["reason"]) == (403, "organization_deleted"), sub


def test_an_ended_membership_refuses_the_session(
    clerk_client: TestClient,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    session: Session,
) -> None:
    organization = make_organization(clerk_id="org_left")
    make_membership(organization, make_user(clerk_id="user_left"), "admin", deleted_at=utcnow())
    make_membership(organization, make_user(clerk_id="user_stayed"), "admin")
    headers = as_session("user_left", organization_claim("org_left", "admin"))
    for response in (
        clerk_client.get("/api/projects", headers=headers),
        clerk_client.get(f"/api/organizations/{organization.id}/members", headers=headers),
        clerk_client.post("/api/projects", headers=headers, json={"name": "x"}),
    ):
        assert (response.status_code, response.json()["reason"]) == (403, "not_a_member")
    # The claim does not bring the membership back.
    _, memberships = stored(session, "org_left")
    assert sorted(m.deleted_at is None for m in memberships) == [False, True]
    # Without the organization active, the user is still signed in.
    assert clerk_client.get("/api/users/me", headers=as_session("user_left")).status_code == 200
    # An app admin who left still reaches the organization's data, as its keys do.
    make_membership(organization, make_user(clerk_id="user_app_admin", role=Role.ADMIN), "admin", deleted_at=utcnow())
    admin = as_session("user_app_admin", organization_claim("org_left", "admin"))
    assert clerk_client.get("/api/projects", headers=admin).status_code == 200
    assert clerk_client.post("/api/projects", headers=admin, json={"name": "x"}).status_code == 201


@pytest.mark.parametrize(
    "claims",
    [
        {"org_id": "org_v1", "org_role": "org:admin", "org_slug": "v1", "org_permissions": [], "v": None},
        {"org_id": "org_v1", "org_role": "org:admin"},  # v1 organization claims in a token saying v2
    ],
    ids=["v1", "v1-claims-in-v2"],
)
def test_v1_organization_claims_are_refused(clerk_client: TestClient, session: Session, claims: dict[str, Any]) -> None:
    response = clerk_client.get("/api/projects", headers=as_session("user_v1", **claims))
    assert (response.status_code, response.json()["reason"]) == (401, "token_version")
    assert session.scalars(select(Organization)).all() == []


def without(claim: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claim.items() if key != name}


MALFORMED: dict[str, Any] = {
    "string": "org_2abc",
    "list": [organization_claim("org_list")],
    "number": 42,
    "true": True,
    "empty": {},
    "no-id": without(organization_claim("org_x"), "id"),
    "id-null": organization_claim("org_x") | {"id": None},
    "id-number": organization_claim("org_x") | {"id": 12345},
    "id-empty": organization_claim(""),
    "id-dash": organization_claim("org-with-dash"),
    "id-too-long": organization_claim("org_" + "x" * 61),
    "id-nul": organization_claim("org_\x00x"),
    "id-path": organization_claim("../org_x"),
    "id-object": organization_claim("org_x") | {"id": {"$ne": None}},
    "no-rol": without(organization_claim("org_x"), "rol"),
    "rol-empty": organization_claim("org_x", role=""),
    "rol-number": organization_claim("org_x") | {"rol": 1},
    "rol-list": organization_claim("org_x") | {"rol": ["admin"]},
    "rol-space": organization_claim("org_x", role="org admin"),
    "rol-nul": organization_claim("org_x", role="admin\x00"),
    "rol-too-long": organization_claim("org_x", role="r" * 65),
    "slug-nul": organization_claim("org_x", slug="ac\x00me"),
    "slug-empty": organization_claim("org_x", slug=""),
    "slug-number": organization_claim("org_x") | {"slg": 7},
    "slug-too-long": organization_claim("org_x", slug="s" * 257),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_o_claim_is_401_never_500(clerk_client: TestClient, session: Session, name: str) -> None:
    headers = as_session("user_malformed", MALFORMED[name])
    for response in (
        clerk_client.get("/api/projects", headers=headers),
        clerk_client.post("/api/projects", headers=headers, json={"name": "x"}),
    ):
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert response.json()["reason"] == "malformed", response.json()
    assert session.scalars(select(Organization)).all() == []


def test_the_longest_well_formed_claim_is_accepted(clerk_client: TestClient, session: Session) -> None:
    """The bounds of the checks fit the columns they are stored in."""
    clerk_id, role, slug = "org_" + "x" * 60, "r" * 64, "ś" * 256
    headers = as_session("user_longest", organization_claim(clerk_id, role, slug=slug))
    assert clerk_client.get("/api/projects", headers=headers).status_code == 200
    organization, memberships = stored(session, clerk_id)
    assert (organization.slug, [m.role for m in memberships]) == (slug, [role])


@pytest.mark.parametrize(
    ("stored_role", "token_role", "writes"), [("member", "admin", False), ("admin", "member", True)]
)
def test_the_stored_role_wins_over_the_tokens(
    clerk_client: TestClient,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    session: Session,
    stored_role: str,
    token_role: str,
    writes: bool,
) -> None:
    """The webhooks keep the stored role current; a token may carry the role of a minute ago."""
    organization = make_organization(clerk_id="org_roles")
    make_membership(organization, make_user(clerk_id="user_roles"), stored_role)
    headers = as_session("user_roles", organization_claim("org_roles", token_role))
    created = clerk_client.post("/api/projects", headers=headers, json={"name": "x"})
    assert created.status_code == (201 if writes else 403), created.text
    _, memberships = stored(session, "org_roles")
    assert [m.role for m in memberships] == [stored_role]


def test_a_role_learnt_from_a_claim_is_not_raised_by_a_later_claim(clerk_client: TestClient, session: Session) -> None:
    first = as_session("user_climber", organization_claim("org_ladder", "member"))
    assert clerk_client.get("/api/projects", headers=first).status_code == 200
    later = as_session("user_climber", organization_claim("org_ladder", "admin"))
    refused = clerk_client.post("/api/projects", headers=later, json={"name": "x"})
    assert (refused.status_code, refused.json()["reason"]) == (403, "organization_role")
    _, memberships = stored(session, "org_ladder")
    assert [m.role for m in memberships] == ["member"]


def test_a_member_known_from_a_token_whose_membership_reconciliation_ended_can_be_invited_back(
    clerk_client: TestClient, container: Container, session: Session
) -> None:
    """A membership known only from a session token (no Clerk id) that the reconciliation ends (Clerk
    confirmed it was gone: its deletion event was lost) must not block a later invitation: Clerk's
    new membership, created after that, is the pair's membership."""
    headers = as_session("user_back", organization_claim("org_back", "member", slug="back"))
    assert clerk_client.get("/api/projects", headers=headers).status_code == 200  # known from the token
    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(ClerkOrganizationReconciliation).end_memberships([("org_back", "user_back")]) == 1
    assert clerk_client.get("/api/projects", headers=headers).json()["reason"] == "not_a_member"

    invited_at = int(time.time() * 1000) + 1_000  # Clerk's milliseconds, after the membership ended
    data = {
        "id": "orgmem_back_again",
        "object": "organization_membership",
        "role": "org:admin",
        "created_at": invited_at,
        "updated_at": invited_at,
        "organization": {"id": "org_back", "object": "organization", "name": "Back", "slug": "back"},
        "public_user_data": {"user_id": "user_back", "first_name": "Bo"},
    }
    body = json.dumps({"data": data, "object": "event", "type": "organizationMembership.created"})
    delivered = clerk_client.post(
        "/webhooks/clerk", content=body, headers={**svix_headers(body), "content-type": "application/json"}
    )
    assert delivered.json()["status"] == "processed", delivered.json()
    _, memberships = stored(session, "org_back")
    assert [(m.clerk_id, m.role, m.deleted_at) for m in memberships] == [("orgmem_back_again", "admin", None)]
    assert clerk_client.post("/api/projects", headers=headers, json={"name": "back"}).status_code == 201
    # A late event of the ended membership (created before it ended) changes nothing.
    late = {**data, "id": "orgmem_back_old", "role": "org:member", "created_at": invited_at - 3_600_000}
    body = json.dumps({"data": late, "object": "event", "type": "organizationMembership.deleted"})
    clerk_client.post(
        "/webhooks/clerk", content=body, headers={**svix_headers(body), "content-type": "application/json"}
    )
    _, memberships = stored(session, "org_back")
    assert [(m.clerk_id, m.role, m.deleted_at) for m in memberships] == [("orgmem_back_again", "admin", None)]

"""clerk-reconciliation, its organizations and memberships: the Backend API client against a local
HTTP server that speaks Clerk's shapes (tests/workers/clerk_backend_fake.py), the rules, and the
flow run for real by Prefect against SQLite and PostgreSQL."""

import re
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.organizations.clerk_organization_reconciliation import ClerkOrganizationReconciliation
from app.domains.organizations.models import Membership, Organization
from app.domains.users.models import APIKey, User
from app.domains.webhooks.schemas import from_millis
from app.infrastructure.clerk_backend_api import Backoff, ClerkAPI, ClerkAPIError
from tests.conftest import actor_of
from tests.workers.clerk_backend_fake import (
    SECRET_KEY,
    T0,
    FakeClerk,
    clerk_membership,
    clerk_organization,
    clerk_user,
)

ORGANIZATIONS = "/v1/organizations"


def client(fake: FakeClerk, asked: list[float]) -> ClerkAPI:
    return ClerkAPI(SECRET_KEY, fake.url, backoff=Backoff(base_delay=0.25, sleep=asked.append))


def organization_counts(**nonzero: int) -> dict[str, int]:
    return {"created": 0, "updated": 0, "unchanged": 0, "ignored": 0, "failed": 0, "tombstoned": 0, **nonzero}


def membership_counts(**nonzero: int) -> dict[str, int]:
    return {"created": 0, "updated": 0, "unchanged": 0, "ignored": 0, "failed": 0, "ended": 0, **nonzero}


def organization(session: Session, clerk_id: str) -> Organization | None:
    session.expire_all()
    return session.scalar(select(Organization).where(Organization.clerk_id == clerk_id))


def memberships(session: Session, organization_clerk_id: str) -> dict[str, Membership]:
    """The organization's memberships (ended ones too), by their user's Clerk id (or local id)."""
    session.expire_all()
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Organization.clerk_id == organization_clerk_id)
    ).all()
    return {user.clerk_id or str(user.id): membership for membership, user in rows}


def clerk_users(fake: FakeClerk, *numbers: int) -> None:
    fake.users = [clerk_user(n) for n in numbers]


def local_users(make_user: Callable[..., User], *numbers: int) -> dict[int, User]:
    """Local users linked to Clerk, as a first run would have created them (so they count unchanged)."""
    users = {}
    for n in numbers:
        data = clerk_user(n)
        users[n] = make_user(
            clerk_id=data["id"],
            email=f"u{n}@example.com",
            first_name=data["first_name"],
            last_name=None,
            clerk_updated_at=from_millis(data["updated_at"]),
        )
    return users


# -- the client ------------------------------------------------------------------------------------


def test_organizations_and_their_memberships_are_listed_page_by_page(fake_clerk: FakeClerk) -> None:
    clerk_users(fake_clerk, 0, 1, 2)
    fake_clerk.organizations = [clerk_organization(n) for n in range(1, 6)]
    fake_clerk.add_members(fake_clerk.organizations[0], 0, 1, 2)
    fake_clerk.add_members(fake_clerk.organizations[1], 0, role="org:admin")
    with client(fake_clerk, []) as clerk:
        pages = [clerk.list_organizations(2, offset) for offset in (0, 2, 4)]
        members = list(clerk.organization_membership_pages("org_001", 2))
        assert clerk.organization("org_002") == fake_clerk.organizations[1]
        assert clerk.organization("org_gone") is None  # 404: Clerk no longer has it
        of_user_0 = clerk.user_organization_memberships("user_000")
        assert clerk.user_organization_memberships("user_gone") == []  # 404: the user is gone
    assert [[org["id"] for org in page] for page in pages] == [
        ["org_001", "org_002"],
        ["org_003", "org_004"],
        ["org_005"],
    ]
    assert [[m["public_user_data"]["user_id"] for m in page] for page in members] == [
        ["user_000", "user_001"],
        ["user_002"],
    ]
    assert [m["organization"]["id"] for m in of_user_0] == ["org_001", "org_002"]
    assert fake_clerk.calls[0] == (ORGANIZATIONS, {"limit": ["2"], "offset": ["0"], "order_by": ["+created_at"]})
    assert fake_clerk.offsets("/v1/organizations/org_001/memberships") == [0, 2]
    assert fake_clerk.calls[3][1]["order_by"] == ["+created_at"]


def test_the_organization_endpoints_retry_like_the_users_one(fake_clerk: FakeClerk) -> None:
    fake_clerk.organizations = [clerk_organization(1)]
    fake_clerk.add_members(fake_clerk.organizations[0], 0)
    fake_clerk.scripts = {
        ORGANIZATIONS: [(429, {"Retry-After": "2"}), (500, {}), (429, {"Retry-After": "3600"})],
        "/v1/organizations/org_001/memberships": [(503, {})],
        "/v1/organizations/org_001": [(502, {})],
    }
    asked: list[float] = []
    with client(fake_clerk, asked) as clerk:
        assert [org["id"] for org in clerk.list_organizations(10)] == ["org_001"]
        assert asked == [2.0, 0.5, 60.0]  # as told, else the backoff; capped at 60 s
        asked.clear()
        assert len(clerk.list_organization_memberships("org_001", 10)) == 1
        assert clerk.organization("org_001") is not None
        assert asked == [0.25, 0.25]

        fake_clerk.broken = {"/v1/organizations/org_001/memberships": 0}
        asked.clear()
        with pytest.raises(ClerkAPIError, match="failed 5 times, last with HTTP 500") as error:
            clerk.list_organization_memberships("org_001", 10)
        assert (error.value.status, asked) == (500, [0.25, 0.5, 1.0, 2.0])
        with pytest.raises(ClerkAPIError, match="refused: HTTP 404") as error:  # gone: not retried
            clerk.list_organization_memberships("org_gone", 10)
        assert error.value.status == 404


def test_an_answer_of_another_shape_is_an_error(fake_clerk: FakeClerk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeClerk, "answer", lambda *_: (200, {}, [clerk_organization(1)]))  # an array, not {data}
    with client(fake_clerk, []) as clerk, pytest.raises(ClerkAPIError, match=re.escape('expected {"data": ')):
        clerk.list_organizations(10)
    monkeypatch.setattr(FakeClerk, "answer", lambda *_: (200, {}, {"data": [1, 2], "total_count": 2}))
    with client(fake_clerk, []) as clerk, pytest.raises(ClerkAPIError, match=re.escape('expected {"data": ')):
        clerk.list_organization_memberships("org_001", 10)


# -- the rules -------------------------------------------------------------------------------------


def test_a_member_can_neither_reconcile_nor_tombstone_nor_end(
    container: Container,
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
) -> None:
    member = make_user(role=Role.MEMBER, clerk_id="user_member")
    victim = make_organization(clerk_id="org_victim")
    make_membership(victim, member, "admin")
    org = clerk_organization(1)
    with container.unit_of_work(actor_of(member)) as uow:
        reconciliation = uow.service(ClerkOrganizationReconciliation)
        for attempt in (
            lambda: reconciliation.reconcile_organization(org),
            lambda: reconciliation.reconcile_membership(clerk_membership(org, 1)),
            lambda: reconciliation.organizations_absent_from(set(), 10),
            lambda: reconciliation.tombstone_deleted(["org_victim"]),
            lambda: reconciliation.members_absent_from("org_victim", set(), 10),
            lambda: reconciliation.end_memberships([("org_victim", "user_member")]),
        ):
            with pytest.raises(PermissionDeniedError):
                attempt()
    assert organization(session, "org_001") is None
    assert organization(session, "org_victim").deleted_at is None
    assert memberships(session, "org_victim")["user_member"].deleted_at is None


# -- the flow, run by Prefect ---------------------------------------------------------------------


def test_organizations_and_memberships_converge_then_a_second_run_changes_nothing(
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    waits: list[float],
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
) -> None:
    clerk_users(fake_clerk, 0, 1, 2, 3)
    users = local_users(make_user, 0, 1)
    org1, org2, org3 = fake_clerk.organizations = [clerk_organization(n) for n in (1, 2, 3)]
    fake_clerk.add_members(org1, 0, role="org:admin")
    fake_clerk.add_members(org1, 1, 2)
    fake_clerk.add_members(org2, 3, role="org:billing")  # a custom role: kept as Clerk names it
    # Here already: org2 under its old name; user 1 in org1 from a session token only (no Clerk id);
    # user 0 in org1 with the role of an older update.
    stale = make_organization(clerk_id="org_002", name="Old name", clerk_updated_at=from_millis(T0))
    local_org1 = make_organization(clerk_id="org_001", name="Organization 1", slug="organization-1")
    make_membership(local_org1, users[1], "member", clerk_id=None)
    admin = fake_clerk.memberships["org_001"][0]
    make_membership(local_org1, users[0], "member", clerk_id=admin["id"], clerk_updated_at=from_millis(T0))
    fake_clerk.scripts = {
        ORGANIZATIONS: [(429, {"Retry-After": "2"}), (500, {})],  # the first page is asked for 3 times
        "/v1/organizations/org_001/memberships": [(429, {"Retry-After": "1"})],
    }

    result = reconcile(page_size=2)

    assert (result.pop("organizations"), result.pop("memberships")) == (
        organization_counts(created=1, updated=2),  # org1 had no image nor Clerk time yet
        membership_counts(created=2, updated=2),
    )
    assert result == {"created": 2, "updated": 0, "unchanged": 2, "ignored": 0, "failed": 0, "tombstoned": 0}
    assert fake_clerk.offsets(ORGANIZATIONS) == [0, 0, 0, 2]
    assert fake_clerk.offsets("/v1/organizations/org_001/memberships") == [0, 0, 2]
    assert waits == [2.0, 0.5, 1.0]
    renamed = organization(session, "org_002")
    assert (renamed.id, renamed.name, renamed.slug) == (stale.id, "Organization 2", "organization-2")
    assert renamed.clerk_updated_at == from_millis(org2["updated_at"])
    created = organization(session, "org_003")
    assert (created.name, created.image_url) == ("Organization 3", "https://img.clerk.com/org3")
    assert created.created_at == from_millis(org3["created_at"])  # Clerk's, not ours
    members = memberships(session, "org_001")
    assert {user: (m.role, m.clerk_id, m.deleted_at) for user, m in members.items()} == {
        "user_000": ("admin", "orgmem_001_000", None),
        "user_001": ("member", "orgmem_001_001", None),  # the token's membership, now Clerk's
        "user_002": ("member", "orgmem_001_002", None),
    }
    assert members["user_002"].clerk_created_at == from_millis(fake_clerk.memberships["org_001"][2]["created_at"])
    assert {user: m.role for user, m in memberships(session, "org_002").items()} == {"user_003": "org:billing"}
    assert memberships(session, "org_003") == {}
    written = {m.id: m.updated_at for m in session.scalars(select(Membership))}
    organizations_written = {o.id: o.updated_at for o in session.scalars(select(Organization))}

    result = reconcile(page_size=2)

    assert (result.pop("organizations"), result.pop("memberships")) == (
        organization_counts(unchanged=3),
        membership_counts(unchanged=4),
    )
    assert result["unchanged"] == 4
    session.expire_all()
    assert {m.id: m.updated_at for m in session.scalars(select(Membership))} == written  # not even rewritten
    assert {o.id: o.updated_at for o in session.scalars(select(Organization))} == organizations_written

    fake_clerk.organizations[2] = clerk_organization(3, updated=500, name="Renamed 3")
    fake_clerk.organizations[1] = clerk_organization(2, updated=-500, name="Older 2")  # older than stored
    fake_clerk.memberships["org_001"][2] = clerk_membership(fake_clerk.organizations[0], 2, "org:admin", updated=100)
    result = reconcile(page_size=2)
    assert (result["organizations"], result["memberships"]) == (
        organization_counts(updated=1, unchanged=2),
        membership_counts(updated=1, unchanged=3),
    )
    assert organization(session, "org_003").name == "Renamed 3"
    assert organization(session, "org_002").name == "Organization 2"
    assert memberships(session, "org_001")["user_002"].role == "admin"


def test_memberships_clerk_no_longer_lists_are_ended_once_clerk_confirms(
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
) -> None:
    clerk_users(fake_clerk, 0, 1, 2, 3)
    users = local_users(make_user, 0, 1, 2, 3, 4)  # user 4 was deleted in Clerk
    org1 = clerk_organization(1)
    fake_clerk.organizations = [org1]
    fake_clerk.add_members(org1, 0, 1, 2)
    fake_clerk.hidden = {"orgmem_001_002"}  # skipped by the listing, as a deletion during paging would do
    local = make_organization(
        clerk_id="org_001",
        name=org1["name"],
        slug=org1["slug"],
        image_url=org1["image_url"],
        clerk_updated_at=from_millis(org1["updated_at"]),
    )
    make_membership(local, users[2], clerk_id="orgmem_001_002")
    make_membership(local, users[3], "admin", clerk_id="orgmem_001_003")  # removed in Clerk
    make_membership(local, users[4], clerk_id=None)  # from a session token; its user is gone since
    local_only = make_user()  # not linked to Clerk: not Clerk's to judge
    make_membership(local, local_only)
    ended_before = make_user(clerk_id="user_005", email="u5@example.com")
    make_membership(local, ended_before, clerk_id="orgmem_001_005", deleted_at=utcnow())

    result = reconcile(page_size=2)

    assert (result["organizations"], result["memberships"]) == (
        organization_counts(unchanged=1),
        membership_counts(created=2, ended=2),
    )
    assert result["tombstoned"] == 2  # users 4 and 5, gone from Clerk
    members = memberships(session, "org_001")
    assert {user for user, m in members.items() if m.deleted_at is None} == {
        "user_000",
        "user_001",
        "user_002",  # confirmed by Clerk: the user's memberships name the organization
        str(local_only.id),
    }
    assert members["user_003"].deleted_at is not None
    assert members["user_003"].role == "admin"  # ended as it was
    assert members["user_004"].deleted_at is not None
    assert members["user_005"].deleted_at is not None
    lookups = sorted(path for path in fake_clerk.paths() if path.endswith("/organization_memberships"))
    assert lookups == [f"/v1/users/user_00{n}/organization_memberships" for n in (2, 3, 4)]

    result = reconcile(page_size=2)  # the ended ones stay ended, the others stay
    assert result["memberships"] == membership_counts(unchanged=2)
    assert {user for user, m in memberships(session, "org_001").items() if m.deleted_at is None} == {
        "user_000",
        "user_001",
        "user_002",
        str(local_only.id),
    }


def test_an_organization_deleted_in_clerk_is_tombstoned_with_its_memberships_and_keys(
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    make_api_key: Callable[..., str],
) -> None:
    clerk_users(fake_clerk, 0, 1)
    users = local_users(make_user, 0, 1)
    org1, _, org3 = fake_clerk.organizations = [clerk_organization(n) for n in (1, 2, 3)]
    fake_clerk.add_members(org1, 0)
    fake_clerk.add_members(org3, 1)
    fake_clerk.hidden = {"org_002"}  # skipped by the listing: it still exists
    gone = make_organization(clerk_id="org_gone")
    make_membership(gone, users[0], "admin")
    make_membership(gone, users[1])
    make_api_key(users[0], organization=gone), make_api_key(users[1], organization=gone)
    make_api_key(users[0])  # a personal key: not the organization's
    make_organization(clerk_id="org_002")
    deleted_here = make_organization(clerk_id="org_003", deleted_at=utcnow())  # Clerk lists it still

    result = reconcile(page_size=2)

    assert (result["organizations"], result["memberships"]) == (
        organization_counts(created=1, ignored=1, tombstoned=1),
        membership_counts(created=1, ignored=1),
    )
    tombstoned = organization(session, "org_gone")
    assert tombstoned.deleted_at is not None
    assert memberships(session, "org_gone") == {}
    keys = session.scalars(select(APIKey).where(APIKey.organization_id == gone.id)).all()
    assert len(keys) == 2
    assert all(key.revoked_at is not None for key in keys)
    assert session.scalar(select(APIKey).where(APIKey.organization_id.is_(None))).revoked_at is None
    assert organization(session, "org_002").deleted_at is None  # confirmed by id: it still exists
    still_deleted = organization(session, "org_003")
    assert (still_deleted.id, still_deleted.deleted_at is not None) == (deleted_here.id, True)
    assert memberships(session, "org_003") == {}  # a tombstone takes no member
    assert {"/v1/organizations/org_002", "/v1/organizations/org_gone"} <= set(fake_clerk.paths())


@pytest.mark.parametrize("broken", [ORGANIZATIONS, "/v1/organizations/org_002/memberships"])
def test_a_listing_that_keeps_failing_tombstones_and_ends_nothing(
    broken: str,
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    waits: list[float],
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
) -> None:
    clerk_users(fake_clerk, 0, 1)
    users = local_users(make_user, 0, 1)
    fake_clerk.organizations = [clerk_organization(n) for n in (1, 2, 3)]
    for org in fake_clerk.organizations:
        fake_clerk.add_members(org, 0)
    fake_clerk.broken = {broken: 2 if broken == ORGANIZATIONS else 0}
    gone = make_organization(clerk_id="org_gone")
    make_membership(gone, users[0])
    local_org1 = make_organization(clerk_id="org_001")
    make_membership(local_org1, users[1], clerk_id="orgmem_001_001")  # no longer listed for org1

    with pytest.raises(ClerkAPIError, match="failed 5 times, last with HTTP 500"):
        reconcile(page_size=2)

    assert len(waits) == 4
    assert organization(session, "org_002") is not None  # the pages before the failure were applied
    if broken == ORGANIZATIONS:
        assert organization(session, "org_003") is None
    else:  # every organization was listed; org1's memberships too, before org2's failed
        assert organization(session, "org_003") is not None
        assert set(memberships(session, "org_001")) == {"user_000", "user_001"}
    assert organization(session, "org_gone").deleted_at is None
    assert set(memberships(session, "org_gone")) == {"user_000"}
    assert memberships(session, "org_001")["user_001"].deleted_at is None
    assert not [path for path in fake_clerk.paths() if path.endswith(("/org_gone", "/organization_memberships"))]


def test_what_cannot_be_applied_fails_alone_and_is_not_ended(
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
) -> None:
    clerk_users(fake_clerk, 0, 1, 2)
    users = local_users(make_user, 0, 1, 2)
    org1, org2, org3 = fake_clerk.organizations = [
        clerk_organization(1),
        clerk_organization(2),
        clerk_organization(3, name="x" * 300),  # not storable
    ]
    fake_clerk.memberships = {
        "org_001": [clerk_membership(org1, 0), clerk_membership(org1, 1, role="r" * 65), clerk_membership(org1, 2)],
        "org_002": [clerk_membership(org2, 0)],
        "org_003": [clerk_membership(org3, 0)],
    }
    local_org1 = make_organization(clerk_id="org_001")
    make_membership(local_org1, users[1], clerk_id="orgmem_001_001")  # listed, but cannot be applied
    local_org2 = make_organization(clerk_id="org_002")
    make_membership(local_org2, users[1], clerk_id="orgmem_002_001")  # no longer listed, but see below
    local_org3 = make_organization(clerk_id="org_003", name="Three")
    make_membership(local_org3, users[0], clerk_id="orgmem_003_000")
    # org2 is deleted in Clerk between the listings: its memberships answer 404 once.
    fake_clerk.scripts = {"/v1/organizations/org_002/memberships": [(404, {})]}

    result = reconcile(page_size=5)

    assert (result["organizations"], result["memberships"]) == (
        organization_counts(updated=2, failed=1),
        membership_counts(created=2, failed=2),
    )
    assert organization(session, "org_003").name == "Three"
    assert memberships(session, "org_001")["user_001"].deleted_at is None  # listed: still a member
    assert memberships(session, "org_003")["user_000"].deleted_at is None
    assert memberships(session, "org_002")["user_001"].deleted_at is None  # its listing was incomplete
    assert {user for user, m in memberships(session, "org_001").items() if m.deleted_at is None} == {
        "user_000",
        "user_001",
        "user_002",
    }

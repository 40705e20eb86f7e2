"""Clerk's organization and membership events, with user events between them: any order and any
repetition of a realistic history end in the same rows as the history in order, through the real
signed webhook endpoint and through `ClerkDeliveries` in a unit of work, as the route calls it."""

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.bootstrap import Container
from app.domains.base.actors import Actor
from app.domains.base.lists import ListParams
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.rules import normalized_role
from app.domains.organizations.service import MembershipService
from app.domains.users.models import User
from app.domains.webhooks.clerk_deliveries import ClerkDeliveries
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.models import metadata
from tests.clerk_helpers import WEBHOOK_SECRET, svix_headers, user_event
from tests.helpers import settings_for

URL = "/webhooks/clerk"
T0 = 1_700_000_000_000  # Clerk's clock, in ms

Event = dict[str, Any]
Delivery = tuple[str, Event]  # (svix id, body)


@pytest.fixture
def hook_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    app = create_app(settings_for(settings.database_url, clerk_webhook_signing_secret=WEBHOOK_SECRET))
    with TestClient(app) as client:
        yield client


def deliver(client: TestClient, event: Event, msg_id: str | None = None) -> dict[str, Any]:
    body = json.dumps(event)
    response = client.post(
        URL, content=body, headers={**svix_headers(body, msg_id), "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def handle(container: Container, msg_id: str, event: Event) -> None:
    """What the route does with a verified body: its own unit of work, the deliveries as the system."""
    with container.unit_of_work(Actor.anonymous()) as uow:
        uow.service(ClerkDeliveries, actor=Actor.system()).handle(msg_id, json.loads(json.dumps(event)))


def empty_tables(session: Session, database: Database) -> None:
    session.rollback()
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


# -- Clerk's side: a history, each change an event shaped like Clerk's ---------------------------


def envelope(event_type: str, data: dict[str, Any], at: int) -> Event:
    return {"data": data, "object": "event", "type": event_type, "timestamp": at}


@dataclass
class ClerkHistory:
    """Clerk's state and the events it sends, in the order things happened (a clock in ms). A
    membership embeds its organization and its user's public data as they are at that moment."""

    now: int = T0
    events: list[Event] = field(default_factory=list)
    organizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[str, dict[str, Any]] = field(default_factory=dict)

    def tick(self) -> int:
        self.now += 1_000
        return self.now

    def user(self, clerk_id: str, email: str, first_name: str, last_name: str) -> None:
        at = self.tick()
        known = clerk_id in self.users
        created_at = self.users[clerk_id]["created_at"] if known else at
        self.users[clerk_id] = {"first_name": first_name, "last_name": last_name, "created_at": created_at}
        fields = {"first_name": first_name, "last_name": last_name, "created_at": created_at}
        self.events.append(user_event("user.updated" if known else "user.created", clerk_id, at, email, **fields))

    def delete_user(self, clerk_id: str) -> None:
        self.events.append(user_event("user.deleted", clerk_id, self.tick()))

    def organization(self, clerk_id: str, name: str, slug: str) -> None:
        at = self.tick()
        known = clerk_id in self.organizations
        created_at = self.organizations[clerk_id]["created_at"] if known else at
        self.organizations[clerk_id] = {
            "id": clerk_id,
            "object": "organization",
            "name": name,
            "slug": slug,
            "image_url": f"https://img.clerk.com/{slug}",
            "logo_url": None,
            "public_metadata": {},
            "created_by": "user_alice",
            "created_at": created_at,
            "updated_at": at,
        }
        event_type = "organization.updated" if known else "organization.created"
        self.events.append(envelope(event_type, dict(self.organizations[clerk_id]), at))

    def delete_organization(self, clerk_id: str) -> None:
        data = {"deleted": True, "id": clerk_id, "object": "organization"}
        self.events.append(envelope("organization.deleted", data, self.tick()))

    def member(self, membership_id: str, organization: str, user: str, role: str) -> None:
        """A membership created, or its role changed."""
        at = self.tick()
        known = membership_id in self.memberships
        self.memberships[membership_id] = {
            "organization": organization,
            "user": user,
            "role": role,
            "created_at": self.memberships[membership_id]["created_at"] if known else at,
            "updated_at": at,
        }
        event_type = "organizationMembership.updated" if known else "organizationMembership.created"
        self.events.append(envelope(event_type, self.membership_data(membership_id), at))

    def remove_member(self, membership_id: str) -> None:
        """Clerk sends the whole membership, as it was, on its deletion."""
        self.events.append(envelope("organizationMembership.deleted", self.membership_data(membership_id), self.tick()))

    def membership_data(self, membership_id: str) -> dict[str, Any]:
        membership = self.memberships[membership_id]
        user = self.users.get(membership["user"], {})
        return {
            "id": membership_id,
            "object": "organization_membership",
            "role": membership["role"],
            "permissions": [],
            "public_metadata": {},
            "created_at": membership["created_at"],
            "updated_at": membership["updated_at"],
            "organization": dict(self.organizations[membership["organization"]]),
            "public_user_data": {
                "user_id": membership["user"],
                "first_name": user.get("first_name"),
                "last_name": user.get("last_name"),
                "identifier": f"{membership['user']}@example.com",
                "image_url": "https://img.clerk.com/avatar",
                "profile_image_url": "https://www.gravatar.com/avatar?d=mp",
                "has_image": False,
            },
        }


def realistic_history() -> list[Event]:
    clerk = ClerkHistory()
    clerk.user("user_alice", "alice@example.com", "Alice", "Archer")
    clerk.organization("org_acme", "Acme", "acme")
    clerk.member("orgmem_alice_acme", "org_acme", "user_alice", "org:admin")  # the creator
    clerk.user("user_bob", "bob@example.com", "Bob", "Baker")
    clerk.member("orgmem_bob_acme", "org_acme", "user_bob", "org:member")
    clerk.organization("org_acme", "Acme Inc", "acme")
    clerk.user("user_carol", "carol@example.com", "Carol", "Chen")
    clerk.member("orgmem_carol_acme_1", "org_acme", "user_carol", "org:member")
    clerk.organization("org_initech", "Initech", "initech")
    clerk.member("orgmem_alice_initech", "org_initech", "user_alice", "org:admin")
    clerk.member("orgmem_carol_initech", "org_initech", "user_carol", "org:member")
    clerk.member("orgmem_bob_acme", "org_acme", "user_bob", "org:admin")  # member -> admin
    clerk.user("user_dan", "dan@example.com", "Dan", "Diaz")
    clerk.member("orgmem_dan_acme", "org_acme", "user_dan", "org:member")
    clerk.organization("org_globex", "Globex", "globex")
    clerk.member("orgmem_bob_globex", "org_globex", "user_bob", "org:admin")
    clerk.member("orgmem_carol_globex", "org_globex", "user_carol", "org:member")
    clerk.remove_member("orgmem_carol_acme_1")  # Carol leaves Acme...
    clerk.user("user_alice", "alice.archer@example.com", "Alice", "Archer")
    clerk.organization("org_acme", "Acme Corporation", "acme-corp")
    clerk.member("orgmem_carol_acme_2", "org_acme", "user_carol", "org:member")  # ...and is invited back
    clerk.member("orgmem_carol_initech", "org_initech", "user_carol", "org:admin")
    clerk.user("user_erin", "erin@example.com", "Erin", "Evans")
    clerk.member("orgmem_erin_initech", "org_initech", "user_erin", "org:billing")  # a custom role
    clerk.organization("org_globex", "Globex Corp", "globex")
    globex_corp = clerk.events[-1]
    clerk.user("user_bob", "bob@example.com", "Bob", "Brown")
    clerk.member("orgmem_carol_acme_2", "org_acme", "user_carol", "org:admin")
    clerk.organization("org_initech", "Initech Labs", "initech")
    clerk.member("orgmem_carol_globex", "org_globex", "user_carol", "org:admin")
    clerk.remove_member("orgmem_carol_initech")  # ends as an admin
    clerk.delete_user("user_dan")
    clerk.delete_organization("org_globex")
    # After the deletion, changing nothing: Clerk's teardown of its memberships, an earlier event
    # delivered late, and events stamped later than the deletion.
    clerk.remove_member("orgmem_bob_globex")
    clerk.remove_member("orgmem_carol_globex")
    clerk.events.append(globex_corp)
    clerk.organization("org_globex", "Globex Stale", "globex-stale")
    clerk.member("orgmem_bob_globex", "org_globex", "user_bob", "org:member")
    return clerk.events


# The history's end, as Clerk has it (a deleted organization or user keeps nothing but the fact).
EXPECTED_ORGANIZATIONS = {
    "org_acme": ("Acme Corporation", "acme-corp", False),
    "org_initech": ("Initech Labs", "initech", False),
    "org_globex": ("org_globex", None, True),
}
EXPECTED_USERS = {
    "user_alice": ("alice.archer@example.com", "Alice", "Archer", False),
    "user_bob": ("bob@example.com", "Bob", "Brown", False),
    "user_carol": ("carol@example.com", "Carol", "Chen", False),
    "user_dan": (None, None, None, True),
    "user_erin": ("erin@example.com", "Erin", "Evans", False),
}
EXPECTED_MEMBERSHIPS = {
    ("org_acme", "user_alice"): ("admin", "live"),
    ("org_acme", "user_bob"): ("admin", "live"),
    ("org_acme", "user_carol"): ("admin", "live"),  # the second membership, not the deleted first
    ("org_initech", "user_alice"): ("admin", "live"),
    ("org_initech", "user_carol"): ("admin", "ended"),
    ("org_initech", "user_erin"): ("org:billing", "live"),
}
EXPECTED_MEMBERS = {
    "org_acme": {("user_alice", "admin"), ("user_bob", "admin"), ("user_carol", "admin")},
    "org_initech": {("user_alice", "admin"), ("user_erin", "org:billing")},
}


def snapshot(session: Session, container: Container) -> dict[str, Any]:
    """The rows by Clerk id (local ids differ from run to run), and each live organization's
    members as the app lists them.

    A deleted user's memberships are left out: they are not live whatever is stored (the members
    list hides them, and they go with the user when it is purged), and whether a row is stored
    depends on the order (a membership applied before `user.deleted` keeps its row, one after it
    is ignored), which nothing reads."""
    session.expire_all()
    organizations = {
        row.clerk_id: (row.name, row.slug, row.deleted_at is not None) for row in session.scalars(select(Organization))
    }
    users = {
        row.clerk_id: (row.email, row.first_name, row.last_name, row.deleted_at is not None)
        for row in session.scalars(select(User))
    }
    pairs = session.execute(
        select(Organization.clerk_id, User.clerk_id, Membership.role, Membership.deleted_at)
        .join(Organization, Organization.id == Membership.organization_id)
        .join(User, User.id == Membership.user_id)
        .where(User.deleted_at.is_(None))
    )
    memberships = {(org, user): (role, "live" if ended is None else "ended") for org, user, role, ended in pairs}
    clerk_ids = {row.id: row.clerk_id for row in session.scalars(select(User))}
    members: dict[str, set[tuple[str, str]]] = {}
    with container.unit_of_work(Actor.system()) as uow:
        for organization in session.scalars(select(Organization).where(Organization.deleted_at.is_(None))):
            page = uow.service(MembershipService).members(organization.id, ListParams(limit=100))
            members[organization.clerk_id] = {(clerk_ids[item["user_id"]], item["role"]) for item in page.items}
    return {"organizations": organizations, "users": users, "memberships": memberships, "members": members}


def shuffled_with_duplicates(deliveries: list[Delivery], seed: int) -> list[Delivery]:
    """The deliveries in a random order, some of them twice: Svix's retries (the same svix id) and
    the same event sent again (a new one)."""
    rng = random.Random(seed)
    stream = list(deliveries)
    for number in range(rng.randint(1, len(deliveries) // 3)):
        msg_id, event = rng.choice(deliveries)
        stream.append((msg_id if rng.random() < 0.5 else f"{msg_id}_again_{number}", event))
    rng.shuffle(stream)
    return stream


@pytest.fixture
def history() -> list[Delivery]:
    return [(f"msg_{number:03d}", event) for number, event in enumerate(realistic_history())]


def test_the_ordered_history_ends_in_clerks_state(
    hook_client: TestClient, session: Session, container: Container, history: list[Delivery]
) -> None:
    statuses = [deliver(hook_client, event, msg_id)["status"] for msg_id, event in history]
    assert set(statuses) == {"processed", "ignored"}
    state = snapshot(session, container)
    assert state["organizations"] == EXPECTED_ORGANIZATIONS
    assert state["users"] == EXPECTED_USERS
    assert state["memberships"] == EXPECTED_MEMBERSHIPS
    assert state["members"] == EXPECTED_MEMBERS


def test_shuffled_and_repeated_deliveries_converge_through_the_webhook(
    hook_client: TestClient, session: Session, database: Database, container: Container, history: list[Delivery]
) -> None:
    for msg_id, event in history:
        deliver(hook_client, event, msg_id)
    ordered = snapshot(session, container)
    for seed in (1, 2):
        empty_tables(session, database)
        for msg_id, event in shuffled_with_duplicates(history, seed):
            deliver(hook_client, event, msg_id)
        assert snapshot(session, container) == ordered, f"seed {seed}"


def test_many_shuffles_with_duplicates_converge(
    session: Session, database: Database, container: Container, history: list[Delivery]
) -> None:
    for msg_id, event in history:
        handle(container, msg_id, event)
    ordered = snapshot(session, container)
    assert ordered["memberships"] == EXPECTED_MEMBERSHIPS
    for seed in range(100, 120):
        empty_tables(session, database)
        for msg_id, event in shuffled_with_duplicates(history, seed):
            handle(container, msg_id, event)
        assert snapshot(session, container) == ordered, f"seed {seed}"


def test_the_reversed_history_converges(
    session: Session, database: Database, container: Container, history: list[Delivery]
) -> None:
    """Every event before the ones it follows: deletions first, creations last."""
    for msg_id, event in reversed(history):
        handle(container, msg_id, event)
    state = snapshot(session, container)
    assert (state["organizations"], state["users"]) == (EXPECTED_ORGANIZATIONS, EXPECTED_USERS)
    assert (state["memberships"], state["members"]) == (EXPECTED_MEMBERSHIPS, EXPECTED_MEMBERS)


# -- single events -------------------------------------------------------------------------------


def org_by_clerk_id(session: Session, clerk_id: str) -> Organization | None:
    session.expire_all()
    return session.scalar(select(Organization).where(Organization.clerk_id == clerk_id))


def user_by_clerk_id(session: Session, clerk_id: str) -> User | None:
    session.expire_all()
    return session.scalar(select(User).where(User.clerk_id == clerk_id))


def membership_of(session: Session, organization: str, user: str) -> Membership | None:
    session.expire_all()
    return session.scalar(
        select(Membership)
        .join(Organization, Organization.id == Membership.organization_id)
        .join(User, User.id == Membership.user_id)
        .where(Organization.clerk_id == organization, User.clerk_id == user)
    )


def test_a_membership_before_its_organization_and_user_is_applied_from_what_it_embeds(
    hook_client: TestClient, session: Session
) -> None:
    clerk = ClerkHistory()
    clerk.user("user_zoe", "zoe@example.com", "Zoe", "Zhang")
    clerk.organization("org_umbrella", "Umbrella", "umbrella")
    clerk.organization("org_umbrella", "Umbrella Corp", "umbrella-corp")
    clerk.member("orgmem_zoe", "org_umbrella", "user_zoe", "org:admin")
    clerk.user("user_zoe", "zoe.zhang@example.com", "Zoé", "Zhang-Li")
    clerk.organization("org_hooli", "Hooli", "hooli")
    clerk.member("orgmem_zoe_hooli", "org_hooli", "user_zoe", "org:member")  # embeds the new names
    user_created, org_created, org_updated, membership, user_updated, _, other_membership = clerk.events

    assert deliver(hook_client, membership)["status"] == "processed"  # the first Clerk event we see
    organization = org_by_clerk_id(session, "org_umbrella")
    assert (organization.name, organization.slug, organization.deleted_at) == ("Umbrella Corp", "umbrella-corp", None)
    user = user_by_clerk_id(session, "user_zoe")
    assert (user.email, user.first_name, user.last_name, user.clerk_updated_at) == (None, "Zoe", "Zhang", None)
    assert membership_of(session, "org_umbrella", "user_zoe").role == "admin"

    assert deliver(hook_client, org_created)["status"] == "ignored"  # older than the embedded one
    assert deliver(hook_client, org_updated)["status"] == "processed"  # the same moment: no change
    assert org_by_clerk_id(session, "org_umbrella").name == "Umbrella Corp"

    assert deliver(hook_client, user_updated)["status"] == "processed"  # the user's own data wins
    assert deliver(hook_client, user_created)["status"] == "ignored"
    assert deliver(hook_client, other_membership)["status"] == "processed"
    user = user_by_clerk_id(session, "user_zoe")
    assert (user.email, user.first_name, user.last_name) == ("zoe.zhang@example.com", "Zoé", "Zhang-Li")
    assert membership_of(session, "org_hooli", "user_zoe").role == "member"


def test_a_membership_keeps_the_users_embedded_profile_until_the_users_events_arrive(
    hook_client: TestClient, session: Session
) -> None:
    """Another membership of a user known only from one does not rewrite the profile: the first
    one seen stands in until the user's own events."""
    clerk = ClerkHistory()
    clerk.users["user_yan"] = {"first_name": "Yan", "last_name": "Young", "created_at": T0}
    clerk.organization("org_a", "A", "a")
    clerk.organization("org_b", "B", "b")
    clerk.member("orgmem_a", "org_a", "user_yan", "org:member")
    clerk.users["user_yan"] = {"first_name": "Yannick", "last_name": "Young", "created_at": T0}
    clerk.member("orgmem_b", "org_b", "user_yan", "org:member")
    deliver(hook_client, clerk.events[2])
    deliver(hook_client, clerk.events[3])
    user = user_by_clerk_id(session, "user_yan")
    assert (user.first_name, user.last_name, user.image_url) == ("Yan", "Young", "https://img.clerk.com/avatar")
    deliver(hook_client, user_event("user.created", "user_yan", T0 + 60_000, "yan@example.com", first_name="Y."))
    user = user_by_clerk_id(session, "user_yan")
    assert (user.email, user.first_name, user.last_name, user.image_url) == ("yan@example.com", "Y.", None, None)


def test_a_bare_membership_deletion_ends_the_membership_of_that_id(hook_client: TestClient, session: Session) -> None:
    clerk = ClerkHistory()
    clerk.user("user_xia", "xia@example.com", "Xia", "Xu")
    clerk.organization("org_wayne", "Wayne", "wayne")
    clerk.member("orgmem_xia_1", "org_wayne", "user_xia", "org:admin")
    for event in clerk.events:
        deliver(hook_client, event)

    def bare(membership_id: str) -> Event:
        data = {"id": membership_id, "deleted": True, "object": "organization_membership"}
        return envelope("organizationMembership.deleted", data, T0 + 90_000)

    assert deliver(hook_client, bare("orgmem_unknown"))["status"] == "ignored"
    assert deliver(hook_client, bare("orgmem_xia_1"))["status"] == "processed"
    ended = membership_of(session, "org_wayne", "user_xia")
    assert (ended.clerk_id, ended.role, ended.deleted_at is not None) == ("orgmem_xia_1", "admin", True)
    assert deliver(hook_client, bare("orgmem_xia_1"), "msg_bare_again")["status"] == "processed"  # no change
    late_update = clerk.events[-1]
    assert deliver(hook_client, late_update, "msg_late")["status"] == "ignored"  # the deletion is final
    assert membership_of(session, "org_wayne", "user_xia").deleted_at is not None

    clerk.member("orgmem_xia_2", "org_wayne", "user_xia", "org:member")  # invited back: a new id
    deliver(hook_client, clerk.events[-1])
    assert deliver(hook_client, bare("orgmem_xia_1"), "msg_old_id")["status"] == "ignored"  # not the pair's now
    again = membership_of(session, "org_wayne", "user_xia")
    assert (again.clerk_id, again.role, again.deleted_at) == ("orgmem_xia_2", "member", None)
    assert len(session.scalars(select(Membership)).all()) == 1  # the unknown id made up none


# -- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clerk_role", "role"),
    [
        ("org:admin", "admin"),  # webhooks and the Backend API
        ("org:member", "member"),
        ("admin", "admin"),  # older payloads, and session tokens v2
        ("basic_member", "member"),
        ("member", "member"),
        ("org:billing", "org:billing"),  # a custom role, as Clerk names it
        ("org:admins", "org:admins"),  # no prefix or suffix matching
        ("ORG:ADMIN", "ORG:ADMIN"),  # nor case folding: Clerk's keys are lower case
    ],
)
def test_normalized_role(clerk_role: str, role: str) -> None:
    assert normalized_role(clerk_role) == role

"""The bench's data: a fresh schema, the callers' accounts, bulk users, organizations and projects,
signed webhook deliveries."""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlmodel import col

from app.bootstrap import bootstrap
from app.domains.base.actors import Actor, Role
from app.domains.organizations.models import Membership, Organization
from app.domains.users.schemas import APIKeyCreate, UserCreate
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.config import Settings
from tests.clerk_helpers import sign_bytes, user_event

ROOT = Path(__file__).resolve().parents[1]
CALLER_PROJECTS = 100  # the caller's organization: two full pages of 50 at every size
BULK_CLERK_ID = "user_bulk_{}"
BULK_ORGANIZATIONS = 1_000
# The tenant's organization: project n belongs to `org_bulk_<n mod BULK_ORGANIZATIONS + 1>`.
TENANT_ORGANIZATION = "org_bulk_1"


@dataclass(frozen=True, slots=True)
class Account:
    clerk_id: str
    api_key: str


def reset_schema(engine: Engine, env: dict[str, str]) -> None:
    """An empty `public` schema, then every migration (alembic in a subprocess, as in production)."""
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], env=env, cwd=ROOT, check=True, capture_output=True
    )


def create_account(settings: Settings, name: str, role: Role, organization: str | None = None) -> Account:
    """A user linked to a Clerk id, with an API key: what `generate-user` does, in this process.

    With `organization` (a Clerk id), the user is also a `member` of that organization and the key is
    bound to it, as a key created in a session where it is active: its requests see that tenant's rows.
    """
    clerk_id = f"user_bench_{name}"
    container = bootstrap(settings)
    try:
        with container.unit_of_work(Actor.system()) as uow:
            user = uow.service(UserService).create_user(
                UserCreate(email=f"{name}@bench.example.com", role=role, clerk_id=clerk_id)
            )
            owner = Actor.on_behalf_of(user.id, Role(user.role))
            if organization is not None:
                found = select(col(Organization.id)).where(col(Organization.clerk_id) == organization)
                organization_id = uow.session.execute(found).scalar_one()
                uow.session.add(Membership(organization_id=organization_id, user_id=user.id, role="member"))
                owner = owner.in_organization(organization_id, None)
            _, api_key = uow.service(APIKeyService, actor=owner).issue(APIKeyCreate(name="bench"))
    finally:
        container.dispose()
    return Account(clerk_id, api_key)


def count_users(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM users")).scalar_one()


def add_bulk_users(engine: Engine, total: int) -> None:
    """Members `user_bulk_<n>` until the table holds `total` users: one INSERT ... SELECT, then VACUUM
    ANALYZE (fresh statistics and visibility map; autovacuum has nothing left to do mid-measurement).

    Each is created a second before the previous one, so the newest rows are the bench's accounts.
    """
    existing = count_users(engine)
    first = existing + 1
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users"
                " (id, created_at, updated_at, email, clerk_id, role, is_active, first_name, last_name)"
                " SELECT gen_random_uuid(), now() - n * interval '1 second', now() - n * interval '1 second',"
                " 'bulk' || n || '@bench.example.com', 'user_bulk_' || n, 'member', true, 'Bulk', 'User ' || n"
                " FROM generate_series(:first, :last) AS n"
            ),
            {"first": first, "last": total},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE users"))


def add_bulk_organizations(engine: Engine, total: int = BULK_ORGANIZATIONS) -> None:
    """Organizations `org_bulk_<n>`, n from 1 to `total`: one INSERT ... SELECT."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO organizations (id, created_at, updated_at, name, slug, clerk_id)"
                " SELECT gen_random_uuid(), now() - n * interval '1 second', now() - n * interval '1 second',"
                " 'Bulk organization ' || n, 'bulk-' || n, 'org_bulk_' || n"
                " FROM generate_series(1, :total) AS n"
            ),
            {"total": total},
        )


def add_bulk_projects(engine: Engine, total: int, organizations: int = BULK_ORGANIZATIONS) -> None:
    """Projects until the table holds `total`: the first CALLER_PROJECTS belong to `org_bulk_1` (the
    caller's), the rest are spread evenly over the other organizations. So the caller's page is the
    same full page of 50 at every size and only the table grows. One INSERT ... SELECT, then VACUUM
    ANALYZE, as for the users. Each is created a second before the previous one."""
    with engine.connect() as connection:
        first = connection.execute(text("SELECT count(*) FROM projects")).scalar_one() + 1
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects"
                " (id, created_at, updated_at, name, description, status, organization_id)"
                " SELECT gen_random_uuid(), now() - n * interval '1 second', now() - n * interval '1 second',"
                " 'Project ' || n, 'Bulk project number ' || n, 'active', o.id"
                " FROM generate_series(:first, :last) AS n"
                " JOIN organizations AS o ON o.clerk_id = CASE WHEN n <= :caller_projects THEN 'org_bulk_1'"
                " ELSE 'org_bulk_' || (n % (:organizations - 1) + 2) END"
            ),
            {"first": first, "last": total, "organizations": organizations, "caller_projects": CALLER_PROJECTS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE organizations, memberships, projects"))


def count_processed_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM webhook_events WHERE outcome = 'processed'")).scalar_one()


def signed_deliveries(first_user: int, count: int, run_id: str) -> list[str]:
    """`user.updated` deliveries as raw HTTP requests, one per bulk user from `first_user` on, each
    with its own svix-id and a real v1 signature dated now (the verifier accepts 5 minutes)."""
    timestamp = int(time.time())
    requests = []
    for number in range(first_user, first_user + count):
        clerk_id = BULK_CLERK_ID.format(number)
        event = user_event(
            "user.updated",
            clerk_id,
            updated_at=timestamp * 1000,
            email=f"updated{number}@bench.example.com",
            first_name="Updated",
        )
        body = json.dumps(event, separators=(",", ":")).encode()
        svix_id = f"msg_bench_{run_id}_{number}"
        head = (
            "POST /webhooks/clerk HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nsvix-id: {svix_id}\r\nsvix-timestamp: {timestamp}\r\n"
            f"svix-signature: {sign_bytes(body, svix_id, timestamp)}\r\n\r\n"
        )
        requests.append(head + body.decode())
    return requests

"""The tenant rule over HTTP: every organizations and projects route, for every kind of actor, on
organization A's and organization B's rows, on both databases.

The expected outcome of each cell is written out below, by hand: it is not derived from the rules
the app applies. Each actor's row of the tables is one test; a failing test lists every cell that
differs. Write cells never share rows: each PATCH and DELETE gets a project made for it, and a
refused write is checked to have changed nothing.

The world: organizations A and B (and Z, deleted in Clerk, with a project no one reaches), one
project in each, and these actors:

| actor            | credential                         | memberships                         |
|------------------|------------------------------------|-------------------------------------|
| a_admin_token    | session token, A active            | A admin                             |
| a_member_token   | session token, A active            | A member                            |
| b_admin_token    | session token, B active            | B admin                             |
| ab_user_token    | session token, A active            | A member, B admin                   |
| a_member_key     | API key bound to A                 | A member                            |
| a_admin_key      | API key bound to A                 | A admin                             |
| personal_key     | API key bound to no organization   | A admin (B admin once, left)        |
| app_admin_key    | an app admin's personal key        | none                                |
| app_admin_token  | an app admin's token, A active     | A member                            |
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domains.base.actors import Role
from app.domains.base.models import utcnow
from app.domains.organizations.models import Organization
from app.domains.projects.models import Project
from app.domains.users.models import User
from tests.clerk_helpers import SESSION_KEY, bearer, organization_claim

# Cells: a status, or
#   `201>A`       created, and the new project belongs to A
#   `403:role`    403 with reason organization_role (a member of the active organization writes)
#   `403:none`    403 with reason no_active_organization
#   `403`         403 without a reason (only app admins choose a project's organization)
#   `422:org_id`  422 whose errors name organization_id
#   `A+B` / `-`   a list: 200 with exactly these organizations' rows (`-`: none, total 0)
# `members:X` answers 200 only with X's live members (checked against the members made below).
ORGANIZATIONS = """
actor             list   get:A  get:B  members:A  members:B
a_admin_token     A      200    404    200        404
a_member_token    A      200    404    200        404
b_admin_token     B      404    200    404        200
ab_user_token     A      200    404    200        404
a_member_key      A      200    404    200        404
a_admin_key       A      200    404    200        404
personal_key      A      200    404    404        404
app_admin_key     A+B    200    200    200        200
app_admin_token   A+B    200    200    200        200
"""

PROJECT_READS = """
actor             list   get:A  get:B
a_admin_token     A      200    404
a_member_token    A      200    404
b_admin_token     B      404    200
ab_user_token     A      200    404
a_member_key      A      200    404
a_admin_key       A      200    404
personal_key      -      404    404
app_admin_key     A+B    200    200
app_admin_token   A+B    200    200
"""

# `create` sends no organization_id; `create:X` sends X's id.
PROJECT_WRITES = """
actor             create      create:A   create:B   patch:A   patch:B   delete:A   delete:B
a_admin_token     201>A       201>A      403        200       404       204        404
a_member_token    403:role    403:role   403:role   403:role  404       403:role   404
b_admin_token     201>B       403        201>B      404       200       404        204
ab_user_token     403:role    403:role   403:role   403:role  404       403:role   404
a_member_key      403:role    403:role   403:role   403:role  404       403:role   404
a_admin_key       201>A       201>A      403        200       404       204        404
personal_key      403:none    403:none   403:none   404       404       404        404
app_admin_key     422:org_id  201>A      201>B      200       200       204        204
app_admin_token   201>A       201>A      201>B      200       200       204        204
"""

REASONS = {"organization_role": "role", "no_active_organization": "none"}
FIELDS = {"organization_id": "org_id"}


def parse(table: str) -> dict[str, dict[str, str]]:
    header, *rows = (line.split() for line in table.strip().splitlines())
    parsed = {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows}
    assert len(parsed) == len(rows), "an actor is listed twice"
    return parsed


TABLES = {"organizations": parse(ORGANIZATIONS), "projects": parse(PROJECT_READS), "writes": parse(PROJECT_WRITES)}
ACTORS = list(TABLES["organizations"])
assert all(list(table) == ACTORS for table in TABLES.values()), "every table lists every actor, in one order"


@dataclass
class World:
    organizations: dict[str, Organization]  # "A", "B", "Z" (deleted)
    projects: dict[str, Project]  # one per organization
    members: dict[str, set[UUID]]  # the live members made in each organization
    credentials: dict[str, Callable[[], dict[str, str]]]  # actor -> fresh headers
    made: list[Project] = field(default_factory=list)

    def letter(self, organization_id: str | None) -> str:
        names = {str(org.id): name for name, org in self.organizations.items()}
        return names.get(str(organization_id), f"?{organization_id}")


@pytest.fixture
def world(
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    make_project: Callable[..., Project],
    make_api_key: Callable[..., str],
) -> World:
    a = make_organization(name="Org A", slug="org-a")
    b = make_organization(name="Org B", slug="org-b")
    z = make_organization(name="Org Z", slug="org-z", deleted_at=utcnow())
    organizations = {"A": a, "B": b, "Z": z}
    projects = {name: make_project(org, name=f"project of {name}") for name, org in organizations.items()}
    members: dict[str, set[UUID]] = {"A": set(), "B": set(), "Z": set()}

    def user(memberships: dict[str, str], role: Role = Role.MEMBER, clerk_id: str | None = None) -> User:
        made = make_user(role=role, clerk_id=clerk_id)
        for name, org_role in memberships.items():
            make_membership(organizations[name], made, org_role)
            members[name].add(made.id)
        return made

    def token(clerk_id: str, active: str, role: str) -> Callable[[], dict[str, str]]:
        org = organizations[active]
        claim = organization_claim(org.clerk_id, role, slug=org.slug)
        return lambda: bearer(SESSION_KEY.mint(sub=clerk_id, o=claim))

    def key(owner: User, bound_to: str | None = None) -> Callable[[], dict[str, str]]:
        headers = {"X-API-Key": make_api_key(owner, organization=organizations[bound_to] if bound_to else None)}
        return lambda: headers

    user({"A": "admin"}, clerk_id="user_a_admin")
    user({"A": "member"}, clerk_id="user_a_member")
    user({"B": "admin"}, clerk_id="user_b_admin")
    user({"A": "member", "B": "admin"}, clerk_id="user_ab")
    user({"A": "member"}, role=Role.ADMIN, clerk_id="user_app_admin")
    # Someone who left A: never listed among its members.
    make_membership(a, make_user(), "admin", deleted_at=utcnow())
    # A user deleted in Clerk whose membership event has not arrived: not listed either.
    make_membership(a, make_user(deleted_at=utcnow(), is_active=False, email=None), "member")
    personal = user({"A": "admin"})
    make_membership(b, personal, "admin", deleted_at=utcnow())  # and left B: B is no longer its to see
    credentials = {
        "a_admin_token": token("user_a_admin", "A", "admin"),
        "a_member_token": token("user_a_member", "A", "member"),
        "b_admin_token": token("user_b_admin", "B", "admin"),
        "ab_user_token": token("user_ab", "A", "member"),
        "a_member_key": key(user({"A": "member"}), "A"),
        "a_admin_key": key(user({"A": "admin"}), "A"),
        "personal_key": key(personal),
        "app_admin_key": key(user({}, role=Role.ADMIN)),
        "app_admin_token": token("user_app_admin", "A", "member"),
    }
    return World(organizations, projects, members, credentials)


# -- what a cell observed, in the tables' notation ------------------------------------------------


def refusal(response) -> str:
    """`403:role`, `404`, `422:org_id`...: the status, and the reason or fields a refusal names."""
    status = response.status_code
    if status == 403 and (reason := response.json().get("reason")) is not None:
        return f"403:{REASONS.get(reason, reason)}"
    if status == 422:
        keys = [FIELDS.get(error["key"], error["key"]) for error in response.json().get("errors") or []]
        return f"422:{','.join(keys)}"
    return str(status)


def listed(world: World, response, field_name: str) -> str:
    if response.status_code != 200:
        return refusal(response)
    body = response.json()
    letters = sorted(world.letter(item[field_name]) for item in body["items"])
    if body["total"] != len(letters) or len(set(letters)) != len(letters):
        return f"200 with total {body['total']} and items {letters}"
    return "+".join(letters) or "-"


def org_list(client: TestClient, world: World, headers: dict[str, str]) -> str:
    return listed(world, client.get("/api/organizations", headers=headers), "id")


def org_get(target: str) -> Callable[[TestClient, World, dict[str, str]], str]:
    def run(client: TestClient, world: World, headers: dict[str, str]) -> str:
        organization = world.organizations[target]
        response = client.get(f"/api/organizations/{organization.id}", headers=headers)
        if response.status_code == 200 and response.json()["id"] != str(organization.id):
            return f"200 with another organization: {response.json()}"
        return refusal(response)

    return run


def org_members(target: str) -> Callable[[TestClient, World, dict[str, str]], str]:
    def run(client: TestClient, world: World, headers: dict[str, str]) -> str:
        organization = world.organizations[target]
        response = client.get(f"/api/organizations/{organization.id}/members?limit=100", headers=headers)
        if response.status_code != 200:
            return refusal(response)
        items = response.json()["items"]
        user_ids = {UUID(item["user_id"]) for item in items}
        other_org = {item["organization_id"] for item in items} - {str(organization.id)}
        if user_ids != world.members[target] or other_org or len(items) != len(user_ids):
            return f"200 with members {sorted(map(str, user_ids))} (expected {sorted(map(str, world.members[target]))})"
        return "200"

    return run


def project_list(client: TestClient, world: World, headers: dict[str, str]) -> str:
    return listed(world, client.get("/api/projects?limit=100", headers=headers), "organization_id")


def project_get(target: str) -> Callable[[TestClient, World, dict[str, str]], str]:
    def run(client: TestClient, world: World, headers: dict[str, str]) -> str:
        project = world.projects[target]
        response = client.get(f"/api/projects/{project.id}", headers=headers)
        if response.status_code == 200 and response.json()["id"] != str(project.id):
            return f"200 with another project: {response.json()}"
        return refusal(response)

    return run


def count_projects(session: Session, organization: Organization) -> int:
    return session.scalar(select(func.count()).select_from(Project).where(Project.organization_id == organization.id))


def project_create(target: str | None) -> Callable[..., str]:
    def run(client: TestClient, world: World, headers: dict[str, str], session: Session, **_: object) -> str:
        before = {name: count_projects(session, org) for name, org in world.organizations.items()}
        body: dict[str, str] = {"name": f"created into {target}"}
        if target is not None:
            body["organization_id"] = str(world.organizations[target].id)
        response = client.post("/api/projects", headers=headers, json=body)
        after = {name: count_projects(session, org) for name, org in world.organizations.items()}
        added = {name for name in after if after[name] != before[name]}
        if response.status_code != 201:
            return refusal(response) + (f" yet a project was added to {added}" if added else "")
        owner = world.letter(response.json()["organization_id"])
        return f"201>{owner}" if added == {owner} else f"201>{owner} but the rows added are in {added}"

    return run


def project_patch(target: str) -> Callable[..., str]:
    def run(client: TestClient, world: World, headers: dict[str, str], session: Session, make_project) -> str:
        project_id = make_project(world.organizations[target], name="before the patch").id  # this cell's own row
        response = client.patch(f"/api/projects/{project_id}", headers=headers, json={"name": "patched"})
        session.expire_all()
        name = session.get(Project, project_id).name
        if response.status_code == 200:
            return "200" if name == "patched" == response.json()["name"] else f"200 but the name is {name!r}"
        return refusal(response) + (" yet the row changed" if name != "before the patch" else "")

    return run


def project_delete(target: str) -> Callable[..., str]:
    def run(client: TestClient, world: World, headers: dict[str, str], session: Session, make_project) -> str:
        project_id = make_project(world.organizations[target], name="to delete").id  # this cell's own row
        response = client.delete(f"/api/projects/{project_id}", headers=headers)
        session.expire_all()
        gone = session.get(Project, project_id) is None
        if response.status_code == 204:
            return "204" if gone else "204 but the row is still there"
        return refusal(response) + (" yet the row is gone" if gone else "")

    return run


READ_CELLS: dict[str, dict[str, Callable[[TestClient, World, dict[str, str]], str]]] = {
    "organizations": {
        "list": org_list,
        "get:A": org_get("A"),
        "get:B": org_get("B"),
        "members:A": org_members("A"),
        "members:B": org_members("B"),
    },
    "projects": {"list": project_list, "get:A": project_get("A"), "get:B": project_get("B")},
}
WRITE_CELLS: dict[str, Callable[..., str]] = {
    "create": project_create(None),
    "create:A": project_create("A"),
    "create:B": project_create("B"),
    "patch:A": project_patch("A"),
    "patch:B": project_patch("B"),
    "delete:A": project_delete("A"),
    "delete:B": project_delete("B"),
}


def test_every_column_of_the_tables_is_checked() -> None:
    for table, cells in (*READ_CELLS.items(), ("writes", WRITE_CELLS)):
        assert set(next(iter(TABLES[table].values()))) == set(cells), table


@pytest.mark.parametrize("actor", ACTORS)
def test_tenant_matrix(
    clerk_client: TestClient, world: World, session: Session, make_project: Callable[..., Project], actor: str
) -> None:
    """Every cell of the actor's rows: reads first (on the world's rows), then writes (each on its own)."""
    headers = world.credentials[actor]
    wrong: list[str] = []
    for table, cells in READ_CELLS.items():
        for column, run in cells.items():
            observed, expected = run(clerk_client, world, headers()), TABLES[table][actor][column]
            if observed != expected:
                wrong.append(f"{table} {column}: expected {expected}, got {observed}")
    for column, run in WRITE_CELLS.items():
        observed = run(clerk_client, world, headers(), session=session, make_project=make_project)
        expected = TABLES["writes"][actor][column]
        if observed != expected:
            wrong.append(f"writes {column}: expected {expected}, got {observed}")
    assert not wrong, f"{actor}:\n  " + "\n  ".join(wrong)


def test_the_deleted_organization_and_its_project_stay_unreachable(clerk_client: TestClient, world: World) -> None:
    """Z was deleted in Clerk: its rows wait for the purge, and no one reaches them, app admins included."""
    z, project = world.organizations["Z"], world.projects["Z"]
    for actor in ("app_admin_key", "app_admin_token", "personal_key"):
        headers = world.credentials[actor]()
        assert clerk_client.get(f"/api/organizations/{z.id}", headers=headers).status_code == 404, actor
        assert clerk_client.get(f"/api/projects/{project.id}", headers=headers).status_code == 404, actor
        assert clerk_client.patch(f"/api/projects/{project.id}", headers=headers, json={"name": "x"}).status_code == 404
        assert clerk_client.delete(f"/api/projects/{project.id}", headers=headers).status_code == 404, actor

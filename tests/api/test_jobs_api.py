"""Background jobs over HTTP, on both databases: starting exports (202 + Location), polling, results,
and who may see what on every jobs route. Jobs run in-process through `drain` (no Prefect)."""

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar import Controller, Request
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.api import main
from app.api.dependencies import UnitOfWorkDep
from app.api.request_log import request_id
from app.api.route_decorators import post
from app.bootstrap import Container
from app.domains.base.actors import Role
from app.domains.base.exceptions import ConflictError
from app.domains.jobs.models import Job
from app.domains.jobs.permissions import JobPermission
from app.domains.jobs.runner import drain
from app.domains.jobs.service import JobService
from app.domains.organizations.models import Organization

JOB_FIELDS = {
    *("id", "kind", "parameters", "status", "attempts", "requested_by", "organization_id", "request_id"),
    *("run_after", "started_at", "finished_at", "failure_reason", "created_at", "updated_at"),
}
PEOPLE = ("member", "other", "org_admin", "app_admin", "outsider")


def run_jobs(container: Container) -> int:
    return drain(container.unit_of_work, "test-worker", 60)


def test_a_client_starts_an_export_polls_it_and_reads_the_document(
    client: TestClient, container: Container, as_user: Callable
) -> None:
    user, headers = as_user(first_name="Ada")
    started = client.post("/api/users/me/exports", headers={**headers, "X-Request-ID": "export-42"})
    assert started.status_code == 202
    job = started.json()
    assert set(job) == JOB_FIELDS  # no result, no lease
    assert started.headers["location"] == f"/api/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["attempts"], job["parameters"]) == ("user_export", "queued", 0, {})
    assert (job["requested_by"], job["organization_id"], job["request_id"]) == (str(user.id), None, "export-42")

    assert client.get(started.headers["location"], headers=headers).json()["status"] == "queued"
    early = client.get(f"/api/jobs/{job['id']}/result", headers=headers)
    assert early.status_code == 409
    assert early.headers["content-type"].startswith("application/problem+json")
    assert (early.json()["detail"], early.json()["reason"]) == ("the job has not succeeded", "queued")

    assert run_jobs(container) == 1
    done = client.get(started.headers["location"], headers=headers).json()
    assert (done["status"], done["attempts"], done["failure_reason"]) == ("succeeded", 1, None)
    assert done["started_at"] <= done["finished_at"]
    document = client.get(f"/api/jobs/{job['id']}/result", headers=headers)
    assert document.status_code == 200
    assert document.json()["user"]["first_name"] == "Ada"
    assert {"kind", "generated_at", "user", "api_keys", "memberships", "projects"} == set(document.json())


def test_a_job_without_a_client_request_id_carries_the_generated_one(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    started = client.post("/api/users/me/exports", headers=headers)
    assert started.json()["request_id"] == started.headers["x-request-id"]


def test_a_request_that_fails_after_queuing_leaves_no_job(
    monkeypatch: pytest.MonkeyPatch, container: Container, as_user: Callable, session: Session
) -> None:
    """The job is written in the request's transaction: a handler that raises after enqueuing rolls
    it back with everything else."""

    class Failing(Controller):
        path = "/api/failing"

        @post("/", operation_id="exportThenFail", requires=JobPermission.JOBS_WRITE)
        def export_then_fail(self, uow: UnitOfWorkDep, request: Request[Any, Any, Any]) -> None:
            uow.service(JobService).enqueue("user_export", {}, request_id(request.scope))
            raise ConflictError("something after the export failed")

    monkeypatch.setattr(main, "controllers", [*main.controllers, Failing])
    _, headers = as_user()
    with TestClient(main.create_app(container=container)) as client:
        assert client.post("/api/failing", headers=headers).status_code == 409
        assert client.post("/api/users/me/exports", headers=headers).status_code == 202
    assert session.scalar(select(func.count()).select_from(Job)) == 1  # only the request that committed


def test_starting_an_export_needs_jobs_write_and_the_data_read_permissions(
    client: TestClient, container: Container, as_user: Callable
) -> None:
    _, read_only = as_user(scopes=["jobs:read", "users:read", "api_keys:read", "organizations:read", "projects:read"])
    refused = client.post("/api/users/me/exports", headers=read_only)
    assert (refused.status_code, refused.json()["required_permission"]) == (403, "jobs:write")
    _, jobs_only = as_user(scopes=["jobs:read", "jobs:write"])
    refused = client.post("/api/users/me/exports", headers=jobs_only)
    assert (refused.status_code, refused.json()["required_permission"]) == (403, "api_keys:read")


@pytest.fixture
def people(
    make_organization: Callable, as_member: Callable, as_user: Callable
) -> tuple[dict[str, Organization], dict[str, dict]]:
    """acme (a member, another member, an admin), globex (an admin: the outsider), an app admin."""
    acme, globex = make_organization(name="Acme"), make_organization(name="Globex")
    headers = {
        "member": as_member(acme, "member")[1],
        "other": as_member(acme, "member")[1],
        "org_admin": as_member(acme, "admin")[1],
        "app_admin": as_user(role=Role.ADMIN)[1],  # a personal key: no active organization
        "outsider": as_member(globex, "admin")[1],
    }
    return {"acme": acme, "globex": globex}, headers


def test_who_may_start_an_organizations_export(client: TestClient, people: tuple) -> None:
    organizations, headers = people
    expected = {
        "acme": {"member": 403, "other": 403, "org_admin": 202, "app_admin": 202, "outsider": 404},
        "globex": {"member": 404, "other": 404, "org_admin": 404, "app_admin": 202, "outsider": 202},
        "unknown": {"member": 404, "other": 404, "org_admin": 404, "app_admin": 404, "outsider": 404},
    }
    ids = {name: organization.id for name, organization in organizations.items()} | {"unknown": uuid4()}
    answered = {
        name: {
            who: client.post(f"/api/organizations/{ids[name]}/exports", headers=headers[who]).status_code
            for who in PEOPLE
        }
        for name in expected
    }
    assert answered == expected
    refused = client.post(f"/api/organizations/{ids['acme']}/exports", headers=headers["member"]).json()
    assert refused["reason"] == "organization_role"
    assert all(client.post("/api/users/me/exports", headers=headers[who]).status_code == 202 for who in PEOPLE)


def test_every_jobs_route_shows_a_job_only_to_those_who_may_see_it(
    client: TestClient, container: Container, people: tuple
) -> None:
    """IDOR: each person asks for each job, its result and the list. A member never sees another
    member's job; an organization's admin sees the organization's jobs but not its members'
    personal exports; an app admin sees all; another organization sees none of them (404s)."""
    organizations, headers = people

    def start(who: str, path: str) -> UUID:
        response = client.post(path, headers=headers[who])
        assert response.status_code == 202, response.json()
        return UUID(response.json()["id"])

    jobs = {
        "member's export": start("member", "/api/users/me/exports"),
        "other's export": start("other", "/api/users/me/exports"),
        "acme's export": start("org_admin", f"/api/organizations/{organizations['acme'].id}/exports"),
        "globex's export": start("outsider", f"/api/organizations/{organizations['globex'].id}/exports"),
    }
    assert run_jobs(container) == 4
    ok, hidden = 200, 404
    expected = {
        "member's export": {"member": ok, "other": hidden, "org_admin": hidden, "app_admin": ok, "outsider": hidden},
        "other's export": {"member": hidden, "other": ok, "org_admin": hidden, "app_admin": ok, "outsider": hidden},
        "acme's export": {"member": hidden, "other": hidden, "org_admin": ok, "app_admin": ok, "outsider": hidden},
        "globex's export": {"member": hidden, "other": hidden, "org_admin": hidden, "app_admin": ok, "outsider": ok},
    }
    for suffix in ("", "/result"):
        answered = {
            job: {who: client.get(f"/api/jobs/{job_id}{suffix}", headers=headers[who]).status_code for who in PEOPLE}
            for job, job_id in jobs.items()
        }
        assert answered == expected, suffix

    listed = {
        who: {job for job, job_id in jobs.items() if str(job_id) in {item["id"] for item in page["items"]}}
        for who in PEOPLE
        for page in [client.get("/api/jobs", headers=headers[who]).json()]
    }
    assert listed == {who: {job for job, seen_by in expected.items() if seen_by[who] == ok} for who in PEOPLE}
    missing = uuid4()
    assert all(client.get(f"/api/jobs/{missing}", headers=headers[who]).status_code == 404 for who in PEOPLE)
    assert all(client.get(f"/api/jobs/{missing}/result", headers=headers[who]).status_code == 404 for who in PEOPLE)


def test_the_organizations_export_document(client: TestClient, container: Container, people: tuple) -> None:
    organizations, headers = people
    acme = organizations["acme"]
    job = client.post(f"/api/organizations/{acme.id}/exports", headers=headers["org_admin"]).json()
    assert (job["organization_id"], job["parameters"]) == (str(acme.id), {"organization_id": str(acme.id)})
    run_jobs(container)
    document = client.get(f"/api/jobs/{job['id']}/result", headers=headers["org_admin"]).json()
    assert document["organization"]["name"] == "Acme"
    assert sorted(member["role"] for member in document["members"]) == ["admin", "member", "member"]


def test_job_lists_take_the_list_parameters(client: TestClient, container: Container, as_user: Callable) -> None:
    _, headers = as_user()
    for _ in range(3):
        client.post("/api/users/me/exports", headers=headers)
    page = client.get("/api/jobs", headers=headers, params={"limit": 2, "order_by": "created_at", "sort_order": "asc"})
    assert page.status_code == 200
    assert (len(page.json()["items"]), page.json()["total"]) == (2, 3)
    assert client.get("/api/jobs", headers=headers, params={"order_by": "result"}).status_code == 400
    assert client.get("/api/jobs", headers=headers, params={"search": "user_export"}).json()["total"] == 3


def test_a_bound_keys_own_export_holds_nothing_of_another_organization(
    client: TestClient,
    container: Container,
    make_organization: Callable,
    make_membership: Callable,
    make_project: Callable,
    make_api_key: Callable,
    as_member: Callable,
) -> None:
    """A key bound to acme acts only inside acme: its user's export must not carry globex's name or
    projects (the routes would show it neither), and the user's globex-bound key must not read a
    document started from acme."""
    acme, globex = make_organization(name="Acme"), make_organization(name="Globex Secret Org")
    user, in_acme = as_member(acme, "member")
    make_membership(globex, user, "member")
    in_globex = {"X-API-Key": make_api_key(user, organization=globex)}
    mine_in_acme = make_project(acme, name="Acme roadmap", created_by=user.id)
    make_project(globex, name="Globex merger plan", created_by=user.id)
    assert client.get("/api/organizations", headers=in_acme).json()["total"] == 1  # the routes: acme only

    started = client.post("/api/users/me/exports", headers=in_acme)
    assert started.status_code == 202
    assert run_jobs(container) == 1
    document = client.get(f"/api/jobs/{started.json()['id']}/result", headers=in_acme)
    assert document.status_code == 200
    assert [project["id"] for project in document.json()["projects"]] == [str(mine_in_acme.id)]
    assert [membership["organization_id"] for membership in document.json()["memberships"]] == [str(acme.id)]
    assert "Globex" not in document.text
    assert client.get(f"/api/jobs/{started.json()['id']}/result", headers=in_globex).status_code == 404

"""A scripted session of a client author, against a live server, through the client
openapi-python-client generated from the server's OpenAPI document: the same calls as
../typescript/src/session.ts. Every answer, errors included, is read through the generated models;
an undocumented status raises (`raise_on_unexpected_status`), any surprise fails (exit status 1).

Environment: BASE_URL; OWNER_KEY (an organization admin's key bound to it), MEMBER_KEY (a member's
key bound to the same organization), ADMIN_KEY (an app admin's), OWNER_EMAIL; FAILURES_BEFORE_429
(the server's AUTH_FAILURES_PER_KEY); TAG (names this session's rows).
"""

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from contract import (
    APIKeyCreate,
    APIKeyCreated,
    APIKeyPage,
    Client,
    ListApiKeysOrderBy,
    ListApiKeysSortOrder,
    ListProjectsOrderBy,
    ListProjectsSortOrder,
    ProblemDetails,
    ProjectCreate,
    ProjectPage,
    ProjectPublic,
    ProjectStatus,
    ProjectUpdate,
    Response,
    UserCreate,
    UserPublic,
    create_api_key,
    create_project,
    create_user,
    delete_project,
    error_keys,
    get_current_user,
    get_project,
    list_api_keys,
    list_projects,
    revoke_api_key,
    scopes,
    update_project,
)

BASE_URL = os.environ["BASE_URL"]
TAG = os.environ["TAG"]
OWNER_EMAIL = os.environ["OWNER_EMAIL"]


def client_for(key: str) -> Client:
    return Client(base_url=BASE_URL, headers={"X-API-Key": key}, raise_on_unexpected_status=True)


calls = 0


def answer[T](name: str, response: Response[Any], status: int, kind: type[T]) -> T:
    """The parsed body of one call, checked for its status and its generated type, and logged."""
    global calls  # noqa: PLW0603 - a script's call counter
    calls += 1
    print(f"{calls:2} {name}: {response.status_code}")
    assert response.status_code == status, f"{name}: expected {status}, got {response.status_code}"
    assert isinstance(response.parsed, kind), f"{name}: parsed as {type(response.parsed).__name__}"
    return response.parsed


def problem(name: str, response: Response[Any], status: int) -> ProblemDetails:
    refused = answer(name, response, status, ProblemDetails)
    assert refused.status == status
    assert isinstance(refused.detail, str)
    return refused


def no_content(name: str, response: Response[Any]) -> None:
    global calls  # noqa: PLW0603
    calls += 1
    print(f"{calls:2} {name}: {response.status_code}")
    assert response.status_code == 204, f"{name}: expected 204, got {response.status_code}"


def main() -> None:
    owner = client_for(os.environ["OWNER_KEY"])
    member_ = client_for(os.environ["MEMBER_KEY"])
    admin = client_for(os.environ["ADMIN_KEY"])

    me = answer("getCurrentUser", get_current_user.sync_detailed(client=owner), 200, UserPublic)
    assert me.email == OWNER_EMAIL

    # create, list with every parameter, patch, get, delete
    name = f"Apollo {TAG}"
    new = ProjectCreate(name=name, description="first", status=ProjectStatus.DRAFT)
    project = answer("createProject", create_project.sync_detailed(client=owner, body=new), 201, ProjectPublic)
    assert project.name == name
    page = answer(
        "listProjects (every parameter)",
        list_projects.sync_detailed(
            client=owner,
            limit=5,
            offset=0,
            search=TAG,
            order_by=ListProjectsOrderBy.NAME,
            sort_order=ListProjectsSortOrder.ASC,
            created_after=(project.created_at - timedelta(minutes=1)).isoformat(),
            created_before=(project.created_at + timedelta(minutes=1)).isoformat(),
        ),
        200,
        ProjectPage,
    )
    assert [item.id for item in page.items] == [project.id]
    assert (page.total, page.total_is_exact) == (1, True)

    # Idempotency-Key: a retry with the same key and body gets the first answer back; another body, a 422
    retry_key = str(uuid.uuid4())
    once = ProjectCreate(name=f"Idempotent {TAG}")
    first = create_project.sync_detailed(client=owner, body=once, idempotency_key=retry_key)
    kept = answer("createProject (Idempotency-Key)", first, 201, ProjectPublic)
    assert "Idempotent-Replayed" not in first.headers
    again = create_project.sync_detailed(client=owner, body=once, idempotency_key=retry_key)
    assert answer("createProject (same key: replayed)", again, 201, ProjectPublic).id == kept.id
    assert again.headers["Idempotent-Replayed"] == "true"
    other = ProjectCreate(name=f"Other {TAG}")
    reused = create_project.sync_detailed(client=owner, body=other, idempotency_key=retry_key)
    refused = problem("createProject (same key, another body)", reused, 422)
    assert refused.reason == "idempotency_key_reused"
    assert error_keys(refused) == ["Idempotency-Key"]
    change = ProjectUpdate(description="changed", status=ProjectStatus.ACTIVE)
    changed = answer(
        "updateProject",
        update_project.sync_detailed(project.id, client=owner, body=change),
        200,
        ProjectPublic,
    )
    assert (changed.status, changed.description) == (ProjectStatus.ACTIVE, "changed")
    seen = answer("getProject (member)", get_project.sync_detailed(project.id, client=member_), 200, ProjectPublic)
    assert seen.name == name

    # 400: a body the schema refuses, field by field
    refused = problem(
        "createProject (empty name)", create_project.sync_detailed(client=owner, body=ProjectCreate(name="")), 400
    )
    assert error_keys(refused) == ["name"]
    # 403: a member may read the organization's projects, not write them
    refused = problem(
        "updateProject (member)",
        update_project.sync_detailed(project.id, client=member_, body=ProjectUpdate(name="x")),
        403,
    )
    assert refused.reason == "organization_role"
    # 409: an e-mail that is taken
    problem(
        "createUser (taken e-mail)", create_user.sync_detailed(client=admin, body=UserCreate(email=OWNER_EMAIL)), 409
    )

    # API keys: create (narrower scopes), list, a 422, the 403 of a missing scope, a 429, revoke, the 401
    request = APIKeyCreate(
        name=f"read-only {TAG}", scopes=scopes("projects:read"), expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    key = answer("createApiKey", create_api_key.sync_detailed(client=owner, body=request), 201, APIKeyCreated)
    assert key.scopes == ["projects:read"]
    assert key.key.startswith(f"{key.prefix}_")
    keys = answer(
        "listApiKeys",
        list_api_keys.sync_detailed(
            client=owner, limit=100, order_by=ListApiKeysOrderBy.CREATED_AT, sort_order=ListApiKeysSortOrder.DESC
        ),
        200,
        APIKeyPage,
    )
    listed = next(item for item in keys.items if item.id == key.id)
    assert (listed.name, listed.revoked_at) == (f"read-only {TAG}", None)
    assert "key" not in listed.to_dict(), "a listed key never shows its secret"
    expired = APIKeyCreate(name="expired", expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    refused = problem(
        "createApiKey (expires in the past)", create_api_key.sync_detailed(client=owner, body=expired), 422
    )
    assert error_keys(refused) == ["expires_at"]
    read_only = client_for(key.key)
    refused = problem(
        "createProject (read-only key)",
        create_project.sync_detailed(client=read_only, body=ProjectCreate(name="x")),
        403,
    )
    assert refused.required_permission == "projects:write"

    # Wrong secrets on the key's (public) prefix: 401s, then 429s with the wait; the key itself still works.
    wrong = client_for(f"{key.prefix}_{'A' * (len(key.key) - len(key.prefix) - 1)}")
    for attempt in range(1, int(os.environ["FAILURES_BEFORE_429"]) + 1):
        problem(f"getCurrentUser (wrong secret {attempt})", get_current_user.sync_detailed(client=wrong), 401)
    response = get_current_user.sync_detailed(client=wrong)
    refused = problem("getCurrentUser (one wrong secret too many)", response, 429)
    assert isinstance(refused.retry_after, int), refused.retry_after
    assert refused.retry_after > 0
    assert response.headers["Retry-After"] == str(refused.retry_after)
    answer(
        "getProject (the real key, meanwhile)",
        get_project.sync_detailed(project.id, client=read_only),
        200,
        ProjectPublic,
    )

    no_content("revokeApiKey", revoke_api_key.sync_detailed(key.id, client=owner))
    revoked = get_project.sync_detailed(project.id, client=read_only)
    assert problem("getProject (revoked key)", revoked, 401).detail == "API key revoked"
    assert "ApiKey" in revoked.headers["WWW-Authenticate"]

    # delete, then 404
    no_content("deleteProject", delete_project.sync_detailed(project.id, client=owner))
    problem("getProject (deleted)", get_project.sync_detailed(project.id, client=owner), 404)

    print(f"python session: {calls} calls as expected")


if __name__ == "__main__":
    main()

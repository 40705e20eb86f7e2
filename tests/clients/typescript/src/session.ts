/**
 * A scripted session of a client author, against a live server, through openapi-fetch and the types
 * openapi-typescript generated (default options) from the server's OpenAPI document. Every answer,
 * errors included, is read through those types; any surprise throws (exit status 1).
 *
 * Environment: BASE_URL; OWNER_KEY (an organization admin's key bound to it), MEMBER_KEY (a member's
 * key bound to the same organization), ADMIN_KEY (an app admin's), OWNER_EMAIL; FAILURES_BEFORE_429
 * (the server's AUTH_FAILURES_PER_KEY); TAG (names this session's rows).
 */
import assert from "node:assert/strict";
import createClient from "openapi-fetch";

import {
  type APIKeyCreated,
  type APIKeyPage,
  errorKeys,
  type paths,
  type Problem,
  type ProjectPage,
  type ProjectPublic,
  type UserPublic,
} from "./contract.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const baseUrl = env("BASE_URL");
const tag = env("TAG");
const clientFor = (key: string) => createClient<paths>({ baseUrl, headers: { "X-API-Key": key } });
const owner = clientFor(env("OWNER_KEY"));
const member_ = clientFor(env("MEMBER_KEY"));
const admin = clientFor(env("ADMIN_KEY"));

let calls = 0;
/** One call's outcome, checked for its expected status and logged. */
function expectStatus(name: string, response: Response, status: number): void {
  calls += 1;
  console.log(`${String(calls).padStart(2)} ${name}: ${response.status}`);
  assert.equal(response.status, status, `${name}: expected ${status}, got ${response.status}`);
}

/** The problem of a refused call: present, with the status it was sent with. */
function problemOf(error: Problem | undefined, status: number): Problem {
  assert.ok(error, `expected a problem document with status ${status}`);
  assert.equal(error.status, status);
  assert.equal(typeof error.detail, "string");
  return error;
}

// me
{
  const { data, response } = await owner.GET("/api/users/me");
  expectStatus("getCurrentUser", response, 200);
  const me: UserPublic | undefined = data;
  assert.equal(me?.email, env("OWNER_EMAIL"));
}

// create, list with every parameter, patch, get, delete
const name = `Apollo ${tag}`;
const created = await owner.POST("/api/projects", { body: { name, description: "first", status: "draft" } });
expectStatus("createProject", created.response, 201);
const project: ProjectPublic | undefined = created.data;
assert.ok(project);
assert.equal(project.name, name);
{
  const createdAt = Date.parse(project.created_at);
  const { data, response } = await owner.GET("/api/projects", {
    params: {
      query: {
        limit: 5,
        offset: 0,
        search: tag,
        order_by: "name",
        sort_order: "asc",
        created_after: new Date(createdAt - 60_000).toISOString(),
        created_before: new Date(createdAt + 60_000).toISOString(),
      },
    },
  });
  expectStatus("listProjects (every parameter)", response, 200);
  const page: ProjectPage | undefined = data;
  assert.ok(page);
  assert.deepEqual(
    page.items.map((item) => item.id),
    [project.id],
  );
  assert.equal(page.total, 1);
  assert.equal(page.total_is_exact, true);
}

// Idempotency-Key: a retry with the same key and body gets the first answer back; another body, a 422
{
  const params = { header: { "Idempotency-Key": crypto.randomUUID() } };
  const body = { name: `Idempotent ${tag}` };
  const first = await owner.POST("/api/projects", { params, body });
  expectStatus("createProject (Idempotency-Key)", first.response, 201);
  assert.equal(first.response.headers.get("Idempotent-Replayed"), null);
  const again = await owner.POST("/api/projects", { params, body });
  expectStatus("createProject (same key: replayed)", again.response, 201);
  const kept: ProjectPublic | undefined = first.data;
  assert.ok(kept && again.data);
  assert.equal(again.data.id, kept.id);
  assert.equal(again.response.headers.get("Idempotent-Replayed"), "true");
  const { error, response } = await owner.POST("/api/projects", { params, body: { name: `Other ${tag}` } });
  expectStatus("createProject (same key, another body)", response, 422);
  const refused = problemOf(error, 422);
  assert.equal(refused.reason, "idempotency_key_reused");
  assert.deepEqual(errorKeys(refused), ["Idempotency-Key"]);
}
const path = { params: { path: { project_id: project.id } } };
{
  const { data, response } = await owner.PATCH("/api/projects/{project_id}", {
    ...path,
    body: { description: "changed", status: "active" },
  });
  expectStatus("updateProject", response, 200);
  assert.equal(data?.status, "active");
  assert.equal(data?.description, "changed");
}
{
  const { data, response } = await member_.GET("/api/projects/{project_id}", path);
  expectStatus("getProject (member)", response, 200);
  assert.equal(data?.name, name);
}

// 400: a body the schema refuses, field by field
{
  const { error, response } = await owner.POST("/api/projects", { body: { name: "" } });
  expectStatus("createProject (empty name)", response, 400);
  assert.deepEqual(errorKeys(problemOf(error, 400)), ["name"]);
}
// 403: a member may read the organization's projects, not write them
{
  const { error, response } = await member_.PATCH("/api/projects/{project_id}", { ...path, body: { name: "x" } });
  expectStatus("updateProject (member)", response, 403);
  assert.equal(problemOf(error, 403).reason, "organization_role");
}
// 409: an e-mail that is taken
{
  const { error, response } = await admin.POST("/api/users", { body: { email: env("OWNER_EMAIL") } });
  expectStatus("createUser (taken e-mail)", response, 409);
  problemOf(error, 409);
}

// API keys: create (narrower scopes), list, a 422, the 403 of a missing scope, a 429, revoke, the 401
const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
const issued = await owner.POST("/api/api-keys", {
  body: { name: `read-only ${tag}`, scopes: ["projects:read"], expires_at: expiresAt },
});
expectStatus("createApiKey", issued.response, 201);
const key: APIKeyCreated | undefined = issued.data;
assert.ok(key);
assert.deepEqual(key.scopes, ["projects:read"]);
assert.ok(key.key.startsWith(`${key.prefix}_`));
{
  const { data, response } = await owner.GET("/api/api-keys", {
    params: { query: { limit: 100, order_by: "created_at", sort_order: "desc" } },
  });
  expectStatus("listApiKeys", response, 200);
  const keys: APIKeyPage | undefined = data;
  const listed = keys?.items.find((item) => item.id === key.id);
  assert.equal(listed?.name, `read-only ${tag}`);
  assert.equal(listed?.revoked_at, null);
  assert.equal("key" in (listed ?? {}), false, "a listed key never shows its secret");
}
{
  const { error, response } = await owner.POST("/api/api-keys", {
    body: { name: "expired", expires_at: "2000-01-01T00:00:00Z" },
  });
  expectStatus("createApiKey (expires in the past)", response, 422);
  assert.deepEqual(errorKeys(problemOf(error, 422)), ["expires_at"]);
}
const readOnly = clientFor(key.key);
{
  const { error, response } = await readOnly.POST("/api/projects", { body: { name: "x" } });
  expectStatus("createProject (read-only key)", response, 403);
  assert.equal(problemOf(error, 403).required_permission, "projects:write");
}
{
  // Wrong secrets on the key's (public) prefix: 401s, then 429s with the wait; the key itself still works.
  const wrong = clientFor(`${key.prefix}_${"A".repeat(key.key.length - key.prefix.length - 1)}`);
  const failures = Number(env("FAILURES_BEFORE_429"));
  for (let attempt = 1; attempt <= failures; attempt += 1) {
    const { error, response } = await wrong.GET("/api/users/me");
    expectStatus(`getCurrentUser (wrong secret ${attempt})`, response, 401);
    problemOf(error, 401);
  }
  const { error, response } = await wrong.GET("/api/users/me");
  expectStatus("getCurrentUser (one wrong secret too many)", response, 429);
  const retryAfter = problemOf(error, 429).retry_after;
  assert.ok(retryAfter !== undefined && retryAfter > 0, `retry_after: ${String(retryAfter)}`);
  assert.equal(response.headers.get("Retry-After"), String(retryAfter));
  const still = await readOnly.GET("/api/projects/{project_id}", path);
  expectStatus("getProject (the real key, meanwhile)", still.response, 200);
}
{
  const { response } = await owner.DELETE("/api/api-keys/{key_id}", { params: { path: { key_id: key.id } } });
  expectStatus("revokeApiKey", response, 204);
}
{
  const { error, response } = await readOnly.GET("/api/projects/{project_id}", path);
  expectStatus("getProject (revoked key)", response, 401);
  assert.equal(problemOf(error, 401).detail, "API key revoked");
  assert.match(response.headers.get("WWW-Authenticate") ?? "", /ApiKey/);
}

// delete, then 404
{
  const { response } = await owner.DELETE("/api/projects/{project_id}", path);
  expectStatus("deleteProject", response, 204);
}
{
  const { error, response } = await owner.GET("/api/projects/{project_id}", path);
  expectStatus("getProject (deleted)", response, 404);
  problemOf(error, 404);
}

console.log(`typescript session: ${calls} calls as expected`);

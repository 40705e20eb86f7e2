/**
 * Every name of the generated types this session relies on, in one place: when the OpenAPI document
 * renames a component, only this file changes. Operations are reached through `paths` by URL.
 */
import type { components, paths } from "../generated/api.js";

type Schemas = components["schemas"];

export type { paths };
export type Problem = Schemas["ProblemDetails"];
export type UserPublic = Schemas["UserPublic"];
export type ProjectPublic = Schemas["ProjectPublic"];
export type ProjectPage = Schemas["Page_app.domains.projects.schemas.ProjectPublic_"];
export type APIKeyCreated = Schemas["APIKeyCreated"];
export type APIKeyPage = Schemas["Page_app.domains.users.schemas.APIKeyPublic_"];

/** The `key` of each item of a problem's `errors` (the fields it names). */
export function errorKeys(problem: Problem): unknown[] {
  return (problem.errors ?? []).map((item) => item.key);
}

/**
 * A member of a problem the document may not declare yet (`retry_after` on 429, `required_permission`
 * on 403): typed by the generated schema once it declares it, `unknown` until then.
 */
export function member<K extends string>(problem: Problem, name: K): unknown {
  return name in problem ? (problem as Record<K, unknown>)[name] : undefined;
}

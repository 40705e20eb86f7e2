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
export type ProjectPage = Schemas["ProjectPublicPage"];
export type APIKeyCreated = Schemas["APIKeyCreated"];
export type APIKeyPage = Schemas["APIKeyPublicPage"];

/** The `key` of each item of a problem's `errors` (the fields it names). */
export function errorKeys(problem: Problem): string[] {
  return (problem.errors ?? []).map((item) => item.key);
}


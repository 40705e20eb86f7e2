"""The OpenAPI document: a contract a client author can generate code from and trust.

Litestar writes the paths, operations, parameters and problem responses from the routes (their
summaries and descriptions come from `app.api.route_decorators`). `openapi_document` then completes
it, for every route alike, so a new domain's routes get all of it without a line of their own:

- The schemas of request bodies and responses are pydantic's own JSON schemas of the handlers'
  types: what validation checks (patterns, limits, `additionalProperties: false`, no `null` where
  `null` is refused) and what serialisation sends. A request field with a default is optional and
  states the default in its description (a `default` would make openapi-typescript require it); a
  response field is always `required` (pydantic always sends it), nullable where it may be null.
  Components are named and titled by their class (`UserPublic`, a page of them `UserPublicPage`),
  never by a module path, so moving a module renames no generated type.
- Every response states `X-Request-ID`, 401 `WWW-Authenticate`, 429 and 503 `Retry-After`; every
  operation takes an optional `X-Request-ID`.
- The top level: a description (authentication, errors, lists, methods), the tags with the
  controllers' descriptions, contact and license, and the three security schemes.

The document is built once per app, on first use, and served at /schema/openapi.json and by the
docs pages; `python -m app.api.openapi_file` writes it to docs/openapi.json.
"""

import copy
import inspect
import json
import re
import sys
from collections.abc import Callable
from types import NoneType
from typing import Any, get_args, get_origin

from litestar import Litestar, Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, Contact, License, SecurityScheme, Server
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from app.api.auth import API_KEY_HEADER, SESSION_COOKIE
from app.api.problems import PROBLEM_MEDIA_TYPE, ProblemDetails
from app.api.request_log import REQUEST_ID_HEADER
from app.api.route_decorators import DOCUMENTED_ONLY

TITLE = "Backend template API"
VERSION = "0.1.0"
SCHEMA_REF = "#/components/schemas/{model}"
# What pydantic's schema generator walks: a type's core schema, or one field of a class.
type _CoreSchemaOrField = (
    CoreSchema
    | core_schema.ModelField
    | core_schema.DataclassField
    | core_schema.TypedDictField
    | core_schema.ComputedField
)
_FIELD_TYPES = {"model-field", "dataclass-field", "typed-dict-field"}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

DESCRIPTION = f"""\
A domain-first backend: users and their API keys, organizations (Clerk's) and their projects, \
background jobs.

**Authentication.** Send an API key in `{API_KEY_HEADER}`, or a Clerk session token as \
`Authorization: Bearer <token>` or in the `{SESSION_COOKIE}` cookie (first present wins). Each \
operation states the permission it requires; an API key holds the permissions it was given \
(`scopes`), a session its user's. Data of an organization is reached through the request's active \
organization (the session's, or the one the key is bound to).

**Errors** are RFC 9457 problem details (`application/problem+json`, the `ProblemDetails` schema): \
`errors` lists invalid fields (400, 422), `reason` names the check that failed, \
`required_permission` the permission a 403 lacked, `retry_after` the seconds a 429 asks to wait. \
A row the caller may not see is a 404, as one that does not exist. A method a path does not list \
is a 405 problem with an `Allow` header; `OPTIONS` on any path answers 204 with the same `Allow`.

**Lists** take `limit`, `offset`, `search`, `order_by` (an enum per list), `sort_order` and a \
`created_after`/`created_before` window; `total` is counted up to 10 000 rows (past that it is \
10 000 and `total_is_exact` is false).

**Request ids.** Every response carries `{REQUEST_ID_HEADER}`: the request's own when it sent a \
plain token of at most 128 characters, else a new one; the server's log lines carry it too.

**Servers.** The paths are relative to the host serving this document (`/`).
"""

# Edit for your deployment: who answers questions about the API, and under which terms it is used.
CONTACT = Contact(name="The API's maintainers", url="https://github.com/your-org/your-api/issues")
LICENSE = License(name="Proprietary", identifier="LicenseRef-Proprietary")

SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "ApiKey": SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header"),
    "ClerkSession": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
    "ClerkSessionCookie": SecurityScheme(
        type="apiKey",
        name=SESSION_COOKIE,
        security_scheme_in="cookie",
        description="Clerk's session cookie (browsers). Unsafe methods also need an authorized `Origin` "
        "and a JSON body (CSRF).",
    ),
}

# Response headers, each a component under its own name.
HEADERS: dict[str, dict[str, Any]] = {
    REQUEST_ID_HEADER: {
        "description": "The request's id: the one it sent when a plain token of at most 128 characters, else a new one",
        "required": True,
        "schema": {"type": "string", "maxLength": 128},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "The accepted schemes: `Bearer` (a Clerk session token) and `ApiKey`",
        "schema": {"type": "string"},
    },
}
# Which responses state which headers (besides X-Request-ID, on all).
_STATUS_HEADERS = {"401": ["WWW-Authenticate"], "429": ["Retry-After"], "503": ["Retry-After"]}
_ALWAYS_SENT = {("429", "Retry-After")}  # a 429 always says when; a 503 may not know
REQUEST_ID_PARAMETER = {
    "name": REQUEST_ID_HEADER,
    "in": "header",
    "required": False,
    "description": "Your id for the request (a plain token of at most 128 characters), echoed in the "
    "response and the server's log lines; anything else is replaced by a new one",
    "schema": {"type": "string"},
}


def openapi_config(render_plugins: list[OpenAPIRenderPlugin], path: str, **kwargs: Any) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        contact=CONTACT,
        license=LICENSE,
        servers=[Server(url="/")],
        path=path,
        render_plugins=render_plugins,
        use_handler_docstrings=True,  # routes made with Litestar's own decorators (health)
        create_examples=False,
        components=Components(security_schemes=dict(SECURITY_SCHEMES)),
        security=[{name: []} for name in SECURITY_SCHEMES],
        **kwargs,
    )


# A request string may hold any character but NUL (PostgreSQL refuses it in text).
NO_NUL_PATTERN = "^[^\\u0000]*$"
# A decimal sent as a string: "12.50", "-3", "1e3" (pydantic reads these; never NaN or infinity).
DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


class ExactSchema(GenerateJsonSchema):
    """pydantic's JSON schema, as a contract: every field a response always sends is required, a
    request field's default is told in words, components are named by class alone."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        # A model or dataclass sends every field; a TypedDict (a problem) only the keys it holds.
        if self.mode == "serialization" and field["type"] != "typed-dict-field":
            return True
        return super().field_is_required(field, total)

    def generate_inner(self, schema: _CoreSchemaOrField) -> JsonSchemaValue:
        json_schema = super().generate_inner(schema)
        if self.mode == "validation" and schema["type"] in _FIELD_TYPES and "default" in json_schema:
            _describe_default(json_schema)
        return json_schema

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        json_schema = super().str_schema(schema)
        if self.mode == "validation":  # input schemas refuse NUL in every string (base.schemas.reject_nul)
            _refuse_nul(json_schema)
        return json_schema

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        json_schema = super().decimal_schema(schema)  # a number, or a string holding one
        if self.mode == "validation":
            for branch in json_schema.get("anyOf", []):
                if branch.get("type") == "string":
                    branch.setdefault("pattern", DECIMAL_PATTERN)
                    _refuse_nul(branch)
        return json_schema

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False  # "First Name" beside `first_name` says nothing, and generators may name types by it

    def normalize_name(self, name: str) -> str:
        generic = re.fullmatch(r"(\w+)\[(\w+)\]", name)  # Page[UserPublic] -> UserPublicPage
        return f"{generic[2]}{generic[1]}" if generic else super().normalize_name(name)


def _refuse_nul(json_schema: JsonSchemaValue) -> None:
    """NUL's refusal as the string's pattern; a pattern of its own moves into `allOf`."""
    if "pattern" in json_schema:
        json_schema["allOf"] = [{"pattern": json_schema.pop("pattern")}]
    json_schema["pattern"] = NO_NUL_PATTERN


def _describe_default(field_schema: JsonSchemaValue) -> None:
    """A request field's default, stated in its description instead of `default`: openapi-typescript
    (default options) makes a property with a `default` required in a component's type, so a body
    without it would not compile. The server applies the default; `null` (absent) needs no words.
    On the field itself, after its own description (pydantic sets that last)."""
    default = field_schema.pop("default")
    if default is not None:
        stated = f"Default: `{default if isinstance(default, str) else json.dumps(default)}`."
        field_schema["description"] = " ".join(filter(None, [field_schema.get("description", "").rstrip(), stated]))


def _response_type(annotation: Any) -> Any:
    """The type a handler's response body has: `Response[X]` is X; None for no body."""
    if annotation is None or annotation is NoneType:
        return None
    if get_origin(annotation) is Response or (inspect.isclass(annotation) and issubclass(annotation, Response)):
        arguments = get_args(annotation)
        return arguments[0] if arguments else None
    return annotation


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _references(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_references(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value))
    return set()


def _component_schemas(document: dict[str, Any], exact: dict[str, Any], litestar: dict[str, Any]) -> dict[str, Any]:
    """pydantic's components, and those of Litestar's the document still names (e.g. a plain
    dataclass's), nothing unreferenced; each titled by its name."""
    schemas = dict(exact)
    prefix = SCHEMA_REF.removesuffix("{model}")
    while True:
        missing = {
            ref.removeprefix(prefix)
            for ref in _references({"paths": document["paths"], "schemas": schemas})
            if ref.startswith(prefix) and ref.removeprefix(prefix) not in schemas
        }
        if not missing:
            # A generator may name a type by its title (openapi-python-client does): pydantic titles
            # `Page[UserPublic]` "Page", as every other page, and would merge them into one type.
            return {name: {**schema, "title": name} for name, schema in sorted(schemas.items())}
        schemas.update({name: litestar[name] for name in missing})


def handler_function(handler: HTTPRouteHandler) -> Callable[..., Any]:
    """The function a route was declared with (Litestar wraps a sync one to run it in a thread)."""
    return getattr(handler.fn, "func", handler.fn)


_ACRONYMS = {"api": "API", "clerk": "Clerk"}


def summary_of(operation_id: str) -> str:
    """The operation id in words, so the two never disagree: `getCurrentUser` -> "Get current user"."""
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", operation_id)]
    text = " ".join(_ACRONYMS.get(word, word) for word in words)
    return text[:1].upper() + text[1:]


def _tags(app: Litestar, used: set[str]) -> list[dict[str, str]]:
    """One tag per controller, described by its routes module's docstring (the first paragraph)."""
    tags: dict[str, str] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not handler.resolve_include_in_schema():
                continue
            doc = inspect.getdoc(sys.modules[handler_function(handler).__module__]) or ""
            for tag in handler.resolve_tags():
                tags.setdefault(tag, " ".join(doc.split("\n\n")[0].split()))
    return [{"name": name, "description": tags[name] or name} for name in sorted(tags) if name in used]


def _complete(app: Litestar) -> dict[str, Any]:
    document = copy.deepcopy(app.openapi_schema.to_schema())
    handlers = {
        handler.operation_id: handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.resolve_include_in_schema()
    }
    types: list[tuple[tuple[str, ...], JsonSchemaMode, TypeAdapter[Any]]] = [
        (("problem",), "serialization", TypeAdapter(ProblemDetails))
    ]
    for path, method, operation in _operations(document):
        signature = handlers[operation["operationId"]].parsed_fn_signature
        if (data := signature.parameters.get("data")) is not None:
            types.append(((path, method, "request"), "validation", TypeAdapter(data.annotation)))
        if (returned := _response_type(signature.return_type.annotation)) is not None:
            types.append(((path, method, "response"), "serialization", TypeAdapter(returned)))
    schemas, definitions = TypeAdapter.json_schemas(types, ref_template=SCHEMA_REF, schema_generator=ExactSchema)

    for path, method, operation in _operations(document):
        operation["summary"] = summary_of(operation["operationId"])
        documented_only = handlers[operation["operationId"]].opt.get(DOCUMENTED_ONLY, {})
        operation.setdefault("parameters", []).extend(documented_only.get("parameters", []))
        if "requestBody" in documented_only:
            operation["requestBody"] = documented_only["requestBody"]
        if ((path, method, "request"), "validation") in schemas:
            for media in operation["requestBody"]["content"].values():
                media["schema"] = schemas[(path, method, "request"), "validation"]
        operation["parameters"].append(dict(REQUEST_ID_PARAMETER))
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                if media_type == PROBLEM_MEDIA_TYPE:
                    media["schema"] = schemas[("problem",), "serialization"]
                elif status.startswith("2") and ((path, method, "response"), "serialization") in schemas:
                    media["schema"] = schemas[(path, method, "response"), "serialization"]
            headers = response.setdefault("headers", {})
            for name in [REQUEST_ID_HEADER, *_STATUS_HEADERS.get(status, [])]:
                always = (status, name) in _ALWAYS_SENT
                headers[name] = (
                    {**HEADERS[name], "required": True} if always else {"$ref": f"#/components/headers/{name}"}
                )

    components = document.setdefault("components", {})
    components["schemas"] = _component_schemas(document, definitions.get("$defs", {}), components.get("schemas", {}))
    components["headers"] = HEADERS
    used = {tag for _, _, operation in _operations(document) for tag in operation.get("tags", [])}
    document["tags"] = _tags(app, used)
    return document


_DOCUMENT_STATE_KEY = "openapi_document"


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The app's completed OpenAPI document (built on first use, then kept in the app's state)."""
    document: dict[str, Any] | None = app.state.get(_DOCUMENT_STATE_KEY)
    if document is None:
        document = app.state[_DOCUMENT_STATE_KEY] = _complete(app)
    return document

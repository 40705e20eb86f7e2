"""The API's documentation pages, from assets shipped in `static/docs/` (no CDN: they work offline
and on air-gapped networks).

- `/schema` and `/schema/swagger`: Swagger UI, where requests can be tried ("Authorize" takes an
  API key or a Clerk session token; they are kept across reloads, in the browser's local storage);
- `/schema/redoc`: Redoc, a reader view;
- `/schema/openapi.json`: the OpenAPI document.
"""

from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.params import FromPath

from app.api.openapi import openapi_document
from app.api.request_log import cacheable

DOCS_PATH = "/schema"
ASSETS = Path(__file__).parent / "static" / "docs"
ASSETS_URL = f"{DOCS_PATH}/assets"
FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS_URL}/favicon-32x32.png'>"
# The pages may load nothing from another host: Redoc's sidebar would fetch its vendor's logo from a
# CDN, and an asset forgotten in an upgrade would show up offline only. Their own scripts are inline.
# No site may frame them (Swagger UI holds the credentials given to "Authorize": clickjacking bait).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; frame-ancestors 'none'"
)


class CompletedDocument(OpenAPIRenderPlugin):
    """A page or file of the completed document (`app.api.openapi`), not Litestar's draft."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, openapi_document(request.app))  # type: ignore[safe-super]  # a mixin: the page's render


class OpenAPIFile(CompletedDocument, JsonRenderPlugin):
    """/schema/openapi.json"""


class RedocPage(CompletedDocument, RedocRenderPlugin):
    """/schema/redoc"""


class SwaggerPage(CompletedDocument, SwaggerRenderPlugin):
    """Swagger UI that keeps what "Authorize" was given across reloads and never sends the
    document to swagger.io's validator. Litestar's template takes no such options: they are added
    after one of its own."""

    _ANCHOR = b"deepLinking: true,"
    _OPTIONS = b" persistAuthorization: true, validatorUrl: null,"

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page, anchor, rest = super().render(request, openapi_schema).rpartition(self._ANCHOR)
        if not anchor:
            raise RuntimeError("Litestar's Swagger UI template changed: update SwaggerPage")
        return page + anchor + self._OPTIONS + rest


def docs_router() -> Router:
    """Litestar's OpenAPI routes are added to it (`OpenAPIConfig.openapi_router`)."""
    policy = ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY)
    return Router(DOCS_PATH, route_handlers=[], include_in_schema=False, response_headers=[policy])


def docs_pages() -> list[OpenAPIRenderPlugin]:
    """Swagger UI first: it is also the page at /schema."""
    return [
        SwaggerPage(
            path="/swagger",
            js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_URL}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_URL}/swagger-ui-standalone-preset.js",
            favicon=FAVICON,
        ),
        RedocPage(path="/redoc", js_url=f"{ASSETS_URL}/redoc.standalone.js", google_fonts=False, favicon=FAVICON),
        OpenAPIFile(),
    ]


_SERVED = (".js", ".css", ".png")
# The files, by name, read once at import: a request can only ever name one of these (no path is
# built from the URL, so no traversal, and a NUL or a 5 000-character name is just a 404).
_ASSETS = {path.name: path.read_bytes() for path in ASSETS.iterdir() if path.suffix in _SERVED}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}  # Litestar adds the charset


@get(f"{ASSETS_URL}/{{name:str}}", include_in_schema=False, opt={"exclude_from_auth": True}, sync_to_thread=False)
def docs_assets(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    """A vendored asset of the docs pages, cacheable for a day (they change with a release)."""
    content = _ASSETS.get(name)
    if content is None:
        raise NotFoundException("no such asset")
    cacheable(request.scope)
    media_type = _MEDIA_TYPES[Path(name).suffix]
    return Response(content, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

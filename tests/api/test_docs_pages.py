"""The documentation pages work offline: every asset they load is served by the app itself."""

import re

import pytest
from litestar.testing import TestClient

PAGES = ["/schema", "/schema/swagger", "/schema/redoc"]
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
ATTRIBUTE_URL = re.compile(rb"""(?:src|href)=["']([^"']+)["']""")


def _asset_urls(html: bytes) -> list[str]:
    return [url.decode() for url in ATTRIBUTE_URL.findall(html)]


@pytest.mark.parametrize("page", PAGES)
def test_a_docs_page_loads_only_local_assets(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]  # the browser loads nothing from elsewhere
    assert "default-src 'self'" in policy
    assert "img-src 'self' data: blob:" in policy
    urls = _asset_urls(response.content)
    assert any(url.endswith(".js") for url in urls)
    assert all(url.startswith("/schema/assets/") for url in urls), urls  # same host, no CDN
    for marker in (b"cdn.", b"unpkg.com", b"jsdelivr", b"googleapis", b"redoc.ly"):
        assert marker not in response.content
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        media_type, *parameters = asset.headers["content-type"].split("; ")
        assert media_type == ASSET_TYPES[url[url.rindex(".") :]], url
        assert parameters in ([], ["charset=utf-8"]), asset.headers["content-type"]
        assert len(asset.content) > 500, url


def test_swagger_ui_is_version_5_and_keeps_authorization(client: TestClient) -> None:
    """OpenAPI 3.1 needs Swagger UI 5; the page keeps credentials across reloads and asks no validator."""
    bundle = client.get("/schema/assets/swagger-ui-bundle.js").content
    assert re.search(rb'"5\.\d+\.\d+"', bundle)  # the version it reports
    page = client.get("/schema/swagger").content
    assert b"persistAuthorization: true" in page
    assert b"validatorUrl: null" in page


def test_the_document_offers_both_credentials(client: TestClient) -> None:
    """What Swagger UI's "Authorize" dialog lists: the API key header and the Clerk bearer token;
    and Clerk's session cookie, the third credential the middleware reads (browsers)."""
    document = client.get("/schema/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "name": "X-API-Key", "in": "header"}
    assert schemes["ClerkSession"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {key: schemes["ClerkSessionCookie"][key] for key in ("type", "name", "in")} == {
        "type": "apiKey",
        "name": "__session",
        "in": "cookie",
    }
    assert document["security"] == [{"ApiKey": []}, {"ClerkSession": []}, {"ClerkSessionCookie": []}]


def test_only_the_two_pages_and_the_document_are_served(client: TestClient) -> None:
    for gone in ("/schema/elements", "/schema/rapidoc", "/schema/openapi.yaml", "/schema/assets/missing.js"):
        assert client.get(gone).status_code == 404, gone


@pytest.mark.parametrize(
    "name",
    [
        "..%2f..%2fmain.py",  # only the vendored files are served: no path is built from the URL
        "%2e%2e/%2e%2e/infrastructure/config.py",
        "README.md",  # in the folder, but not an asset
        "swagger-ui.css%00.js",  # the filesystem refused these with a 500
        "a" * 5000,
    ],
)
def test_any_other_asset_name_is_a_404_problem(client: TestClient, name: str) -> None:
    response = client.get(f"/schema/assets/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"

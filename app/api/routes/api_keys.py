"""API keys of the current user (admins list and revoke any key)."""

from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.api.dependencies import service_dependencies
from app.api.route_decorators import delete, get, post
from app.domains.base.lists import ListParams, Page
from app.domains.base.schemas import to_public
from app.domains.users.permissions import UserPermission
from app.domains.users.schemas import APIKeyCreate, APIKeyCreated, APIKeyPublic
from app.domains.users.service import APIKeyService

APIKeys = NamedDependency[APIKeyService]
Params = NamedDependency[ListParams]
READ, WRITE = UserPermission.API_KEYS_READ, UserPermission.API_KEYS_WRITE


def public(row: object) -> APIKeyPublic:
    return to_public(APIKeyPublic, row)


class APIKeyController(Controller):
    path = "/api/api-keys"
    tags = ["api-keys"]  # noqa: RUF012
    dependencies = service_dependencies("api_keys", APIKeyService)

    @get("/", operation_id="listApiKeys", requires=READ)
    def list_keys(self, api_keys: APIKeys, list_params: Params) -> Page[APIKeyPublic]:
        """Your API keys (admins: every key), revoked and expired ones included. Never the key itself."""
        return api_keys.page(list_params).map(public)

    @post("/", operation_id="createApiKey", requires=WRITE, idempotent=True, errors=(422,))
    def create_key(self, api_keys: APIKeys, data: JSONBody[APIKeyCreate]) -> APIKeyCreated:
        """Create an API key for yourself. Its `scopes` are at most your own permissions (default: all
        of them); a key made with a key is its child (revoking the parent revokes it) and acts in the
        same organization. The response holds the full key: the only time it is ever shown, except to a
        retry with the same Idempotency-Key: the stored response is encrypted (AES-GCM) under a key
        derived from your Idempotency-Key, itself stored only as a hash, so the secret is never stored
        readable."""
        row, key = api_keys.issue(data)
        return APIKeyCreated(**public(row).model_dump(), key=key)

    @delete("/{key_id:uuid}", operation_id="revokeApiKey", requires=WRITE)
    def revoke_key(self, api_keys: APIKeys, key_id: FromPath[UUID]) -> None:
        """Revoke one of your keys (admins: any key), and every key it created. It fails at once."""
        api_keys.revoke(key_id)

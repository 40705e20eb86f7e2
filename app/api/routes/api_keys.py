"""API keys of the current user (admins list and revoke any key)."""

from uuid import UUID

from advanced_alchemy.service import OffsetPagination
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.api.dependencies import provide_api_keys_service
from app.api.guards import requires_scope
from app.domains.base.authorization import AuthorizationContext
from app.domains.base.filters import ListParams
from app.domains.users.authorization import Scope
from app.domains.users.schemas import APIKeyCreate, APIKeyCreated, APIKeyPublic
from app.domains.users.service import APIKeyService

can_read = requires_scope(Scope.API_KEYS_READ)
can_write = requires_scope(Scope.API_KEYS_WRITE)


class APIKeyController(Controller):
    path = "/api/api-keys"
    tags = ["api-keys"]  # noqa: RUF012
    dependencies = {"api_keys": Provide(provide_api_keys_service)}  # noqa: RUF012

    @get("/", operation_id="listApiKeys", guards=[can_read], sync_to_thread=True)
    def list_keys(
        self,
        api_keys: NamedDependency[APIKeyService],
        auth: NamedDependency[AuthorizationContext],
        list_params: NamedDependency[ListParams],
    ) -> OffsetPagination[APIKeyPublic]:
        items, total = api_keys.list_visible(auth, list_params)
        return api_keys.to_schema(items, total, list_params.to_filters(), schema_type=APIKeyPublic)

    @post("/", operation_id="createApiKey", guards=[can_write], sync_to_thread=True)
    def create_key(
        self,
        api_keys: NamedDependency[APIKeyService],
        auth: NamedDependency[AuthorizationContext],
        data: JSONBody[APIKeyCreate],
    ) -> APIKeyCreated:
        """The response holds the full key: the only time it is ever shown."""
        row, key = api_keys.issue(auth, data)
        return APIKeyCreated(**api_keys.to_schema(row, schema_type=APIKeyPublic).model_dump(), key=key)

    @delete("/{key_id:uuid}", operation_id="revokeApiKey", guards=[can_write], sync_to_thread=True)
    def revoke_key(
        self,
        api_keys: NamedDependency[APIKeyService],
        auth: NamedDependency[AuthorizationContext],
        key_id: FromPath[UUID],
    ) -> None:
        api_keys.revoke_visible(auth, key_id)

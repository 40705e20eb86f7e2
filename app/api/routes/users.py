"""Users: the current user, and user management (admins see everyone, members themselves)."""

from uuid import UUID

from advanced_alchemy.service import OffsetPagination
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.api.dependencies import provide_users_service
from app.api.guards import requires_admin, requires_scope
from app.domains.base.authorization import AuthorizationContext
from app.domains.base.filters import ListParams
from app.domains.users.authorization import Scope
from app.domains.users.schemas import UserCreate, UserPublic, UserUpdate
from app.domains.users.service import UserService

can_read = requires_scope(Scope.USERS_READ)
can_write = requires_scope(Scope.USERS_WRITE)


class UserController(Controller):
    path = "/api/users"
    tags = ["users"]  # noqa: RUF012
    dependencies = {"users": Provide(provide_users_service)}  # noqa: RUF012

    @get("/me", operation_id="getCurrentUser", guards=[can_read], sync_to_thread=True)
    def get_me(self, users: NamedDependency[UserService], auth: NamedDependency[AuthorizationContext]) -> UserPublic:
        return users.to_schema(users.get_visible(auth, auth.user_id), schema_type=UserPublic)

    @patch("/me", operation_id="updateCurrentUser", guards=[can_write], sync_to_thread=True)
    def update_me(
        self,
        users: NamedDependency[UserService],
        auth: NamedDependency[AuthorizationContext],
        data: JSONBody[UserUpdate],
    ) -> UserPublic:
        return users.to_schema(users.update_visible(auth, auth.user_id, data), schema_type=UserPublic)

    @get("/", operation_id="listUsers", guards=[can_read], sync_to_thread=True)
    def list_users(
        self,
        users: NamedDependency[UserService],
        auth: NamedDependency[AuthorizationContext],
        list_params: NamedDependency[ListParams],
    ) -> OffsetPagination[UserPublic]:
        items, total = users.list_visible(auth, list_params)
        return users.to_schema(items, total, list_params.to_filters(), schema_type=UserPublic)

    @post("/", operation_id="createUser", guards=[can_write, requires_admin], sync_to_thread=True)
    def create_user(
        self,
        users: NamedDependency[UserService],
        auth: NamedDependency[AuthorizationContext],
        data: JSONBody[UserCreate],
    ) -> UserPublic:
        return users.to_schema(users.create_user(auth, data), schema_type=UserPublic)

    @get("/{user_id:uuid}", operation_id="getUser", guards=[can_read], sync_to_thread=True)
    def get_user(
        self, users: NamedDependency[UserService], auth: NamedDependency[AuthorizationContext], user_id: FromPath[UUID]
    ) -> UserPublic:
        return users.to_schema(users.get_visible(auth, user_id), schema_type=UserPublic)

    @patch("/{user_id:uuid}", operation_id="updateUser", guards=[can_write], sync_to_thread=True)
    def update_user(
        self,
        users: NamedDependency[UserService],
        auth: NamedDependency[AuthorizationContext],
        user_id: FromPath[UUID],
        data: JSONBody[UserUpdate],
    ) -> UserPublic:
        return users.to_schema(users.update_visible(auth, user_id, data), schema_type=UserPublic)

    @delete("/{user_id:uuid}", operation_id="deleteUser", guards=[can_write], sync_to_thread=True)
    def delete_user(
        self, users: NamedDependency[UserService], auth: NamedDependency[AuthorizationContext], user_id: FromPath[UUID]
    ) -> None:
        """Soft delete (admins only): the row stays as a tombstone without personal data."""
        users.delete_visible(auth, user_id)

"""Users: the current user, and user management (admins see everyone, members themselves)."""

from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.api.dependencies import service_dependencies
from app.api.route_decorators import delete, get, patch, post
from app.domains.base.lists import ListParams, Page
from app.domains.base.schemas import to_public
from app.domains.users.permissions import UserPermission
from app.domains.users.schemas import UserCreate, UserPublic, UserUpdate
from app.domains.users.service import UserService

Users = NamedDependency[UserService]
Params = NamedDependency[ListParams]
READ, WRITE = UserPermission.USERS_READ, UserPermission.USERS_WRITE


def public(row: object) -> UserPublic:
    return to_public(UserPublic, row)


class UserController(Controller):
    path = "/api/users"
    tags = ["users"]  # noqa: RUF012
    dependencies = service_dependencies("users", UserService)

    @get("/me", operation_id="getCurrentUser", requires=READ)
    def get_me(self, users: Users) -> UserPublic:
        """The user the credential belongs to."""
        return public(users.current())

    @patch("/me", operation_id="updateCurrentUser", requires=WRITE, errors=(409,))
    def update_me(self, users: Users, data: JSONBody[UserUpdate]) -> UserPublic:
        """Change your own profile: only the fields sent change. Only admins may change `role` or
        `is_active` (their own included); a member who sends them gets a 403."""
        return public(users.change(users.current().id, data))

    @get("/", operation_id="listUsers", requires=READ)
    def list_users(self, users: Users, list_params: Params) -> Page[UserPublic]:
        """Admins list every user; members see themselves only. Deleted users are never listed."""
        return users.page(list_params).map(public)

    @post("/", operation_id="createUser", requires=WRITE, admin=True, idempotent=True, errors=(409,))
    def create_user(self, users: Users, data: JSONBody[UserCreate]) -> UserPublic:
        """Create a user (admins only: users otherwise come from Clerk). 409 when the e-mail or the
        Clerk id is taken."""
        return public(users.create_user(data))

    @get("/{user_id:uuid}", operation_id="getUser", requires=READ)
    def get_user(self, users: Users, user_id: FromPath[UUID]) -> UserPublic:
        """One user by id: admins any, members themselves (anyone else is a 404)."""
        return public(users.get(user_id))

    @patch("/{user_id:uuid}", operation_id="updateUser", requires=WRITE, errors=(409,))
    def update_user(self, users: Users, user_id: FromPath[UUID], data: JSONBody[UserUpdate]) -> UserPublic:
        """Change a user: only the fields sent change; `null` is refused where a value is required.
        Admins change anyone; members only themselves, and not their `role` or `is_active`."""
        return public(users.change(user_id, data))

    @delete("/{user_id:uuid}", operation_id="deleteUser", requires=WRITE, errors=(409,))
    def delete_user(self, users: Users, user_id: FromPath[UUID]) -> None:
        """Delete a user (admins only): the row stays as a tombstone without personal data, its API
        keys are revoked, and the maintenance flow removes it later. 409 for an admin deleting itself or
        the last active admin."""
        users.remove(user_id)

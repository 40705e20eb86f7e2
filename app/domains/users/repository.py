"""Repositories of the users domain."""

from app.domains.base.repository import Repository
from app.domains.users.models import APIKey, User


class UserRepository(Repository[User]):
    model_type = User


class APIKeyRepository(Repository[APIKey]):
    model_type = APIKey

"""Users and their API keys. Importing the package registers its permissions and the Clerk events
it applies."""

from app.domains.users import clerk_user_sync as _clerk_user_sync  # noqa: F401
from app.domains.users import permissions as _permissions  # noqa: F401

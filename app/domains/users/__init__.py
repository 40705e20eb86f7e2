"""Users and their API keys. Importing the package registers its permissions."""

from app.domains.users import permissions as _permissions  # noqa: F401

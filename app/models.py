"""The one registry of tables: importing this module registers every domain's tables on
`SQLModel.metadata`, which Alembic and the app both use. Add each new domain's models here."""

from sqlmodel import SQLModel

from app.domains.users.models import APIKey, User
from app.domains.webhooks.models import WebhookEvent

metadata = SQLModel.metadata

__all__ = ("APIKey", "User", "WebhookEvent", "metadata")

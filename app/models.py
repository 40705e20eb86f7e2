"""The registry of domains: importing this module registers every domain's tables on
`SQLModel.metadata` (used by Alembic and the app) and, through each domain's package, its
permissions. Add each new domain's models here."""

from sqlmodel import SQLModel

from app.domains.users.models import APIKey, User
from app.domains.webhooks.models import WebhookEvent

metadata = SQLModel.metadata

__all__ = ("APIKey", "User", "WebhookEvent", "metadata")

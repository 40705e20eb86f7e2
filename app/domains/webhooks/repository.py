"""Repositories of the webhooks domain."""

from app.domains.base.repository import Repository
from app.domains.webhooks.models import WebhookEvent


class WebhookEventRepository(Repository[WebhookEvent]):
    model_type = WebhookEvent

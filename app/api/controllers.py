"""Every controller the app serves."""

from app.api.routes.api_keys import APIKeyController
from app.api.routes.health import HealthController
from app.api.routes.users import UserController
from app.api.routes.webhooks import WebhookController

route_handlers = [HealthController, UserController, APIKeyController, WebhookController]

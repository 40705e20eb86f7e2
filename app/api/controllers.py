"""Every controller the app serves: a new domain's controller is one more entry here."""

from app.api.routes.api_keys import APIKeyController
from app.api.routes.health import HealthController
from app.api.routes.jobs import JobController
from app.api.routes.organizations import OrganizationController
from app.api.routes.projects import ProjectController
from app.api.routes.users import UserController
from app.api.routes.webhooks import WebhookController

controllers = [
    HealthController,
    UserController,
    APIKeyController,
    OrganizationController,
    ProjectController,
    JobController,
    WebhookController,
]

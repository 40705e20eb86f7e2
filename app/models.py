"""The registry of domains: importing this module registers every domain's tables on
`SQLModel.metadata` (used by Alembic and the app) and, through each domain's package, its
permissions and the Clerk events it applies. A new domain is one more line here."""

from sqlmodel import SQLModel

from app.domains.idempotency import models as _idempotency  # noqa: F401
from app.domains.jobs import models as _jobs  # noqa: F401  (and, by its package, its job kinds)
from app.domains.organizations import clerk_organization_sync as _organizations  # noqa: F401  (and its events)
from app.domains.projects import models as _projects  # noqa: F401
from app.domains.users import models as _users  # noqa: F401
from app.domains.webhooks import models as _webhooks  # noqa: F401

metadata = SQLModel.metadata

"""Background jobs: work a request (or the system) hands off, recorded as a row in the request's own
transaction and run later by a worker that claims it with a lease. Importing the package registers
its permissions and its job kinds (`exports.py`)."""

from app.domains.jobs import exports as _exports  # noqa: F401
from app.domains.jobs import permissions as _permissions  # noqa: F401

"""Projects: the first business domain that belongs to a tenant (an organization). Importing the
package registers its permissions."""

from app.domains.projects import permissions as _permissions  # noqa: F401

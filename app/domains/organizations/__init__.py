"""Organizations (Clerk's) and their memberships: the tenants of the app. Importing the package
registers its permissions. Its Clerk events are registered by `clerk_organization_sync`, which
`app/models.py` imports: that module needs the users domain, whose API keys read this package's
tables, so the package itself must not import it."""

from app.domains.organizations import permissions as _permissions  # noqa: F401

"""Rules of the projects domain: the tenant rule (the active organization's projects only; its
admins write), and which fields a change may set."""

from app.domains.organizations.rules import OfActiveOrganization

projects_policy = OfActiveOrganization("organization_id")

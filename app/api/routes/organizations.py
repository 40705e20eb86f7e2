"""Organizations the actor belongs to (app admins: all), and an organization's members."""

from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.api.dependencies import provide_list_params, provide_service, service_dependencies
from app.api.route_decorators import get
from app.domains.base.lists import ListParams, Page
from app.domains.base.schemas import to_public
from app.domains.organizations.permissions import OrganizationPermission
from app.domains.organizations.schemas import MemberPublic, OrganizationPublic
from app.domains.organizations.service import MembershipService, OrganizationService

Organizations = NamedDependency[OrganizationService]
Memberships = NamedDependency[MembershipService]
Params = NamedDependency[ListParams]
READ = OrganizationPermission.ORGANIZATIONS_READ


def public(row: object) -> OrganizationPublic:
    return to_public(OrganizationPublic, row)


class OrganizationController(Controller):
    path = "/api/organizations"
    tags = ["organizations"]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        **service_dependencies("organizations", OrganizationService),
        "memberships": provide_service(MembershipService),
    }

    @get("/", operation_id="listOrganizations", requires=READ)
    def list_organizations(self, organizations: Organizations, list_params: Params) -> Page[OrganizationPublic]:
        """With an active organization, that one; without, every organization the user belongs to."""
        return organizations.page(list_params).map(public)

    @get("/{organization_id:uuid}", operation_id="getOrganization", requires=READ)
    def get_organization(self, organizations: Organizations, organization_id: FromPath[UUID]) -> OrganizationPublic:
        """One organization the caller may see (see listOrganizations); any other is a 404."""
        return public(organizations.get(organization_id))

    @get(
        "/{organization_id:uuid}/members",
        operation_id="listOrganizationMembers",
        requires=READ,
        dependencies={"list_params": provide_list_params(MembershipService)},  # members sort on their own fields
    )
    def list_members(
        self, memberships: Memberships, organization_id: FromPath[UUID], list_params: Params
    ) -> Page[MemberPublic]:
        """Only from inside the organization (it is the request's active organization), or as an app admin."""
        return memberships.members(organization_id, list_params).map(lambda member: to_public(MemberPublic, member))

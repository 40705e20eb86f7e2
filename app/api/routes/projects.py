"""Projects of the request's active organization: members read, its admins write (app admins: all)."""

from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.api.dependencies import service_dependencies
from app.api.route_decorators import delete, get, patch, post
from app.domains.base.lists import ListParams, Page
from app.domains.base.schemas import to_public
from app.domains.projects.permissions import ProjectPermission
from app.domains.projects.schemas import ProjectCreate, ProjectPublic, ProjectUpdate
from app.domains.projects.service import ProjectService

Projects = NamedDependency[ProjectService]
Params = NamedDependency[ListParams]
READ, WRITE = ProjectPermission.PROJECTS_READ, ProjectPermission.PROJECTS_WRITE


def public(row: object) -> ProjectPublic:
    return to_public(ProjectPublic, row)


class ProjectController(Controller):
    path = "/api/projects"
    tags = ["projects"]  # noqa: RUF012
    dependencies = service_dependencies("projects", ProjectService)

    @get("/", operation_id="listProjects", requires=READ)
    def list_projects(self, projects: Projects, list_params: Params) -> Page[ProjectPublic]:
        """The active organization's projects (none without one; app admins: every organization's)."""
        return projects.page(list_params).map(public)

    @post("/", operation_id="createProject", requires=WRITE, idempotent=True, errors=(422,))
    def create_project(self, projects: Projects, data: JSONBody[ProjectCreate]) -> ProjectPublic:
        """In the active organization, by one of its admins (app admins may name `organization_id`)."""
        return public(projects.create(data))

    @get("/{project_id:uuid}", operation_id="getProject", requires=READ)
    def get_project(self, projects: Projects, project_id: FromPath[UUID]) -> ProjectPublic:
        """One project of the active organization (another organization's is a 404)."""
        return public(projects.get(project_id))

    @patch("/{project_id:uuid}", operation_id="updateProject", requires=WRITE)
    def update_project(
        self, projects: Projects, project_id: FromPath[UUID], data: JSONBody[ProjectUpdate]
    ) -> ProjectPublic:
        """Change a project: only the fields sent change. The organization's admins (app admins: any)."""
        return public(projects.change(project_id, data))

    @delete("/{project_id:uuid}", operation_id="deleteProject", requires=WRITE)
    def delete_project(self, projects: Projects, project_id: FromPath[UUID]) -> None:
        """Delete a project for good. The organization's admins (app admins: any)."""
        projects.remove(project_id)

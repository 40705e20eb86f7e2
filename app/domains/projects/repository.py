"""Repositories of the projects domain."""

from app.domains.base.repository import Repository
from app.domains.projects.models import Project


class ProjectRepository(Repository[Project]):
    model_type = Project

"""Repositories of the jobs domain."""

from app.domains.base.repository import Repository
from app.domains.jobs.models import Job


class JobRepository(Repository[Job]):
    model_type = Job

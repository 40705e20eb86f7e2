"""Background jobs: start an export (202 and a `Location` to poll), read jobs and their results.

A job is written in the request's own transaction (the route decorators' unit of work), so it
exists if and only if the request committed; workers run it later (`app/domains/jobs/runner.py`).
"""

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.api.dependencies import service_dependencies
from app.api.request_log import request_id
from app.api.route_decorators import get, post
from app.domains.base.lists import ListParams, Page
from app.domains.base.schemas import to_public
from app.domains.jobs.exports import ORGANIZATION_EXPORT, USER_EXPORT
from app.domains.jobs.models import Job
from app.domains.jobs.permissions import JobPermission
from app.domains.jobs.schemas import JobPublic
from app.domains.jobs.service import JobService
from app.infrastructure import metrics, tracing

Jobs = NamedDependency[JobService]
Params = NamedDependency[ListParams]
READ, WRITE = JobPermission.JOBS_READ, JobPermission.JOBS_WRITE


def public(row: object) -> JobPublic:
    return to_public(JobPublic, row)


# The 202's header, for the OpenAPI document (`accepted` sets it).
LOCATION = [
    ResponseHeader(
        name="Location",
        description="The job to poll: /api/jobs/{id}",
        value="/api/jobs/{id}",  # documented only (a string); `accepted` sets the real one
        documentation_only=True,
    )
]


def accepted(job: Job) -> Response[JobPublic]:
    """202: queued, not done; poll the job at `Location`."""
    metrics.recorder.job_enqueued(job.kind)
    return Response(public(job), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


class JobController(Controller):
    path = "/api"
    tags = ["jobs"]  # noqa: RUF012
    dependencies = service_dependencies("jobs", JobService)

    @post(
        "/users/me/exports",
        operation_id="startUserExport",
        requires=WRITE,
        idempotent=True,
        status_code=202,
        response_headers=LOCATION,
    )
    def start_user_export(self, jobs: Jobs, request: Request[Any, Any, Any]) -> Response[JobPublic]:
        """Queue an export of your own data (profile, API keys' metadata, memberships, the projects
        you created): a personal job. Needs the read permissions of that data too."""
        return accepted(jobs.enqueue(USER_EXPORT, {}, request_id(request.scope), tracing.current_traceparent()))

    @post(
        "/organizations/{organization_id:uuid}/exports",
        operation_id="startOrganizationExport",
        requires=WRITE,
        idempotent=True,
        status_code=202,
        response_headers=LOCATION,
    )
    def start_organization_export(
        self, jobs: Jobs, organization_id: FromPath[UUID], request: Request[Any, Any, Any]
    ) -> Response[JobPublic]:
        """Queue an export of the organization, its members and its projects: its admins, from
        inside it (it is the active organization), and app admins."""
        parameters = {"organization_id": str(organization_id)}
        queued = jobs.enqueue(ORGANIZATION_EXPORT, parameters, request_id(request.scope), tracing.current_traceparent())
        return accepted(queued)

    @get("/jobs", operation_id="listJobs", requires=READ)
    def list_jobs(self, jobs: Jobs, list_params: Params) -> Page[JobPublic]:
        """The jobs you started (an organization's only while it is active), and an organization
        admin's the active organization's; app admins every job."""
        return jobs.page(list_params).map(public)

    @get("/jobs/{job_id:uuid}", operation_id="getJob", requires=READ)
    def get_job(self, jobs: Jobs, job_id: FromPath[UUID]) -> JobPublic:
        """Poll this until `status` is `succeeded` (then read its result) or `failed`."""
        return public(jobs.get(job_id))

    @get("/jobs/{job_id:uuid}/result", operation_id="getJobResult", requires=READ, errors=(409,))
    def get_job_result(self, jobs: Jobs, job_id: FromPath[UUID]) -> dict[str, Any]:
        """The document, once the job has succeeded; before, a 409 whose `reason` is its status."""
        return jobs.result(job_id)

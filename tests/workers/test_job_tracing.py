"""With traces on, a job's span starts a trace of its own, linked to the trace of the request that
queued it (the job row keeps that request's W3C traceparent)."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from litestar.testing import TestClient
from opentelemetry.trace import SpanKind
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.bootstrap import Container
from app.domains.jobs.models import Job, JobStatus
from app.workers.jobs import Dispatcher
from tests.helpers import settings_for
from tests.tracing_helpers import spans  # noqa: F401 (a fixture)


def test_a_jobs_span_links_to_the_request_that_queued_it(
    spans: Any,  # noqa: F811
    worker: Container,
    as_user: Callable,
    session: Session,
) -> None:
    _, headers = as_user()
    with TestClient(create_app(settings_for(worker.settings.database_url))) as client:
        response = client.post("/api/users/me/exports", headers=headers)
    assert response.status_code == 202, response.text
    (request,) = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert request.name == "POST /api/users/me/exports"
    stored = session.get(Job, UUID(response.json()["id"]))
    assert stored is not None
    assert stored.trace_context is not None
    assert stored.trace_context.split("-")[:3] == [
        "00",
        f"{request.context.trace_id:032x}",
        f"{request.context.span_id:016x}",
    ]

    dispatcher = Dispatcher(worker_id="tracing-worker")
    (claimed,) = dispatcher.claim(1)
    dispatcher.run(claimed)
    session.expire_all()
    assert session.get(Job, claimed.id).status == JobStatus.SUCCEEDED
    (job,) = [span for span in spans.get_finished_spans() if span.name == "job user_export"]
    assert job.context.trace_id != request.context.trace_id  # a trace of its own...
    assert job.parent is None
    assert [link.context.trace_id for link in job.links] == [request.context.trace_id]  # ...linked to the request's
    assert [link.context.span_id for link in job.links] == [request.context.span_id]
    assert dict(job.attributes or {}) == {"app.job.id": str(claimed.id), "app.job.kind": "user_export"}

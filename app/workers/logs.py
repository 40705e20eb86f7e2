"""The worker's own log lines: the app's records in the app's format, with the ids of their run.

Prefect configures the process's logging for its own loggers (root at WARNING): without this, the
app's INFO lines (a job's outcome, a flow's progress logged by a service) would go nowhere. The
`app` loggers get the API's handler and format instead (JSON outside development), and every record
carries `job_id` and `request_id` while a job runs (app/domains/jobs/runner.py) and `flow_run_id`
inside a flow run (read from Prefect's run context, whatever thread the task runs in).
"""

import logging
from collections.abc import Mapping

from prefect.context import FlowRunContext

from app.infrastructure.config import Settings
from app.infrastructure.log_context import install_record_factory
from app.infrastructure.log_format import BackgroundStreamHandler, JsonFormatter, ReadableFormatter


def flow_run_fields() -> Mapping[str, str] | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return {"flow_run_id": str(context.flow_run.id)}


def configure_worker_logging(settings: Settings) -> None:
    """Once per process (the container's first build in a worker)."""
    install_record_factory(flow_run_fields)
    app_logger = logging.getLogger("app")
    if any(isinstance(handler, BackgroundStreamHandler) for handler in app_logger.handlers):
        return
    handler = BackgroundStreamHandler()
    handler.setFormatter(ReadableFormatter() if settings.is_development else JsonFormatter())
    app_logger.addHandler(handler)
    app_logger.setLevel(settings.log_level)
    app_logger.propagate = False  # Prefect's console handler on the root would print each line again

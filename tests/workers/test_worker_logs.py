"""A flow run's records carry its run id, in the flow and in its tasks' threads; the worker's app
lines are written in the app's format (Prefect's logging drops the app's INFO lines otherwise)."""

import json
import logging
from uuid import UUID

import pytest
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from app.infrastructure.log_context import install_record_factory
from app.infrastructure.log_format import BackgroundStreamHandler
from app.workers.logs import configure_worker_logging, flow_run_fields
from tests.helpers import settings_for

logger = logging.getLogger("app.probe")


@task
def step() -> None:
    logger.info("in a task")


@flow(name="log-probe")
def probe() -> str:
    logger.info("in the flow")
    get_run_logger().warning("Prefect's run logger")  # passes flow_run_id itself (`extra=`): no clash
    step.submit().result()
    return str(flow_run.id)


def test_a_flow_runs_records_carry_its_run_id(prefect_harness: None, caplog: pytest.LogCaptureFixture) -> None:
    install_record_factory(flow_run_fields)  # what the worker's container does at its first build
    with caplog.at_level(logging.INFO, logger="app.probe"):
        run_id = probe()
        logger.info("outside")
    records = [record for record in caplog.records if record.name == "app.probe"]
    assert [record.getMessage() for record in records] == ["in the flow", "in a task", "outside"]
    assert [getattr(record, "flow_run_id", None) for record in records] == [run_id, run_id, None]
    UUID(run_id)


def test_the_workers_app_lines_are_json_outside_development(capsys: pytest.CaptureFixture[str]) -> None:
    app_logger = logging.getLogger("app")
    before = (list(app_logger.handlers), app_logger.level, app_logger.propagate)
    settings = settings_for("postgresql+psycopg2://app:pw@db/app").model_copy(update={"environment": "production"})
    try:
        configure_worker_logging(settings)
        configure_worker_logging(settings)  # once
        (handler,) = [h for h in app_logger.handlers if isinstance(h, BackgroundStreamHandler)]
        logging.getLogger("app.domains.jobs.runner").info("job %s: %s", "j1", "succeeded")
        handler.flush()
    finally:
        for added in set(app_logger.handlers) - set(before[0]):
            app_logger.removeHandler(added)
            added.close()
        app_logger.setLevel(before[1])
        app_logger.propagate = before[2]
    (line,) = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert (line["logger"], line["msg"], line["level"]) == ("app.domains.jobs.runner", "job j1: succeeded", "INFO")

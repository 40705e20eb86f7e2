"""The ids every log record carries while a request, a job or a flow run is under way.

    with log_fields(job_id=str(job.id), request_id=job.request_id):
        ...  # every record logged here, by any logger, has `record.job_id` and `record.request_id`

The fields live in a context variable, set by whoever starts the unit of work (the API's outermost
ASGI layer for a request, the worker around a job or a flow run). Litestar's hop into its thread
pool copies the context, so a sync handler, a service or the database layer logs the ids of the
request it serves without being told them. They are put on each record when it is made, in the
thread that logs (`install_record_factory`, run when this module is imported): a formatter runs
later, in the log writer's thread, where the context is gone. An `extra=` naming one of these
fields would be refused by logging (it will not overwrite an attribute): nothing passes them so.
"""

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

# The fields a record may carry from its context, in the order the readable format shows them.
CONTEXT_FIELDS = ("request_id", "job_id", "flow_run_id")

# Loggers that set the sources' fields on their records themselves (`extra=`): sources skip them.
FOREIGN_LOGGERS = ("prefect",)

_fields: ContextVar[Mapping[str, str] | None] = ContextVar("log_fields", default=None)
# Other places fields come from, asked for each record (the worker: Prefect's flow-run context).
type FieldSource = Callable[[], Mapping[str, str] | None]
_sources: list[FieldSource] = []


def current_fields() -> Mapping[str, str]:
    return _fields.get() or {}


def set_request_id(request_id: str) -> Token[Mapping[str, str] | None]:
    """The request path's own setter (one dict, no merge): `reset_fields(token)` when it ends."""
    return _fields.set({"request_id": request_id})


def reset_fields(token: Token[Mapping[str, str] | None]) -> None:
    _fields.reset(token)


@contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """Add `fields` (those not None) to the records logged inside the block, over the current ones."""
    merged = {**current_fields(), **{name: value for name, value in fields.items() if value is not None}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def install_record_factory(source: FieldSource | None = None) -> None:
    """Make every record carry the context's fields as attributes (installed once per process);
    `source` adds fields of its own to each record, under the context's."""
    if source is not None and source not in _sources:
        _sources.append(source)
    base = logging.getLogRecordFactory()
    if getattr(base, "adds_log_fields", False):
        return

    def record_with_fields(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        # Prefect's own loggers pass the run's ids as `extra=` themselves, which logging refuses to
        # set over an attribute the record already has (KeyError: the flow run crashed).
        if not record.name.startswith(FOREIGN_LOGGERS):
            for more in _sources:
                if found := more():
                    record.__dict__.update(found)
        if fields := _fields.get():
            record.__dict__.update(fields)
        return record

    record_with_fields.adds_log_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_fields)


# Whoever imports this module (the API, the runner of jobs, the worker) logs with the fields: set up
# here, once, rather than by each entry point (a test or a script would miss it).
install_record_factory()

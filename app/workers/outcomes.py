"""How a flow run ends, one rule for every flow: its counts as a table artifact (Prefect's UI, the
run's Artifacts tab, key `<flow>-counts`), and a state an operator can trust:

- Failed, named "Skipped", when the flow did nothing: its counts say `skipped` (why). The only
  reason today is a missing secret, which someone must act on (set it, or turn the schedule off
  with FLOW_SCHEDULES): a green run would hide it, and Cancelled would read as someone's choice.
- Failed, with a message naming what failed, when steps failed (`Steps`) or a count named `failed`
  (or `..._failed`) is not zero; every other step ran and is counted.
- Completed, with the counts as the result, otherwise.

A flow either ends with `return finish(counts, steps)` or, when its body returns its counts
itself, is decorated with `@reported` under its `@flow`, which does the same with what it returns.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

from prefect import Task, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Failed

from app.infrastructure import metrics
from app.infrastructure.database_errors import describe_database_error, involves_database

MAX_REASON = 300  # characters of an error kept in the run's message


class Steps:
    """Independent steps of one flow run: each runs whatever happened to the ones before it."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}  # step (task) name -> why, in the order they failed

    def run[R](self, step: Task[..., R], *args: Any) -> R | None:
        """The step's result, or None if it failed (after its retries): recorded, not raised."""
        state = cast("State[R]", step(*args, return_state=True))
        if state.is_completed():
            return state.result()
        error = state.result(raise_on_failure=False)
        if isinstance(error, BaseException):  # one line; a database error's without its values
            reason = describe_database_error(error) if involves_database(error) else f"{type(error).__name__}: {error}"
        else:
            reason = state.message or state.name or "failed"
        self.failed[step.name] = reason[:MAX_REASON]
        return None


def finish(counts: Mapping[str, Any], steps: Steps | None = None) -> dict[str, Any] | State[Any]:
    """The flow run's end: the counts published, then its state (see the module)."""
    context = FlowRunContext.get()
    flow = context.flow.name if context and context.flow else "flow"
    failed_steps = steps.failed if steps else {}
    get_run_logger().info("%s: %s", flow, dict(counts))
    create_table_artifact(
        key=f"{flow}-counts",
        table=[
            {"count": name, "value": "(its step failed)" if value is None else value} for name, value in counts.items()
        ]
        + [{"count": f"step {step} failed", "value": why} for step, why in failed_steps.items()],
        description=f'What this run of `{flow}` changed (README, "Workers").',
    )
    if skipped := counts.get("skipped"):
        metrics.recorder.flow_finished(flow, "skipped")
        return Failed(name="Skipped", message=f"{flow} skipped: {skipped}")
    problems = [f"step {step} failed ({why})" for step, why in failed_steps.items()]
    problems += [
        f"{name}: {value}" for name, value in counts.items() if (name == "failed" or name.endswith("_failed")) and value
    ]
    metrics.recorder.flow_finished(flow, "failed" if problems else "completed")
    if problems:
        return Failed(message=f"{flow}: {'; '.join(problems)} (all else ran: see the {flow}-counts artifact)")
    return dict(counts)


def reported[**P](body: Callable[P, Mapping[str, Any]]) -> Callable[P, dict[str, Any] | State[Any]]:
    """`finish` applied to what the flow's body returns (put it under `@flow`)."""

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any] | State[Any]:
        return finish(body(*args, **kwargs))

    return run

"""Runs whose process died (SIGKILL, OOM, a lost machine) marked Crashed, so they free their slot.

A dead process cannot report its end: its run would stay Running, and its deployment's concurrency
slot taken until the lease Prefect gives it runs out (300 s), cancelling every run in between; the
run itself would stay Running for good. Our runs send a heartbeat every HEARTBEAT_SECONDS
(app/workers/__init__.py); this Prefect automation, Prefect's documented one ("detect zombie
flows") narrowed to our flows, marks a run Crashed once CRASH_WINDOW_SECONDS pass without a
heartbeat or an end. Crashed releases the slot at once, and the run is visible as such.

`serve` and `prefect deploy` (prefect.yaml's build step) call `ensure_crash_detection`, which
creates the automation or brings it up to date, idempotently: one per Prefect server, whichever
path deployed last.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from app.workers import HEARTBEAT_SECONDS

NAME = "app-flows: crash runs that stopped sending heartbeats"
# Three missed heartbeats: a busy process may send one late, never three.
CRASH_WINDOW_SECONDS = 3 * HEARTBEAT_SECONDS
ENDS = ("Completed", "Failed", "Cancelled", "Crashed")


def crash_detection(flow_names: Iterable[str]) -> AutomationCore:
    """The automation, for runs of these flows only (other flows may send heartbeats less often)."""
    return AutomationCore(
        name=NAME,
        description=f"Marks a run of these flows Crashed after {CRASH_WINDOW_SECONDS} s without a heartbeat "
        "or an end (app/workers/crash_detection.py).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{end}" for end in ENDS)},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": sorted(flow_names)}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=CRASH_WINDOW_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {CRASH_WINDOW_SECONDS} s: its process died (marked by the automation "
                f"{NAME!r})",
            )
        ],
    )


def ensure_crash_detection(flow_names: Iterable[str] | None = None) -> dict[str, Any]:
    """Create the automation on PREFECT_API_URL's server, or update it to this one; no duplicates.

    Without `flow_names`, the registered flows'. Returns {} (a prefect.yaml step's outputs).
    """
    if flow_names is None:
        from app.workers.flows import FLOWS  # noqa: PLC0415 (the registry imports every flow)

        flow_names = list(FLOWS)
    wanted = crash_detection(flow_names)
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(NAME)
        if not found:
            client.create_automation(wanted)
            return {}
        first, *duplicates = found
        if AutomationCore.model_validate(first.model_dump(exclude={"id"})) != wanted:
            client.update_automation(first.id, wanted)
        for duplicate in duplicates:  # two deployers at once
            client.delete_automation(duplicate.id)
    return {}

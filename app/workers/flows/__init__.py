"""Every flow the worker serves, by name (names are part of the interface: deployments, `task flow`)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import Flow

from app.infrastructure.config import Settings
from app.workers.flows.clerk_reconciliation import clerk_reconciliation
from app.workers.flows.maintenance import maintenance
from app.workers.flows.user_report import user_report


@dataclass(frozen=True, slots=True)
class Scheduled:
    flow: Flow[..., Any]
    cron: Callable[[Settings], str]  # the setting that holds its schedule


FLOWS: dict[str, Scheduled] = {
    "maintenance": Scheduled(maintenance, lambda settings: settings.maintenance_cron),
    "user-report": Scheduled(user_report, lambda settings: settings.user_report_cron),
    "clerk-reconciliation": Scheduled(clerk_reconciliation, lambda settings: settings.clerk_reconciliation_cron),
}

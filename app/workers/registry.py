"""What the worker knows about a flow, declared once: its registry entry (see app/workers/flows).

Everything else follows from the entries: the deployments `serve` registers, the `task flow` names,
prefect.yaml and README's flow table (`task sync-flows` writes both; a test fails while either is
out of date). Entries grow by fields with defaults, so existing ones never need editing.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from pydantic import ValidationError

# Names travel in commands, FLOW_SCHEDULES and deployment names: lower case, digits and dashes.
NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# FLOW_SCHEDULES's value for "no schedule": the flow runs only when asked (`task flow`, the UI).
OFF = "off"


@dataclass(frozen=True, slots=True)
class RegisteredFlow:
    """A flow and how it is run. Its name is the flow's own (`@flow(name=...)`)."""

    flow: Flow[..., Any]
    cron: str | None  # the default schedule, in UTC; None: on demand only
    summary: str  # one line for README's flow table
    concurrency_limit: int = 1  # runs of it at once, served or on the pool; one more is cancelled

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def entrypoint(self) -> str:
        """`path/to/module.py:function`, as prefect.yaml and `prefect deploy` name a flow."""
        return f"{self.flow.fn.__module__.replace('.', '/')}.py:{self.flow.fn.__name__}"


def check_cron(cron: str) -> str:
    try:
        CronSchedule(cron=cron)
    except ValidationError:
        raise ValueError(f"{cron!r} is not a cron expression") from None
    return cron


class FlowRegistry(Mapping[str, RegisteredFlow]):
    """The registered flows by name, in declaration order; refuses what would break a file made
    from it (a duplicate name, an invalid cron, a summary that does not fit a table row)."""

    def __init__(self, *entries: RegisteredFlow) -> None:
        self._entries: dict[str, RegisteredFlow] = {}
        for entry in entries:
            problem = _problem(entry)
            if entry.name in self._entries:
                problem = "registered twice"
            if problem:
                raise ValueError(f"flow {entry.name!r}: {problem}")
            self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> RegisteredFlow:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def schedules(self, overrides: Mapping[str, str]) -> dict[str, str | None]:
        """Each flow's cron: its entry's, unless FLOW_SCHEDULES (`overrides`) names it (`off`: none).

        An override naming no registered flow, or an invalid cron, is an error: a misspelt name
        would otherwise leave the default schedule running unnoticed.
        """
        problems = [f"{name!r} is no registered flow" for name in overrides if name not in self._entries]
        resolved: dict[str, str | None] = {}
        for name, entry in self._entries.items():
            cron = overrides.get(name, entry.cron)
            if cron is None or cron == OFF:
                resolved[name] = None
                continue
            try:
                resolved[name] = check_cron(cron)
            except ValueError as error:
                problems.append(f"{name}: {error}")
        if problems:
            known = ", ".join(self._entries)
            raise ValueError(f"FLOW_SCHEDULES: {'; '.join(problems)} (registered flows: {known})")
        return resolved


def _problem(entry: RegisteredFlow) -> str | None:
    if not NAME.fullmatch(entry.name):
        return 'name it in lower case with dashes: @flow(name="like-this")'
    if entry.cron is not None:
        try:
            check_cron(entry.cron)
        except ValueError as error:
            return str(error)
    if not entry.summary.strip() or "\n" in entry.summary:
        return "the summary must be one non-empty line"
    if entry.concurrency_limit < 1:
        return "concurrency_limit must be at least 1"
    return None

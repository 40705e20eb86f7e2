"""The flow registry: every flow the worker runs, one entry each (README, "Adding a flow").

A flow's name is part of the interface (`task flow -- <name>`, deployments, FLOW_SCHEDULES).
After changing an entry, `uv run task sync-flows` rewrites prefect.yaml and README's flow table.
"""

from app.workers.flows.clerk_reconciliation import clerk_reconciliation
from app.workers.flows.jobs import jobs
from app.workers.flows.maintenance import maintenance
from app.workers.flows.user_report import user_report
from app.workers.registry import FlowRegistry, RegisteredFlow

FLOWS = FlowRegistry(
    RegisteredFlow(
        maintenance,
        cron="0 3 * * *",
        summary="revokes API keys past `expires_at`; deletes webhook deliveries older than "
        "`WEBHOOK_EVENTS_RETENTION_DAYS`; removes users and organizations tombstoned longer ago than "
        "`TOMBSTONE_RETENTION_DAYS` (at least 3: Svix retries for ~28 h), users with their keys, organizations "
        "with their projects, memberships and keys; archives draft projects of live organizations not updated for "
        "`PROJECT_DRAFT_ARCHIVE_DAYS`; deletes jobs finished longer ago than `JOB_RETENTION_DAYS`, and idempotency "
        "keys past `IDEMPOTENCY_KEY_TTL_HOURS`",
    ),
    RegisteredFlow(
        clerk_reconciliation,
        cron="0 * * * *",
        summary="pages through Clerk's Backend API (`CLERK_API_URL`, `CLERK_SECRET_KEY`; skipped without it) and "
        "applies each user, organization and membership with the webhook's rules; after complete listings only, "
        "tombstones local users and organizations Clerk no longer has and ends the memberships it no longer lists "
        "(each confirmed with Clerk first)",
    ),
    RegisteredFlow(user_report, cron="0 6 * * *", summary="the pattern in small: active users by role, new ones"),
    RegisteredFlow(
        jobs,
        cron=None,
        summary="runs every claimable background job now, then returns (`task worker` runs them continuously; "
        "see Background jobs)",
    ),
)

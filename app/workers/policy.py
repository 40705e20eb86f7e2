"""How every flow and task of the worker behaves when things go wrong, declared once (README, "Workers").

- Tasks: `@task(**TASK_POLICY)`. A task that fails on a transient error (the database dropped the
  connection, a statement or lock wait hit DATABASE_STATEMENT_TIMEOUT_SECONDS, a deadlock, SQLite's
  "database is locked", the pool had no free connection in time, an HTTP transport error) is run
  again after 10, 20 then 40 s (±50 %): a lock or a deadlock clears in seconds, a PostgreSQL restart
  or failover in well under a minute. Anything else (a bug, a refusal, Clerk's errors: its client has
  already retried 429s and 5xx itself) fails at once. A retry runs the whole task again: every task
  is idempotent (it changes only the rows that still need it).
- Each task stops after TASK_TIMEOUT_SECONDS and each flow after its own timeout (in its `@flow`,
  where the work pool, which loads the flow from its module, sees it too). Timeouts are checked
  between Python calls: a database call is bounded by the statement timeout, a Clerk request by the
  client's, so a timed-out task ends within seconds of its deadline.
- Deployments (`serve`'s and prefect.yaml's alike): at most `concurrency_limit` runs of a flow at
  once (1 by default), and a run that would exceed it is cancelled, not queued
  (COLLISION_STRATEGY): a scheduled run that finds the previous one still going is dropped, as a
  manual trigger during a scheduled run is, instead of piling up behind a stuck run. Crashed runs
  free their slot CRASH_WINDOW_SECONDS after their last heartbeat (crash_detection.py).
"""

from typing import Any

import httpx
from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy, State, TaskRun
from prefect.tasks import exponential_backoff

from app.infrastructure.database_errors import is_outage

MINUTE = 60
HOUR = 60 * MINUTE

TASK_RETRIES = 3
# A task that runs longer is stuck: revoking 100 000 expired keys took 11 s (bench.maintenance), so
# 30 minutes is millions of rows.
TASK_TIMEOUT_SECONDS = 30 * MINUTE

COLLISION_STRATEGY = ConcurrencyLimitStrategy.CANCEL_NEW


def is_transient(error: BaseException) -> bool:
    """Worth running the task again: the same call may well succeed in a few seconds. A database
    outage as the API judges one (a 503 there), or an HTTP transport error."""
    return isinstance(error, httpx.TransportError) or is_outage(error)


def retry_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's `retry_condition_fn`: retry a failed task only if its error was transient."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


# Database tasks: their inputs are plain values and their effect must happen on every run (NO_CACHE).
TASK_POLICY: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": TASK_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
    "timeout_seconds": TASK_TIMEOUT_SECONDS,
}


# The one task outside TASK_POLICY, and why: its retries, backoff and time bound are the job row's.
JOB_TASK = "job"
JOB_TASK_POLICY: dict[str, Any] = {
    # A background job (app/workers/jobs.py) is retried by its row (JOB_MAX_ATTEMPTS, with backoff,
    # counted in `attempts`) and bounded by its lease (JOB_LEASE_SECONDS): a task retry would run it
    # again outside that count, and Prefect cannot interrupt a sync task in a worker thread anyway.
    "cache_policy": NO_CACHE,
    "retries": 0,
}


def concurrency(limit: int) -> ConcurrencyLimitConfig:
    """A deployment's concurrency: `limit` runs at once, any further one cancelled."""
    return ConcurrencyLimitConfig(limit=limit, collision_strategy=COLLISION_STRATEGY)

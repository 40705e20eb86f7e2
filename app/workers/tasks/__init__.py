"""Reusable Prefect tasks. Every task is `@task(**TASK_POLICY)` (app/workers/policy.py): no cache
(inputs are plain values and the effect must happen every run), retried on transient errors, bounded
in time."""

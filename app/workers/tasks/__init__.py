"""Reusable Prefect tasks. Database tasks use `cache_policy=NO_CACHE`: their inputs are plain values
and their effect must happen every run."""

"""Prefect flows and tasks: the adapter that runs domain services on a schedule."""

"""Prefect for the worker tests: a private PREFECT_HOME, and one test harness (a temporary local
Prefect server, ~15 s to start) shared by the whole session. Flows use the test database through
`use_container`."""

import os
import tempfile
from collections.abc import Iterator

# Before Prefect is imported anywhere: its settings are read at import.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest
from prefect.testing.utilities import prefect_test_harness

from app.bootstrap import Container
from app.workers.runtime import use_container


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def worker(container: Container, prefect_harness: None) -> Iterator[Container]:
    """Flows and tasks of this test run against the test database, through a real Prefect API."""
    use_container(container)
    yield container
    use_container(None)

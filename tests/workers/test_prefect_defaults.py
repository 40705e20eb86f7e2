"""Prefect's defaults in every process that runs our flows: set by app/workers/__init__.py before
Prefect reads its settings, so nobody has to configure them, and an operator's own values win."""

import os
import subprocess
import sys


def _prefect_settings_in_a_new_process(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_SERVER_", "PREFECT_LOGGING_TO_API"))}
    code = (
        "import app.workers.main\n"
        "from prefect.settings import get_current_settings\n"
        "server = get_current_settings().server\n"
        "print(server.analytics_enabled, server.ephemeral.startup_timeout_seconds,"
        " get_current_settings().logging.to_api.when_missing_flow)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.split()


def test_telemetry_off_time_for_a_first_server_and_no_warning_per_job_unless_the_operator_says_otherwise() -> None:
    assert _prefect_settings_in_a_new_process() == ["False", "120", "ignore"]
    assert _prefect_settings_in_a_new_process(
        PREFECT_SERVER_ANALYTICS_ENABLED="true",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="30",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="warn",
    ) == ["True", "30", "warn"]

"""The Prefect adapter: flows and tasks that call the same domain services as the API.

Nothing under app/api imports this package (Prefect costs ~1.5 s to import).

Prefect reads its settings once, when it is imported; this package sets these defaults first, so
every process that runs our flows (`task flow`, `task worker`, the worker image, the tests) gets
them without configuring anything, and an operator's own value still wins:
- no anonymous telemetry: the temporary and local servers it starts send none, and the SDK sends
  events only to a server whose analytics are on (offline, each run logged `Failed to send telemetry`);
- a first temporary server may take its time: it creates and migrates Prefect's database under
  PREFECT_HOME, which took over Prefect's default 20 s on a busy two-core machine and failed the run.
- a background job runs as a task run outside any flow run (app/workers/jobs.py), whose log lines
  Prefect's API does not take: they stay on the worker's stderr, without a warning per job.

One value is not a default but set: our flow runs send a heartbeat every HEARTBEAT_SECONDS (Prefect's
minimum; its default is 180), because the automation that marks dead runs Crashed
(crash_detection.py) waits three heartbeats, and both must agree. Runs on the work pool get it
from prefect.yaml (their process imports Prefect before this package).
"""

import os

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}

HEARTBEAT_SECONDS = 30
HEARTBEAT_SETTING = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"

for _name, _value in PREFECT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
os.environ[HEARTBEAT_SETTING] = str(HEARTBEAT_SECONDS)

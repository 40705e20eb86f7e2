"""What the code counts, whether or not metrics are on: one recorder per process.

    from app.infrastructure import metrics
    metrics.recorder.auth_refused("expired")

The default recorder does nothing (a method call, no import of prometheus_client). With
METRICS_ENABLED, the process's entry point (the API's `create_app`, the worker's container) calls
`app.infrastructure.prometheus.enable`, which replaces it with one that writes Prometheus metrics.
Call sites read `metrics.recorder` at the time of the call, never keep it.
"""


class Recorder:
    """The metrics an operator reads (README, "Metrics"), as calls; this one records nothing."""

    def argon2_verified(self, valid: bool, wait_seconds: float) -> None:
        """An argon2 verification ran (a key's first use in this process), after waiting that long
        for one of the ARGON2_MAX_CONCURRENT slots."""

    def auth_refused(self, reason: str) -> None:
        """A request was refused for its credential (401 or 429), for this reason."""

    def webhook_delivery(self, outcome: str) -> None:
        """A webhook delivery was answered: applied, duplicate, ignored..., or rejected_<reason>."""

    def job_enqueued(self, kind: str) -> None:
        """A request queued a job of this kind (counted when the request's transaction commits or not)."""

    def job_finished(self, kind: str, status: str, queued_seconds: float, run_seconds: float) -> None:
        """A worker ran a job: its status after the run (queued again: a retry), how long it had
        waited since it was due, how long the run took."""

    def flow_finished(self, flow: str, state: str) -> None:
        """A flow run ended in this state (completed, failed, skipped)."""


recorder = Recorder()


def use(other: Recorder) -> None:
    global recorder  # noqa: PLW0603
    recorder = other

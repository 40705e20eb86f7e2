"""Application settings, read from the environment (and `.env`) by pydantic-settings.

Guard rails: outside development the app refuses to start with settings that are only safe on a
laptop (the embedded SQLite default, placeholder secrets, cheap password-hashing parameters).
"""

import base64
import binascii
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'app.db'}"

# OWASP's minimum for argon2id: 19 MiB of memory and 2 iterations.
MIN_ARGON2_MEMORY_COST_KIB = 19 * 1024
MIN_ARGON2_TIME_COST = 2
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "placeholder", "secret", "password", "postgres"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    database_url: str = DEFAULT_DATABASE_URL
    # Sync handlers run in a thread pool; every thread may hold one connection, so the pool is
    # sized to the threads and never overflows (see docs/architecture.md).
    worker_threads: int = Field(default=16, ge=1, le=256)
    database_pool_size: int | None = Field(default=None, ge=1, le=256)  # default: worker_threads
    # Bounds on every database call, so an unreachable or frozen database costs a request seconds
    # (then a 503), never a worker thread for good. The pool timeout is the wait for a free connection.
    database_pool_timeout: float = Field(default=5.0, gt=0)
    database_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    # Connections older than this are replaced at checkout (instead of a pre-ping per checkout).
    database_pool_recycle_seconds: int = Field(default=1800, ge=1)

    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=64 * 1024, ge=8)
    # At most this many argon2 verifications at once (each takes ARGON2_MEMORY_COST_KIB and a core).
    argon2_max_concurrent: int = Field(default=2, ge=1, le=64)
    # Failed API-key authentications a minute, per client address and per key prefix, before their
    # refusals are 429s instead of 401s (counted per process). A valid key is always checked.
    auth_failures_per_client: int = Field(default=20, ge=1)
    auth_failures_per_key: int = Field(default=10, ge=1)

    # Seconds a request's line and headers may take from the connection (or the next request's first
    # byte), then its whole body once the headers are in; then 408. Trickling clients cannot hold
    # connections or buffered bodies (app/api/server.py under uvicorn, app/api/request_body.py).
    request_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    request_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Read by uvicorn itself (from the process environment): the proxies whose X-Forwarded-For it
    # believes. Checked here so that `*` (anyone may claim any address) cannot reach production.
    forwarded_allow_ips: str = "127.0.0.1,::1"

    # Clerk. Session tokens are accepted only when CLERK_ISSUER is set; the key is CLERK_JWT_KEY
    # (PEM, no network) or else the JWKS at CLERK_JWKS_URL (default: <issuer>/.well-known/jwks.json).
    clerk_issuer: str | None = None
    clerk_jwt_key: str | None = None
    clerk_jwks_url: str | None = None
    # The JWKS is fetched on the event loop, never by a worker thread: a request waits for it at most
    # CLERK_JWKS_TIMEOUT_SECONDS, and fetches start at most once per CLERK_JWKS_MIN_REFRESH_SECONDS
    # whatever the traffic (failed ones too), so a sick endpoint or made-up kids cost no more.
    clerk_jwks_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    clerk_jwks_min_refresh_seconds: float = Field(default=10.0, ge=1, le=3600)
    clerk_authorized_parties: Annotated[list[str], NoDecode] = Field(default_factory=list)
    clerk_webhook_signing_secret: SecretStr | None = None
    # Opt-in: accept session tokens without `azp` from the Authorization header (native clients).
    clerk_accept_tokens_without_azp: bool = False
    # The Backend API, for the clerk-reconciliation flow (skipped while CLERK_SECRET_KEY is unset).
    clerk_secret_key: SecretStr | None = None
    clerk_api_url: str = "https://api.clerk.com/v1"

    # Prefect flows (app/workers). Schedules other than the flows' own defaults, in UTC:
    # "maintenance=0 4 * * *; user-report=off" (the worker checks the names against its registry).
    flow_schedules: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Rows a flow changes per transaction: memory stays flat, locks stay short.
    worker_batch_size: int = Field(default=1000, ge=1, le=100_000)
    webhook_events_retention_days: int = Field(default=30, ge=1)
    # Never below 3: Svix retries a delivery for about 28 hours, and a tombstone must outlive them.
    # Tombstoned users and organizations alike (an organization with its projects and memberships).
    tombstone_retention_days: int = Field(default=7, ge=3)
    project_draft_archive_days: int = Field(
        default=30,
        ge=1,
        description="The maintenance flow archives draft projects of live organizations not updated for this many days",
    )

    # Background jobs (app/domains/jobs). A job whose attempt fails with a transient error (the
    # database or an HTTP peer unreachable) is queued again after JOB_RETRY_BACKOFF_SECONDS, doubling
    # with each attempt (at most an hour), until JOB_MAX_ATTEMPTS; then it fails. A result larger than
    # JOB_RESULT_MAX_BYTES once serialised fails the job ("result too large").
    job_max_attempts: int = Field(default=5, ge=1, le=100)
    job_retry_backoff_seconds: float = Field(default=2.0, gt=0, le=3600)
    job_result_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # The worker's dispatcher (app/workers/jobs.py): a claimed job is the worker's for
    # JOB_LEASE_SECONDS (a job must finish within it; a dead worker's job is claimed again after it),
    # queued jobs are looked for every JOB_POLL_SECONDS, and each worker process runs up to
    # JOB_CONCURRENCY at once. Finished jobs and their results are deleted after JOB_RETENTION_DAYS.
    job_lease_seconds: float = Field(default=60.0, ge=2, le=3600)
    job_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    job_concurrency: int = Field(default=4, ge=1, le=64)
    job_retention_days: int = Field(default=7, ge=1)

    # Idempotency-Key (app/api/idempotency.py): a key replays its stored response for this many
    # hours; then the maintenance flow deletes it and the key may be used again.
    idempotency_key_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)

    # Prometheus metrics (app/infrastructure/prometheus.py): off unless METRICS_ENABLED. The API serves
    # them on METRICS_HOST:METRICS_PORT, the worker on METRICS_HOST:WORKER_METRICS_PORT, ports apart
    # from the API's that the proxy never routes to; loopback only unless METRICS_HOST says otherwise.
    # Processes write their samples under METRICS_DIR (default: <tmp>/app-metrics).
    metrics_enabled: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9100, ge=1, le=65535)
    worker_metrics_port: int = Field(default=9101, ge=1, le=65535)
    metrics_dir: str | None = None

    @field_validator("clerk_authorized_parties", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [party.strip().rstrip("/") for party in value.split(",") if party.strip()]
        return value

    @field_validator("flow_schedules", mode="before")
    @classmethod
    def _name_cron_pairs(cls, value: object) -> object:
        """`name=cron; name=cron` (a semicolon, as cron uses commas) into a dict; no name twice."""
        if not isinstance(value, str):
            return value
        schedules: dict[str, str] = {}
        for pair in filter(None, (part.strip() for part in value.split(";"))):
            name, equals, cron = (part.strip() for part in pair.partition("="))
            if not (name and equals and cron):
                raise ValueError(f"expected name=cron pairs separated by ';', got {pair!r}")
            if name in schedules:
                raise ValueError(f"{name!r} is given twice")
            schedules[name] = cron
        return schedules

    @field_validator(
        "clerk_issuer",
        "clerk_jwt_key",
        "clerk_jwks_url",
        "clerk_webhook_signing_secret",
        "clerk_secret_key",
        "metrics_dir",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clerk_webhook_signing_secret")
    @classmethod
    def _whsec_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            try:
                valid = secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) >= 16
            except binascii.Error:
                valid = False
            if not valid:
                raise ValueError("CLERK_WEBHOOK_SIGNING_SECRET must be the whsec_... secret of the Clerk endpoint")
        return value

    @property
    def clerk_jwks_endpoint(self) -> str | None:
        if self.clerk_jwks_url:
            return self.clerk_jwks_url
        return f"{self.clerk_issuer.rstrip('/')}/.well-known/jwks.json" if self.clerk_issuer else None

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def pool_size(self) -> int:
        return self.database_pool_size or self.worker_threads

    @model_validator(mode="after")
    def _refuse_unsafe_settings(self) -> "Settings":
        if self.pool_size < self.worker_threads:
            raise ValueError("DATABASE_POOL_SIZE must be at least WORKER_THREADS (each thread may hold a connection)")
        if self.is_development:
            return self
        problems = []
        url = make_url(self.database_url)
        if url.get_backend_name() != "postgresql":  # judged by its value: a copied .env sets it too
            problems.append("DATABASE_URL must be a PostgreSQL URL (SQLite is for development)")
        elif url.password is not None and url.password.lower() in PLACEHOLDER_SECRETS:
            problems.append("DATABASE_URL carries a placeholder password")
        if self.argon2_time_cost < MIN_ARGON2_TIME_COST or self.argon2_memory_cost_kib < MIN_ARGON2_MEMORY_COST_KIB:
            problems.append(
                f"ARGON2_TIME_COST >= {MIN_ARGON2_TIME_COST} and "
                f"ARGON2_MEMORY_COST_KIB >= {MIN_ARGON2_MEMORY_COST_KIB} are required"
            )
        problems.extend(self._clerk_problems())
        if trusts_everyone(self.forwarded_allow_ips):
            problems.append(
                "FORWARDED_ALLOW_IPS must name your proxies' addresses, not '*' or a /0 network (a client "
                "could claim any address in X-Forwarded-For)"
            )
        if problems:
            raise ValueError(f"unsafe settings for ENVIRONMENT={self.environment}: " + "; ".join(problems))
        return self

    def _clerk_problems(self) -> list[str]:
        problems = []
        if self.clerk_issuer:
            if not self.clerk_issuer.startswith("https://"):
                problems.append("CLERK_ISSUER must be an https:// URL")
            if not self.clerk_authorized_parties:
                problems.append("CLERK_AUTHORIZED_PARTIES must list the origins allowed to use session tokens")
        return problems


def trusts_everyone(forwarded_allow_ips: str) -> bool:
    """`*`, or a network that holds every address (uvicorn accepts both)."""
    for entry in (item.strip() for item in forwarded_allow_ips.split(",")):
        if entry == "*":
            return True
        try:
            if ipaddress.ip_network(entry, strict=False).prefixlen == 0:
                return True
        except ValueError:  # a literal (a unix socket's path): trusts only that
            continue
    return False


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment; invalid ones stop the process with one line per problem
    naming the setting (an operator reads this, not a pydantic traceback)."""
    try:
        return Settings()
    except ValidationError as error:
        raise SystemExit(f"invalid settings: {describe_invalid_settings(error)}") from None


def describe_invalid_settings(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{str(item['loc'][0]).upper()}: {message}" if item["loc"] else message)
    return "; ".join(problems)

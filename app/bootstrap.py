"""One container per process: everything built once from settings, shared by every unit of work.

The API, the CLI, the flows and the tests all start here:

    container = bootstrap()               # settings from the environment
    with container.unit_of_work(Actor.system()) as uow:
        ...
    container.dispose()
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session

import app.models  # noqa: F401  (every domain's tables and permissions are registered)
from app.domains.base.actors import Actor
from app.domains.base.unit_of_work import ServiceFactories, UnitOfWork
from app.domains.idempotency.service import IdempotencyService
from app.domains.jobs.rules import JobLimits
from app.domains.jobs.service import JobService
from app.domains.users.service import APIKeyService
from app.infrastructure.attempts import AttemptLimiter
from app.infrastructure.clerk_session_tokens import ClerkTokenVerifier
from app.infrastructure.config import Settings, get_settings
from app.infrastructure.database import Database
from app.infrastructure.hashing import APIKeyHasher
from app.infrastructure.svix import SvixVerifier


@dataclass(frozen=True, slots=True)
class Container:
    settings: Settings
    database: Database
    hasher: APIKeyHasher
    attempts: AttemptLimiter
    clerk_verifier: ClerkTokenVerifier | None  # None: session tokens are refused
    svix_verifier: SvixVerifier | None  # None: webhooks are refused
    services: ServiceFactories = field(init=False)  # derived from the fields above

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", self.service_factories())

    def service_factories(self) -> ServiceFactories:
        """How units of work build the services that have dependencies: each dependency passed
        explicitly, by keyword. Any other service is built by its class."""
        settings = self.settings
        limits = JobLimits(
            max_attempts=settings.job_max_attempts,
            retry_backoff_seconds=settings.job_retry_backoff_seconds,
            result_max_bytes=settings.job_result_max_bytes,
        )
        return (
            ServiceFactories()
            .register(APIKeyService, partial(APIKeyService, hasher=self.hasher, attempts=self.attempts))
            .register(JobService, partial(JobService, limits=limits))
            .register(
                IdempotencyService, partial(IdempotencyService, ttl=timedelta(hours=settings.idempotency_key_ttl_hours))
            )
        )

    def unit_of_work(self, actor: Actor | None = None, *, read_only: bool = False) -> UnitOfWork:
        """`read_only`: statements autocommit one by one (see `UnitOfWork`)."""
        return UnitOfWork(self.session_factory(read_only), actor, self.services)

    def session_factory(self, read_only: bool) -> Callable[[], Session]:
        return self.database.read_session_factory if read_only else self.database.session_factory

    def dispose(self) -> None:
        self.database.dispose()


def bootstrap(settings: Settings | None = None) -> Container:
    settings = settings or get_settings()
    return Container(
        settings=settings,
        database=Database(settings),
        hasher=APIKeyHasher(
            settings.argon2_time_cost, settings.argon2_memory_cost_kib, concurrent=settings.argon2_max_concurrent
        ),
        attempts=AttemptLimiter(settings.auth_failures_per_client, settings.auth_failures_per_key),
        clerk_verifier=_clerk_verifier(settings),
        svix_verifier=_svix_verifier(settings),
    )


def _clerk_verifier(settings: Settings) -> ClerkTokenVerifier | None:
    if not settings.clerk_issuer:
        return None
    return ClerkTokenVerifier(
        settings.clerk_issuer,
        settings.clerk_authorized_parties,
        pem_key=settings.clerk_jwt_key,
        jwks_url=settings.clerk_jwks_endpoint,
        jwks_timeout_seconds=settings.clerk_jwks_timeout_seconds,
        jwks_min_refresh_seconds=settings.clerk_jwks_min_refresh_seconds,
        accept_missing_azp=settings.clerk_accept_tokens_without_azp,
    )


def _svix_verifier(settings: Settings) -> SvixVerifier | None:
    secret = settings.clerk_webhook_signing_secret
    return SvixVerifier(secret.get_secret_value()) if secret else None

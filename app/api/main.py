"""The Litestar app factory: `uvicorn --factory app.api.main:create_app`."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from litestar import Litestar
from litestar.datastructures import State
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from app.api.auth import API_KEY_HEADER, AuthenticationMiddleware
from app.api.dependencies import app_dependencies
from app.api.exceptions import exception_handlers
from app.api.router import route_handlers
from app.infrastructure.clerk import ClerkTokenVerifier
from app.infrastructure.config import Settings, get_settings
from app.infrastructure.database import Database
from app.infrastructure.security import APIKeyHasher
from app.infrastructure.svix import SvixVerifier


def clerk_verifier(settings: Settings) -> ClerkTokenVerifier | None:
    if not settings.clerk_issuer:
        return None
    return ClerkTokenVerifier(
        settings.clerk_issuer,
        settings.clerk_authorized_parties,
        pem_key=settings.clerk_jwt_key,
        jwks_url=settings.clerk_jwks_endpoint,
    )


def svix_verifier(settings: Settings) -> SvixVerifier | None:
    secret = settings.clerk_webhook_signing_secret
    return SvixVerifier(secret.get_secret_value()) if secret else None


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    database = Database(settings)

    async def size_worker_pool() -> None:
        """Sync handlers run in the loop's default executor: one thread per pooled connection."""
        executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="worker")
        asyncio.get_running_loop().set_default_executor(executor)

    return Litestar(
        route_handlers=route_handlers,
        dependencies=app_dependencies,
        middleware=[DefineMiddleware(AuthenticationMiddleware, exclude=["^/schema"])],
        exception_handlers=exception_handlers,
        on_startup=[size_worker_pool],
        on_shutdown=[database.dispose],
        state=State(
            {
                "settings": settings,
                "database": database,
                "api_key_hasher": APIKeyHasher(settings.argon2_time_cost, settings.argon2_memory_cost_kib),
                "clerk_verifier": clerk_verifier(settings),
                "svix_verifier": svix_verifier(settings),
            }
        ),
        openapi_config=OpenAPIConfig(
            title="Backend template API",
            version="0.1.0",
            path="/schema",
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header"),
                    "ClerkSession": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                }
            ),
            security=[{"ApiKey": []}, {"ClerkSession": []}],
        ),
        logging_config=LoggingConfig(root={"level": settings.log_level, "handlers": ["queue_listener"]}),
        debug=False,
    )

"""Helpers shared by tests (fixtures live in conftest.py)."""

from alembic.config import Config
from sqlalchemy import make_url

from app.infrastructure.config import PROJECT_ROOT, Settings

CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024}


def alembic_config(connection: object | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def settings_for(database_url: str, **overrides: object) -> Settings:
    """Settings that ignore the developer's `.env`, with cheap argon2 parameters."""
    return Settings(_env_file=None, database_url=database_url, **CHEAP_ARGON2, **overrides)


def backend_name(settings: Settings) -> str:
    return make_url(settings.database_url).get_backend_name()

"""The engine each backend gets: SQLite with foreign keys and WAL, PostgreSQL without pre-ping."""

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from app.domains.users.models import APIKey
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from tests.helpers import backend_name


def test_backend_specific_engine_settings(database: Database, settings: Settings) -> None:
    assert database.engine.pool.size() == settings.pool_size
    if backend_name(settings) == "sqlite":
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    else:  # no round trip per checkout: connections are recycled instead
        assert database.engine.pool._pre_ping is False
        assert database.engine.pool._recycle == settings.database_pool_recycle_seconds


def test_foreign_keys_are_enforced(database: Database) -> None:
    orphan = APIKey(user_id=APIKey().id, name="orphan", prefix="sk_orphan", key_hash="x")
    with database.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(insert(APIKey).values(orphan.model_dump()))

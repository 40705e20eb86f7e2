"""Alembic environment: the app's settings give the URL, the models registry gives the metadata.

A caller may pass an open connection in `config.attributes["connection"]` (the tests do).
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from app.infrastructure.config import get_settings
from app.infrastructure.database import build_engine
from app.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=get_settings().database_url,
        target_metadata=metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    run_migrations(connection)
else:
    engine = build_engine(get_settings(), statement_timeout=None)  # a migration may take its time
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()

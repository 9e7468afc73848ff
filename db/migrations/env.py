"""Alembic environment: runs the migrations on the connection modelscan passes in.

``modelscan.db.migrate`` puts an open connection in ``config.attributes``; the
``alembic`` command line (``alembic -c db/alembic.ini upgrade head``) works too
and uses ``MODELSCAN_DATABASE_URL`` or the default index.
"""

from __future__ import annotations

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from modelscan.db.engine import WRITE_OPTION, default_url, make_engine
from modelscan.db.schema_views import create_views, drop_views
from modelscan.db.tables import Base

# Any constant shared by every modelscan process: concurrent first runs against one
# PostgreSQL database queue on it instead of creating the tables twice.
PG_MIGRATION_LOCK = 0x6D6F64656C73

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK}
            )
        drop_views(connection)  # views follow head: see db/schema_views.py
        context.run_migrations()
        heads = set(ScriptDirectory.from_config(config).get_heads())
        if set(context.get_context().get_current_heads()) == heads:
            create_views(connection)


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or default_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or default_url())
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            _configure(conn)


if context.is_offline_mode():
    run_offline()
else:
    run_online()

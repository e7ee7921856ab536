"""Alembic environment of the collect store.

collect runs the migrations itself (engine/store.py `migrate`), passing the connection it holds under
its migration lock in `config.attributes["connection"]`. Developers make a new revision with
`alembic -c engine/migrations/alembic.ini revision -m "what changes"` (never edit an applied one).
"""

from alembic import context

from collect.engine.store import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - `alembic` CLI used by a developer: the store's URL
    from collect.engine.store import connect

    connection = connect(context.config.get_main_option("sqlalchemy.url"), upgrade=False).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  version_table="alembic_version")
with context.begin_transaction():
    context.run_migrations()

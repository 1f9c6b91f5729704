"""The prediction log's tables and engine. Alembic migrations (beside this file) create and upgrade them.

    engine = connect()             # LEADSCORE_DATABASE_URL, else sqlite:///predictions.db here
    migrate(engine)                # idempotent: brings any older log up to the current tables

A `postgresql://` URL uses psycopg 3 (installed with leadscore); SQLite runs in WAL mode so the
writer thread and the outcome requests do not block each other's readers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

from serving.predlog.engine import ID_LENGTH

DEFAULT_URL = "sqlite:///predictions.db"
ENV_VAR = "LEADSCORE_DATABASE_URL"

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), index=True),
    Column("scored_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("probability", Float, nullable=False),
    Column("score", Integer, nullable=False),
    Column("grade", String(8), nullable=False),
    Column("raw_score", Float, nullable=False),
    Column("factors", JSON, nullable=False),  # {factor key: impact in log-odds}
    Column("top_factor", String(32)),  # the most negative factor, if any lowers the lead
    Column("top_reason", String(400)),
    Column("lead", JSON, nullable=False),  # the lead's fields as received
    Column("explore", Boolean, nullable=False, default=False),  # routed regardless of score
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("lead_id", String(ID_LENGTH), primary_key=True),
    Column("converted", Boolean, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("owner", String(ID_LENGTH)),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), nullable=False, index=True),
    Column("factor", String(32), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("author", String(ID_LENGTH), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def database_url(url: str | None = None) -> str:
    """The URL given, else LEADSCORE_DATABASE_URL, else a SQLite file in the working folder."""
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connect(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the log. Connecting is lazy: a database that is down fails on first use, not here."""
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=4, max_overflow=4, connect_args={"connect_timeout": 5}, **kwargs
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_MIGRATING = threading.Lock()  # Alembic's `context` and `op` are module globals: one migration at a time


def migrate(engine: Engine) -> None:
    """Create or upgrade the tables with Alembic (the revisions in `migrations/versions`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with _MIGRATING, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def describe(url: str | None) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(database_url(url)).render_as_string(hide_password=True)

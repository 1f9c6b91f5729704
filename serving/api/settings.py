"""Server settings: one typed object, read from the environment (LEADSCORE_*) once at start-up.

    LEADSCORE_HOST=0.0.0.0 LEADSCORE_ADMIN_TOKEN=... leadscore serve

Bad values (a port of 70000, a batch limit of 0) are refused at start, with the variable's name.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.model.registry import DEFAULT_MODEL


class Settings(BaseSettings):
    """Everything the API can be told; defaults need no setup and listen on loopback only."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore", protected_namespaces=())

    host: str = Field("127.0.0.1", description="interface to listen on; 127.0.0.1 keeps the API local")
    port: int = Field(8000, ge=1, le=65535)
    model: str = Field(DEFAULT_MODEL, description="models:/NAME@ALIAS, models:/NAME/VERSION or a bundle folder")
    max_batch: int = Field(10_000, ge=1, le=1_000_000, description="most leads in one batch request")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="largest request body accepted")
    scoring_timeout_s: float = Field(30.0, gt=0, description="a batch request scoring longer gets a 503")
    admin_token: SecretStr | None = Field(None, description="enables POST /v1/admin/reload when set")
    what_if: int = Field(3, ge=0, le=20, description="most what-if changes returned per lead")
    workers: int = Field(1, ge=1, le=32, description="server processes; one per core uses every core")
    strict_fields: bool = Field(
        False,
        description="refuse fields the lead schema does not know (a typo is a "
        "422) instead of ignoring them with a warning",
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a request whose body has not fully arrived by then "
        "gets a 408 (a client sending a byte a second holds no connection for long)",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a connection whose request line and headers have not arrived by then gets a 408 and is "
        "closed (one that sent nothing is closed): idle or trickling connections cannot use up max_connections",
    )
    max_connections: int = Field(
        256, ge=1, le=100_000, description="open connections per process; past it new requests get a 503 at once"
    )
    keep_alive_s: float = Field(5.0, gt=0, le=3600, description="an idle keep-alive connection is closed after this")
    database_url: str | None = Field(
        None,
        description="the prediction log: a SQLAlchemy URL (postgresql://...); "
        "default sqlite:///predictions.db in the working folder",
    )
    log_predictions: bool = Field(True, description="record every served score in the prediction log")
    log_queue: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="scores waiting for the log before new ones are dropped (and counted in /metrics)",
    )
    write_token: SecretStr | None = Field(None, description="enables POST /v1/outcomes and /v1/feedback when set")
    explore_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of leads flagged to be routed "
        "regardless of score, so the next model also learns from leads this one disfavours",
    )
    monitor_interval_s: float = Field(
        300.0, gt=0, description="how often /metrics' live model figures are recomputed from the log"
    )
    reload_signal: str | None = Field(
        None,
        description="set by `leadscore serve --workers N`: the file "
        "through which its worker processes hear of a reload",
    )

"""`leadscore serve`: load the model, then run the API under uvicorn (loopback by default)."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import tempfile
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from features.errors import LeadscoreError

if TYPE_CHECKING:
    from serving.api.settings import Settings

_logger = logging.getLogger(__name__)


def serve_command(
    *, host: str | None = None, port: int | None = None, model: str | None = None, workers: int | None = None
) -> int:
    """Fail fast on a bad setting or a missing model (exit 2), else serve until interrupted."""
    from serving.api.heap import pause_collector, resume_collector

    pause_collector()  # until the app settles its heap at start-up, before its first request: serving.api.heap
    try:
        return _serve(host=host, port=port, model=model, workers=workers)
    finally:
        resume_collector()  # a start that failed, or the server has stopped


def _serve(*, host: str | None, port: int | None, model: str | None, workers: int | None) -> int:
    import uvicorn

    from serving.api.heap import resume_collector
    from serving.api.main import create_app
    from serving.api.schemas import example_lead
    from serving.api.state import load_scorer

    settings = load_settings(host=host, port=port, model=model, workers=workers)
    check_port_free(settings.host, settings.port)
    scorer = load_scorer(settings.model)  # a damaged model or a locked store: one line, exit 2
    base = f"http://{settings.host}:{settings.port}"
    processes = f", {settings.workers} worker processes" if settings.workers > 1 else ""
    print(f"serving {scorer.bundle.name} version {scorer.bundle.version} at {base}{processes} (docs: {base}/docs)")
    print("try:\n  " + curl_example(base, example_lead(scorer.schema)), flush=True)
    if settings.workers == 1:
        app = create_app(settings, scorer=scorer)
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            **connection_limits(settings),
        )
        return 0
    del scorer  # each worker process loads its own copy
    resume_collector()  # this process only supervises the workers from here on
    if settings.log_predictions:
        _migrate_log_once(settings.database_url)
    with tempfile.TemporaryDirectory(prefix="leadscore-serve-") as run_dir:
        os.environ.update(settings_env(settings, reload_signal=os.path.join(run_dir, "reload")))
        uvicorn.run(
            "serving.api.main:create_app",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            **connection_limits(settings),
        )
    return 0


def _migrate_log_once(url: str | None) -> None:
    """Create the prediction log's tables before the workers start, so they do not race to create them.
    A database that cannot be reached now is not fatal: scores are served and the loss counted."""
    from serving.predlog.db import connect, describe, migrate

    try:
        migrate(connect(url))
    except Exception as exc:  # noqa: BLE001 - the workers retry and count what they cannot write
        print(f"warning: prediction log {describe(url)} not ready: {type(exc).__name__}", flush=True)


def connection_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn's own bounds (open connections per process, 503 past it; idle keep-alive time) and its
    protocol with a deadline on the headers (serving.api.connections, LEADSCORE_HEADER_TIMEOUT_S).
    A slow request body is bounded by the app (BodyLimitMiddleware, LEADSCORE_BODY_TIMEOUT_S)."""
    from serving.api.connections import PROTOCOL

    return {
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_s,
        "http": PROTOCOL,
    }


def check_port_free(host: str, port: int) -> None:
    """Bind and release the address before announcing anything, so a busy port is one line (exit 2),
    not a curl hint followed by uvicorn's traceback. Binds like uvicorn does (SO_REUSEADDR)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise LeadscoreError(
            f"cannot listen on host {host!r}: {exc.strerror}; use --host or LEADSCORE_HOST", field="host"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LeadscoreError(
                    f"port {port} on {host} is already in use (another server is running there); "
                    "choose another with --port or LEADSCORE_PORT",
                    field="port",
                ) from None
            raise LeadscoreError(
                f"cannot listen on {host}:{port}: {exc.strerror}; "
                "choose another with --host/--port or LEADSCORE_HOST/LEADSCORE_PORT",
                field="port",
            ) from None


def settings_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The settings as LEADSCORE_* variables, which is how uvicorn's worker processes receive them."""
    values = {**settings.model_dump(), **overrides}
    env: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"LEADSCORE_{name.upper()}"] = str(value)
    return env


def load_settings(**overrides: object) -> Settings:
    """Environment settings with the command line's flags on top; bad values become one line."""
    from serving.api.settings import Settings

    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "setting"
        raise LeadscoreError(f"bad setting {name} (LEADSCORE_{name.upper()}): {err['msg']}", field=name) from None


def curl_example(base: str, lead: dict[str, object]) -> str:
    body = json.dumps(lead, separators=(",", ":"))
    return f"curl -s {base}/v1/score -H 'content-type: application/json' -d '{body}'"

"""`leadscore serve`: load the model, then run the API under uvicorn (loopback by default)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from features.errors import LeadscoreError

if TYPE_CHECKING:
    from serving.settings import Settings

_logger = logging.getLogger(__name__)


def serve_command(args: argparse.Namespace) -> int:
    """Fail fast on a bad setting or a missing model (exit 2), else serve until interrupted."""
    import uvicorn

    from serving.main import create_app
    from serving.schemas import example_lead
    from serving.scorer import Scorer

    settings = load_settings(host=args.host, port=args.port, model=args.model)
    scorer = Scorer.load(settings.model)
    app = create_app(settings, scorer=scorer)
    base = f"http://{settings.host}:{settings.port}"
    print(f"serving {scorer.bundle.name} version {scorer.bundle.version} at {base} (docs: {base}/docs)")
    print("try:\n  " + curl_example(base, example_lead(scorer.schema)), flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    return 0


def load_settings(**overrides: object) -> Settings:
    """Environment settings with the command line's flags on top; bad values become one line."""
    from serving.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "setting"
        raise LeadscoreError(f"bad setting {name} (LEADSCORE_{name.upper()}): {err['msg']}", field=name) from None


def curl_example(base: str, lead: dict[str, object]) -> str:
    body = json.dumps(lead, separators=(",", ":"))
    return f"curl -s {base}/v1/score -H 'content-type: application/json' -d '{body}'"

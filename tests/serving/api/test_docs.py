"""/docs and /redoc work on a network without internet: Swagger UI and ReDoc come from the package."""

from __future__ import annotations

import re

import httpx
import pytest

from serving.api.main import create_app
from serving.api.settings import Settings

OPERATIONS = ["/v1/score", "/v1/score/batch", "/v1/model", "/healthz", "/readyz", "/metrics"]


@pytest.fixture(scope="module")
def base_url(scorer, bundle_dir, run_threaded):
    with run_threaded(create_app(Settings(model=str(bundle_dir)), scorer=scorer)) as base:
        yield base


def test_doc_pages_load_their_scripts_from_the_server_not_a_cdn(base_url: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(base_url + page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources and all(s.startswith("/") for s in sources), (page, sources)
        for source in sources:
            asset = httpx.get(base_url + source)
            assert asset.status_code == 200 and len(asset.content) > 1000, source


def test_swagger_ui_lists_the_operations_and_the_lead_fields_offline(base_url: str, scorer, chromium) -> None:
    result = chromium(f"{base_url}/docs", "--dump-dom")
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    paths = re.findall(r'data-path="([^"]+)"', dom)
    assert set(OPERATIONS) <= set(paths), paths
    missing = [name for name in scorer.schema.feature_names if f">{name}<" not in dom]
    assert not missing, f"lead fields not shown: {missing}"


def test_redoc_renders_the_lead_fields_offline(base_url: str, scorer, chromium) -> None:
    result = chromium(f"{base_url}/redoc", "--dump-dom")
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Score and explain one lead" in dom  # rendered by the script, not in the page's HTML
    missing = [name for name in scorer.schema.feature_names if f">{name}<" not in dom]
    assert not missing, f"lead fields not shown: {missing}"

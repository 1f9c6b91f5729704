"""The README's API example cannot drift from the API: its curl body is accepted, and its (abridged)
answer has the real answer's fields and formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from serving.api.main import create_app
from serving.api.settings import Settings

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture(scope="module")
def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Serving API")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_lead_is_scored_and_its_answer_matches_the_real_one(
    section: str, scorer, bundle_dir, run_threaded
) -> None:
    body = re.search(r"curl -s http://127\.0\.0\.1:8000/v1/score .*?\\\n\s+-d '(\{.*?\})'", section, re.S)
    assert body, "the README shows a curl line for your own lead"
    answer = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    with run_threaded(create_app(Settings(model=str(bundle_dir)), scorer=scorer)) as base:
        scored = httpx.post(f"{base}/v1/score", json=json.loads(body.group(1)), timeout=10)
    assert scored.status_code == 200, scored.text
    real = scored.json()
    missing = [key for key in real if f'"{key}":' not in answer]
    assert not missing, f"README's answer lacks {missing}"
    assert set(real["model"]) <= set(re.findall(r'"(\w+)":', re.search(r'"model": \{[^}]*\}', answer).group(0)))
    for key in ("lowering_factors", "what_if"):
        fields = real[key][0].keys() if real[key] else []
        assert all(f'"{field}":' in answer for field in fields), (key, list(fields))

"""A server gets to its first explained answer importing only what serving needs (issue 9's cold start):
no pandas, SQLAlchemy, SciPy's linear algebra, MLflow or LightGBM. Checked in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from features.factors import FACTORS

_START = """
import json, sys
from serving.api.main import create_app
from serving.api.settings import Settings
from serving.api.state import load_scorer

scorer = load_scorer(sys.argv[1])
create_app(Settings(model=sys.argv[1]), scorer=scorer)
answer = scorer.score([{"lead_id": "S-1", "industry": "software", "web_visits": 3}])[0]
heavy = ["pandas", "sqlalchemy", "scipy.linalg", "mlflow", "lightgbm", "sklearn", "alembic"]
print(json.dumps({"engine": scorer.engine, "factors": len(answer["factors"]),
                  "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_the_serving_path_imports_no_heavy_module_it_does_not_use(bundle_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _START, str(bundle_dir)],
        cwd=tmp_path,
        env={**os.environ, "LEADSCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"engine": "forest", "factors": len(FACTORS), "loaded": []}

"""`leadscore train --from-log`: the logged leads and their posted outcomes become the next training set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.loading import cast_to_schema
from features.synthetic import bundled_schema
from serving.api.main import create_app
from serving.api.settings import Settings
from serving.predlog.db import connect
from serving.predlog.export import log_to_leads
from training.cli import main


@pytest.fixture(scope="module")
def logged_history(scorer: Any, fresh: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every lead of the fresh history scored through the API, and the conversions posted as outcomes."""
    schema = bundled_schema()
    url = f"sqlite:///{tmp_path_factory.mktemp('log') / 'predictions.db'}"
    leads = fresh.leads
    columns = [schema.id_column, schema.created_at, *schema.feature_names, *schema.context, schema.owner]
    records = [
        {
            k: (
                None
                if pd.isna(v)
                else v.isoformat()
                if hasattr(v, "isoformat")
                else v.item()
                if hasattr(v, "item")
                else v
            )
            for k, v in row.items()
        }
        for row in leads[columns].astype(object).to_dict("records")
    ]
    auth = {"Authorization": "Bearer t"}
    with TestClient(create_app(Settings(database_url=url, write_token="t"), scorer=scorer)) as client:
        for start in range(0, len(records), 1000):
            assert client.post("/v1/score/batch", json={"leads": records[start : start + 1000]}).status_code == 200
        won = leads[leads["converted"] == 1]
        for lead_id, when in zip(won[schema.id_column], won[schema.converted_at], strict=True):
            body = {"lead_id": lead_id, "outcome": "converted", "occurred_at": when.isoformat()}
            assert client.post("/v1/outcomes", json=body, headers=auth).status_code == 201
        assert client.app.state.loop.log.wait_idle(20)
    return url


def test_the_log_gives_back_the_history_it_scored(logged_history: str, fresh: Any) -> None:
    schema = bundled_schema()
    exported = cast_to_schema(log_to_leads(connect(logged_history), schema), schema)
    original = fresh.leads.set_index("lead_id").loc[exported["lead_id"]]
    assert len(exported) == len(fresh.leads)
    assert exported["converted"].astype(int).tolist() == original["converted"].astype(int).tolist()
    assert exported["created_at"].tolist() == original["created_at"].tolist()
    assert exported["converted_at"].tolist() == original["converted_at"].tolist()
    for name in schema.feature_names:
        pd.testing.assert_series_equal(
            exported[name].reset_index(drop=True),
            original[name].reset_index(drop=True),
            check_names=False,
            check_dtype=False,
        )


def test_train_from_log(logged_history: str, mlflow_store: str, tmp_path: Path, capsys: Any) -> None:
    code = main(
        [
            "train",
            "--from-log",
            "--database-url",
            logged_history,
            "--schema",
            str(Path(__file__).resolve().parents[3] / "features" / "data" / "synthetic_crm.yaml"),
            "--models-dir",
            str(tmp_path / "models"),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "version 1" in out.out
    assert (tmp_path / "models" / "lead-conversion" / "1" / "bundle.json").is_file()


def test_an_empty_log_cannot_be_trained_on(sqlite_url: str, capsys: Any) -> None:
    assert (
        main(
            [
                "train",
                "--from-log",
                "--database-url",
                sqlite_url,
                "--schema",
                str(Path(__file__).resolve().parents[3] / "features" / "data" / "synthetic_crm.yaml"),
            ]
        )
        == 2
    )
    assert "has no scored leads with an id to train on" in capsys.readouterr().err

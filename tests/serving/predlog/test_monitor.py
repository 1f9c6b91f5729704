"""`leadscore monitor` and `leadscore kpis` read back what the API logged, on a real log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.synthetic import bundled_schema
from serving.api.main import create_app
from serving.api.settings import Settings
from serving.predlog.db import connect
from serving.predlog.monitor import drops, scored_leads, weekly
from training.cli import main


@pytest.fixture()
def logged(scorer: Any, fresh: Any, sqlite_url: str) -> str:
    """600 leads scored through the API (with source, campaign and owner), outcomes posted for 400."""
    schema = bundled_schema()
    leads = fresh.leads.iloc[:600]
    columns = [schema.id_column, *schema.feature_names, *schema.context, schema.owner]
    records = [
        {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in leads[columns].astype(object).to_dict("records")
    ]
    auth = {"Authorization": "Bearer t"}
    with TestClient(create_app(Settings(database_url=sqlite_url, write_token="t"), scorer=scorer)) as client:
        assert client.post("/v1/score/batch", json={"leads": records}).status_code == 200
        for lead_id, converted in zip(
            leads[schema.id_column][:400], fresh.truth["true_converted_eventually"][:400], strict=True
        ):
            body = {"lead_id": lead_id, "outcome": "converted" if converted else "lost"}
            assert client.post("/v1/outcomes", json=body, headers=auth).status_code == 201
        assert (
            client.post(
                "/v1/feedback",
                json={"lead_id": leads[schema.id_column].iloc[0], "factor": "timeline", "author": "ana.silva"},
                headers=auth,
            ).status_code
            == 201
        )
        assert client.app.state.loop.log.wait_idle(10)
    return sqlite_url


def test_the_weekly_table_scores_the_logged_leads_against_their_outcomes(logged: str) -> None:
    table = weekly(scored_leads(connect(logged)))
    assert table[["leads", "with_outcome"]].sum().tolist() == [600, 400]
    row = table.iloc[-1]
    assert row["auc"] > 0.7  # the model ranks these leads well; their truth is known
    assert drops(table) == []


def test_monitor_prints_the_table(logged: str, capsys: Any) -> None:
    assert main(["monitor", "--database-url", logged]) == 0
    out = capsys.readouterr().out
    assert "with_outcome" in out and "OK: no drop" in out


def test_kpis_from_the_log(logged: str, bundle_dir: Path, tmp_path: Path, capsys: Any) -> None:
    code = main(["kpis", "--database-url", logged, "--model", str(bundle_dir), "--out", str(tmp_path)])
    assert code == 0
    assert "600 leads from the prediction log" in (tmp_path / "kpis.html").read_text()
    sales = pd.read_csv(tmp_path / "kpis_sales.csv")
    assert sales["leads"].sum() == 400 and set(sales["owner"]) <= set(bundled_schema_owners())
    feedback = pd.read_csv(tmp_path / "kpis_feedback.csv").set_index("factor")
    assert feedback.loc["timeline", "sales_marked"] == 1


def test_an_empty_log_is_one_clear_line(sqlite_url: str, bundle_dir: Path, capsys: Any) -> None:
    assert main(["kpis", "--database-url", sqlite_url, "--model", str(bundle_dir)]) == 2
    assert "has no scores yet" in capsys.readouterr().err


def bundled_schema_owners() -> tuple[str, ...]:
    from features.synthetic import OWNERS

    return OWNERS

"""A served answer as the prediction log reads it, and the rows a log database holds (the log's tests)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from serving.predlog.db import connect, predictions


def answer(lead_id: str | None, *, lowering: bool = True, explore: bool | None = None) -> dict[str, Any]:
    """An answer with every field the log keeps; `explore` is left out unless given (as the API does
    without an exploration share)."""
    top = {"key": "contactability", "features": [{"reason": "No phone number — Ça compte"}]}
    result: dict[str, Any] = {
        "lead_id": lead_id,
        "model": {"name": "lead-conversion", "version": 7},
        "probability": 0.1234567890123,
        "score": 12,
        "grade": "C",
        "log_odds": {"raw_score": -1.9601},
        "factors": [{"key": "icp_fit", "impact": 0.1 + 0.2}, {"key": "contactability", "impact": -1e-17}],
        "lowering_factors": [top] if lowering else [],
    }
    if explore is not None:
        result["explore"] = explore
    return result


def stored(url: str, *, without: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every row of the log at `url`, in the order written, less the columns named in `without`."""
    left_out = set(without)
    engine = connect(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(predictions).order_by(predictions.c.id)).mappings().all()
            return [{k: v for k, v in row.items() if k not in left_out} for row in rows]
    finally:
        engine.dispose()

"""Outcomes, sales feedback and a lead's history: plain functions over an engine, committed on return.

The routes call these in a worker thread; notebooks and tests call them directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from serving.predlog.db import feedback, outcomes, predictions

TREND_POINTS = 2.0
"""A lead's trend is up or down when its latest score moved at least this many points from the one before."""


@overload
def utc(value: datetime) -> datetime: ...


@overload
def utc(value: None) -> None: ...


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC; naive times (SQLite hands them back naive) are taken to be UTC already."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_outcome(
    engine: Engine, *, lead_id: str, converted: bool, occurred_at: datetime | None = None, owner: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Store a lead's outcome; returns 'created', 'unchanged' (the same post again) or 'updated', and the row.

    One row per lead: a repeat never duplicates it, and a correction (lost, later won) replaces it.
    What a repeat leaves out (`occurred_at`, `owner`) stays as stored, so a retried post without a
    time does not move the outcome to the retry's time.
    """
    now = datetime.now(UTC)
    values = {"converted": converted, "occurred_at": utc(occurred_at) or now, "owner": owner}
    try:
        with engine.begin() as connection:
            connection.execute(insert(outcomes).values(lead_id=lead_id, recorded_at=now, **values))
        return "created", values
    except IntegrityError:
        pass  # already recorded (perhaps by a concurrent repeat): compare and update below
    with engine.begin() as connection:
        row = connection.execute(select(outcomes).where(outcomes.c.lead_id == lead_id)).mappings().one()
        stored = {"converted": row["converted"], "occurred_at": utc(row["occurred_at"]), "owner": row["owner"]}
        wanted = {
            "converted": converted,
            "occurred_at": utc(occurred_at) or stored["occurred_at"],
            "owner": owner if owner is not None else stored["owner"],
        }
        if wanted == stored:
            return "unchanged", stored
        connection.execute(update(outcomes).where(outcomes.c.lead_id == lead_id).values(recorded_at=now, **wanted))
    return "updated", wanted


def add_feedback(
    engine: Engine, *, lead_id: str, factor: str, author: str, comment: str = ""
) -> tuple[bool, dict[str, Any]]:
    """Store a seller's verdict on a lead, in the factor vocabulary; returns (created, the stored row).

    The same verdict from the same person again (a retried post) is not stored twice."""
    key = {"lead_id": lead_id, "factor": factor, "author": author, "comment": comment}
    with engine.begin() as connection:
        same = (
            connection.execute(
                select(feedback).where(*[feedback.c[k] == v for k, v in key.items()]).order_by(feedback.c.id)
            )
            .mappings()
            .first()
        )
        if same is not None:
            return False, {**dict(same), "created_at": utc(same["created_at"])}
        row = {**key, "created_at": datetime.now(UTC)}
        key_row = connection.execute(insert(feedback).values(**row)).inserted_primary_key
        assert key_row is not None  # a single-row insert always has one
        new_id = key_row[0]
    return True, {"id": int(new_id), **row}


def lead_history(engine: Engine, lead_id: str) -> dict[str, Any] | None:
    """The lead's scores over time (oldest first) with its trend, outcome and feedback; None if unknown."""
    with engine.connect() as connection:
        scores = (
            connection.execute(
                select(predictions)
                .where(predictions.c.lead_id == lead_id)
                .order_by(predictions.c.scored_at, predictions.c.id)
            )
            .mappings()
            .all()
        )
        outcome = connection.execute(select(outcomes).where(outcomes.c.lead_id == lead_id)).mappings().first()
        notes = (
            connection.execute(
                select(feedback).where(feedback.c.lead_id == lead_id).order_by(feedback.c.created_at, feedback.c.id)
            )
            .mappings()
            .all()
        )
    if not scores and outcome is None and not notes:
        return None
    return {
        "lead_id": lead_id,
        "scores": [_score_entry(row) for row in scores],
        "trend": trend([row["score"] for row in scores]),
        "outcome": None
        if outcome is None
        else {
            "outcome": "converted" if outcome["converted"] else "lost",
            "occurred_at": utc(outcome["occurred_at"]).isoformat(),
            "owner": outcome["owner"],
        },
        "feedback": [
            {
                "id": row["id"],
                "factor": row["factor"],
                "comment": row["comment"],
                "author": row["author"],
                "created_at": utc(row["created_at"]).isoformat(),
            }
            for row in notes
        ],
    }


def trend(scores: list[int]) -> str | None:
    """'up', 'down' or 'flat' from the last two scores (like a CRM's trend arrow); None with fewer."""
    if len(scores) < 2:
        return None
    change = scores[-1] - scores[-2]
    return "up" if change >= TREND_POINTS else "down" if change <= -TREND_POINTS else "flat"


def _score_entry(row: Any) -> dict[str, Any]:
    return {
        "scored_at": utc(row["scored_at"]).isoformat(),
        "probability": row["probability"],
        "score": row["score"],
        "grade": row["grade"],
        "model": {"name": row["model_name"], "version": row["model_version"]},
        "top_lowering_factor": row["top_factor"],
        "top_lowering_reason": row["top_reason"],
        "explore": row["explore"],
    }

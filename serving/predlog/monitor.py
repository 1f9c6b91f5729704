"""Live monitoring from the log and the outcomes: AUC, calibration and score mix by week.

Each lead counts once, with the first score it was given (the one that routed it), and only once
its outcome has been posted. `leadscore monitor` prints the table and flags a drop; `/metrics`
exposes the latest week's figures (refreshed in a background thread by `LiveGauges`).

    table = weekly(scored_leads(connect()))
    for line in drops(table): print(line)
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from serving.predlog.engine import EngineSource, engine_source

if TYPE_CHECKING:  # pandas and SQLAlchemy are imported where used: a server imports them when it first reads the log
    import pandas as pd
    from sqlalchemy import Engine

_logger = logging.getLogger(__name__)
FIRST_REFRESH_S = 10.0
"""The live gauges are first computed this long after the server starts (or at the interval, if shorter),
so the first requests do not share the interpreter with SQLAlchemy's import and the first read."""
MIN_OUTCOMES = 50
"""A week needs this many leads with outcomes (both kinds present) before its AUC and calibration count."""
AUC_DROP = 0.05
"""The AUC dropped when the latest week is this far below the median of the weeks before it."""
CALIBRATION_SE = 3.0
"""Calibration is off when actual and expected conversions differ by more than this many standard errors."""


def scored_leads(engine: Engine) -> pd.DataFrame:
    """One row per logged lead: its first score, grade, factor impacts, flags and outcome (NaN if none)."""
    import pandas as pd
    from sqlalchemy import select

    from serving.predlog.db import outcomes, predictions

    p, o = predictions, outcomes
    query = (
        select(
            p.c.id,
            p.c.lead_id,
            p.c.scored_at,
            p.c.probability,
            p.c.score,
            p.c.grade,
            p.c.factors,
            p.c.top_factor,
            p.c.explore,
            p.c.lead,
            p.c.model_version,
            o.c.converted,
            o.c.occurred_at,
            o.c.owner,
        )
        .select_from(p.outerjoin(o, p.c.lead_id == o.c.lead_id))
        .order_by(p.c.scored_at, p.c.id)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).mappings().all())
    if frame.empty:
        return pd.DataFrame(
            columns=[
                "lead_id",
                "scored_at",
                "probability",
                "score",
                "grade",
                "factors",
                "top_factor",
                "explore",
                "lead",
                "model_version",
                "converted",
                "occurred_at",
                "owner",
            ]
        )
    with_id = frame[frame["lead_id"].notna()].drop_duplicates("lead_id", keep="first")
    frame = pd.concat([with_id, frame[frame["lead_id"].isna()]]).sort_values(["scored_at", "id"])
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    frame["converted"] = frame["converted"].map({True: 1.0, False: 0.0})  # 1 == True and 0 == False as keys
    return frame.drop(columns="id").reset_index(drop=True)


def weekly(frame: pd.DataFrame, grades: tuple[str, ...] = ("A", "B", "C", "D")) -> pd.DataFrame:
    """Per week scored: leads, mean probability, grade shares, and on leads with outcomes: expected,
    actual, their gap in standard errors, and AUC."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(
            columns=[
                "week",
                "leads",
                "mean_probability",
                "with_outcome",
                "expected",
                "actual",
                "gap_se",
                "auc",
                *[f"grade_{g}" for g in grades],
            ]
        )
    week = frame["scored_at"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time.dt.date
    rows = []
    for start, group in frame.groupby(week, sort=True):
        known = group[group["converted"].notna()]
        p, y = known["probability"].to_numpy(float), known["converted"].to_numpy(float)
        sd = float(np.sqrt((p * (1 - p)).sum()))
        rows.append(
            {
                "week": str(start),
                "leads": len(group),
                "mean_probability": float(group["probability"].mean()),
                "with_outcome": len(known),
                "expected": float(p.sum()),
                "actual": float(y.sum()),
                "gap_se": float((y.sum() - p.sum()) / sd) if sd > 0 else np.nan,
                "auc": _auc(y, p),
                **{f"grade_{g}": float((group["grade"] == g).mean()) for g in grades},
            }
        )
    return pd.DataFrame(rows)


def drops(table: pd.DataFrame) -> list[str]:
    """Plain sentences for what went wrong in the latest week with enough outcomes; empty when all is well."""
    usable = table[(table["with_outcome"] >= MIN_OUTCOMES) & table["auc"].notna()]
    if usable.empty:
        return []
    latest, before = usable.iloc[-1], usable.iloc[:-1]
    found = []
    if len(before) and latest["auc"] < before["auc"].median() - AUC_DROP:
        found.append(
            f"AUC dropped in the week of {latest['week']}: {latest['auc']:.3f} against a median of "
            f"{before['auc'].median():.3f} before"
        )
    if abs(latest["gap_se"]) > CALIBRATION_SE:
        side = "more" if latest["gap_se"] > 0 else "fewer"
        found.append(
            f"calibration is off in the week of {latest['week']}: {latest['actual']:.0f} conversions, "
            f"{side} than the {latest['expected']:.1f} expected ({latest['gap_se']:+.1f} standard errors)"
        )
    return found


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < MIN_OUTCOMES or y.min() == y.max():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


class LiveGauges:
    """The latest usable week's AUC and calibration as Prometheus gauges, recomputed every `interval_s`."""

    def __init__(
        self, engine: Engine | EngineSource, *, registry: CollectorRegistry, interval_s: float = 300.0
    ) -> None:
        self._engine = engine_source(engine)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        names = {
            "auc": "AUC on the latest week with enough outcomes",
            "expected_conversions": "expected conversions (sum of probabilities) that week",
            "actual_conversions": "actual conversions that week",
            "leads_with_outcome": "leads with a posted outcome that week",
        }
        self.gauges = {key: Gauge(f"leadscore_live_{key}", text, registry=registry) for key, text in names.items()}
        self.drop = Gauge("leadscore_live_drop", "1 when `leadscore monitor` would flag a drop", registry=registry)
        for gauge in (*self.gauges.values(), self.drop):
            gauge.set(float("nan"))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def engine(self) -> Engine:
        return self._engine()

    def refresh(self) -> None:
        from sqlalchemy import func, inspect, select

        from serving.predlog.db import outcomes, predictions

        if not inspect(self.engine).has_table(predictions.name):
            return  # nothing logged yet: the writer creates the tables with its first batch
        with self.engine.connect() as connection:
            known = connection.execute(select(func.count()).select_from(outcomes)).scalar_one()
        if known < MIN_OUTCOMES:
            return  # no week can have enough outcomes yet (each lead has one): no tables to build
        table = weekly(scored_leads(self.engine))
        usable = table[(table["with_outcome"] >= MIN_OUTCOMES) & table["auc"].notna()]
        if usable.empty:
            return
        latest = usable.iloc[-1]
        self.gauges["auc"].set(latest["auc"])
        self.gauges["expected_conversions"].set(latest["expected"])
        self.gauges["actual_conversions"].set(latest["actual"])
        self.gauges["leads_with_outcome"].set(latest["with_outcome"])
        self.drop.set(1.0 if drops(table) else 0.0)

    def _run(self) -> None:
        self._stop.wait(min(self.interval_s, FIRST_REFRESH_S))
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # the log is optional for serving: note it and try again later
                _logger.warning("live monitoring: could not read the prediction log: %s", str(exc).splitlines()[0])
            self._stop.wait(self.interval_s)


def monitor_command(*, database_url: str | None = None, weeks: int = 12, fail_on_drop: bool = False) -> int:
    """`leadscore monitor`: the weekly table; exit 1 with --fail-on-drop when a drop is flagged."""
    from features.errors import DataError
    from serving.predlog.db import connect, describe, migrate

    engine = connect(database_url)
    try:
        migrate(engine)
        table = weekly(scored_leads(engine))
    except Exception as exc:
        raise DataError(
            f"cannot read the prediction log at {describe(database_url)}: {str(exc).splitlines()[0]}"
        ) from None
    if table.empty:
        print(f"the prediction log at {describe(database_url)} has no scores yet")
        return 0
    shown = table.tail(int(weeks))
    print(_format(shown))
    found = drops(table)
    for line in found:
        print(f"DROP: {line}")
    if not found:
        print(f"OK: no drop (weeks need {MIN_OUTCOMES} leads with outcomes to count)")
    return 1 if found and fail_on_drop else 0


def _format(table: pd.DataFrame) -> str:
    import pandas as pd

    out = table.copy()
    for col in ("mean_probability", *[c for c in out.columns if c.startswith("grade_")]):
        out[col] = out[col].map(lambda v: f"{v:.1%}")
    for col in ("expected", "gap_se", "auc"):
        digits = 1 if col == "expected" else 2
        out[col] = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in out[col]]
    out["actual"] = out["actual"].map(lambda v: f"{v:.0f}")
    return out.to_string(index=False)

"""The prediction log as a lead table the training pipeline reads: `leadscore train --from-log`.

Each logged lead becomes one row: its fields as last received, created when its `created_at` field
says (else when it was first scored), and its posted outcome as the target (converted, with the
conversion time; lost, or nothing posted yet, is not converted). The pipeline's maturity rules
are unchanged: a lead counts as not converted only once its outcome window has closed.

    frame = log_to_leads(connect(), schema)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from features.errors import DataError
from features.schema import LeadSchema
from serving.predlog.db import connect, describe, migrate, outcomes, predictions


def log_to_leads(engine: Engine, schema: LeadSchema) -> pd.DataFrame:
    """One row per logged lead id, in the schema's columns (leads logged without an id are skipped)."""
    p, o = predictions, outcomes
    query = (
        select(p.c.lead_id, p.c.scored_at, p.c.lead, o.c.converted, o.c.occurred_at, o.c.owner)
        .select_from(p.outerjoin(o, p.c.lead_id == o.c.lead_id))
        .where(p.c.lead_id.is_not(None))
        .order_by(p.c.scored_at, p.c.id)
    )
    with engine.connect() as connection:
        rows = pd.DataFrame(connection.execute(query).mappings().all())
    if rows.empty:
        return pd.DataFrame(columns=_columns(schema))
    first_seen = rows.groupby("lead_id", sort=False)["scored_at"].first()
    latest = rows.drop_duplicates("lead_id", keep="last").set_index("lead_id")
    fields = pd.DataFrame([lead if isinstance(lead, dict) else {} for lead in latest["lead"]], index=latest.index)
    out = fields.reindex(columns=[c for c in _columns(schema) if c in fields.columns or c in schema.feature_names])
    out[schema.id_column] = latest.index.astype(str)
    if schema.created_at:
        given = (
            pd.to_datetime(fields.get(schema.created_at), utc=True, errors="coerce", format="ISO8601")
            if schema.created_at in fields.columns
            else pd.Series(pd.NaT, index=latest.index)
        )
        seen = pd.to_datetime(first_seen.reindex(latest.index), utc=True)
        out[schema.created_at] = given.fillna(seen).dt.tz_convert(None).to_numpy()
    converted = latest["converted"].fillna(False).astype(bool)
    out[schema.target_column] = [schema.positive_values[0] if c else schema.negative_values[0] for c in converted]
    if schema.converted_at:
        when = pd.to_datetime(latest["occurred_at"], utc=True).dt.tz_convert(None)
        out[schema.converted_at] = when.where(converted.to_numpy()).to_numpy()
    if schema.owner:
        posted = latest["owner"]
        out[schema.owner] = (
            posted.where(posted.notna(), fields.get(schema.owner)).to_numpy()
            if schema.owner in fields.columns
            else posted.to_numpy()
        )
    return out.reset_index(drop=True)[[c for c in _columns(schema) if c in out.columns]]


def _columns(schema: LeadSchema) -> list[str]:
    return [*dict.fromkeys([*schema.role_columns, *schema.context, *schema.feature_names])]


def write_log_export(url: str | None, schema: LeadSchema, folder: Path) -> Path:
    """The log as `folder/leads.parquet` with its schema beside it, ready for `training.pipeline.train`."""
    from features.loading import write_table

    engine = connect(url)
    try:
        migrate(engine)
        frame = log_to_leads(engine, schema)
    except Exception as exc:
        raise DataError(f"cannot read the prediction log at {describe(url)}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    if frame.empty:
        raise DataError(f"the prediction log at {describe(url)} has no scored leads with an id to train on")
    path = folder / "leads.parquet"
    write_table(frame, path)
    schema.dump(folder / "leads.schema.yaml")
    return path


def train_from_log(
    train: Callable[..., int],
    *,
    database_url: str | None = None,
    schema: str | None = None,
    data: str | None = None,
    **options: Any,
) -> int:
    """`leadscore train --from-log`: export the log to a temporary table, then train on it as usual
    (`data` is ignored: the log is the data)."""
    lead_schema = _schema(schema)
    with tempfile.TemporaryDirectory(prefix="leadscore-from-log-") as folder:
        exported = write_log_export(database_url, lead_schema, Path(folder))
        return train(data=str(exported), schema=str(Path(folder) / "leads.schema.yaml"), **options)


def _schema(path: str | None) -> LeadSchema:
    if path:
        from features.schema import load_schema

        return load_schema(path)
    from serving.model.registry import load_bundle

    return load_bundle(None).schema  # the champion's: the definition of a lead the logged scores used

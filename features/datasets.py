"""Where a lead history and its schema are, so every command and notebook resolves them the same way.

The schema of `data/leads.parquet` is `data/leads.schema.yaml` (what `leadscore generate` writes);
without one beside the data, the bundled synthetic CRM schema applies.

    >>> frame, schema = load_history_with_schema()    # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from features.loading import read_leads
from features.schema import LeadSchema, load_schema
from features.synthetic import bundled_schema_path, schema_path_for

DEFAULT_DATA = "data/leads.parquet"
DATA_ENV = "LEADSCORE_DATA"


def default_data_path() -> Path:
    """`LEADSCORE_DATA` when set (notebooks and tests point it elsewhere), else data/leads.parquet."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)


def schema_path(data: str | Path | None = None, explicit: str | Path | None = None) -> Path:
    """The schema file a data file is read with: `explicit`, else `<stem>.schema.yaml` beside the data,
    else the bundled synthetic one."""
    if explicit:
        return Path(explicit)
    beside = schema_path_for(Path(data if data is not None else default_data_path()))
    return beside if beside.is_file() else bundled_schema_path()


def schema_for(data: str | Path | None = None, schema: str | Path | LeadSchema | None = None) -> LeadSchema:
    """The schema given, else the one written beside the data, else the bundled synthetic one."""
    if isinstance(schema, LeadSchema):
        return schema
    return load_schema(schema_path(data, schema))


def load_history_with_schema(
    data: str | Path | None = None, schema: str | Path | LeadSchema | None = None
) -> tuple[pd.DataFrame, LeadSchema]:
    """Read a lead history with its schema's dtypes; returns both, since callers need the schema too."""
    path = Path(data) if data is not None else default_data_path()
    resolved = schema_for(path, schema)
    return read_leads(path, resolved), resolved

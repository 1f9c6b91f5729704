"""Skip a training run that would repeat the champion's: same data file, same schema, same parameters.

Re-running `make demo` (or a scheduled job on an export that did not change) would otherwise register
one identical version after another, each promoted on a tie. Every registered version carries the
fingerprint of what it was trained from (the model version tag `inputs_fingerprint`); `leadscore train`
compares it with the champion's before any work, and `--force` trains anyway.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.schema import LeadSchema
from training import tracking

TAG = "inputs_fingerprint"


def inputs_fingerprint(
    *,
    data_sha: str,
    schema: LeadSchema,
    as_of: Any = None,
    export_date: Any = None,
    half_life_days: float | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> str:
    """One digest of what decides the model: the data file's bytes, the schema and the training parameters."""
    inputs = {
        "data_sha256": data_sha,
        "schema": schema.fingerprint(),
        "as_of": _text(as_of),
        "export_date": _text(export_date),
        "half_life_days": half_life_days,
        "params": params or {},
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Unchanged:
    """The champion already trained from these inputs."""

    version: str
    fingerprint: str
    tracking_uri: str

    def summary(self, data: str | Path) -> str:
        return (
            f"unchanged: champion version {self.version} was trained on the same data ({Path(data).name}), "
            f"schema and parameters (inputs {self.fingerprint[:12]}); nothing trained or registered "
            "(use --force to train anyway)"
        )


def unchanged_champion(fingerprint: str, tracking_uri: str) -> Unchanged | None:
    """The champion, when its recorded inputs equal `fingerprint`; None otherwise (or without a champion)."""
    with tracking.use_tracking(tracking_uri) as client:
        version = tracking.alias_version(client, tracking.CHAMPION)
        if version is None:
            return None
        tags = client.get_model_version(tracking.MODEL_NAME, version).tags or {}
    return Unchanged(version, fingerprint, tracking_uri) if tags.get(TAG) == fingerprint else None


def _text(value: Any) -> str | None:
    """Dates as ISO text, so '2026-07-01' and Timestamp('2026-07-01') are the same input."""
    if value is None:
        return None
    import pandas as pd

    try:
        return pd.Timestamp(value).isoformat()
    except (ValueError, TypeError):
        return str(value)

"""The target as 0/1: one reading of "which values mean converted" for loading, validation, drafting
and splitting. Each distinct value is normalised once (not once per row), so a million rows cost the
same as a handful of spellings.

    >>> matches(pd.Series(["Yes", "no", None]), ["1"]).tolist()
    [True, False, False]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from features.schema import LeadSchema, normalise_label


def normalised_labels(target: pd.Series) -> pd.Series:
    """Each cell's normalised label (see `normalise_label`); missing cells stay None."""
    codes, uniques = pd.factorize(target, use_na_sentinel=True)
    text = np.array([normalise_label(u) for u in uniques] + [None], dtype=object)
    return pd.Series(text[codes], index=target.index)


def matches(target: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """True where the cell is one of `values` (any spelling: 1, 1.0, "1", True); missing is False."""
    wanted = {normalise_label(v) for v in values}
    codes, uniques = pd.factorize(target, use_na_sentinel=True)
    flags = np.array([normalise_label(u) in wanted for u in uniques] + [False], dtype=bool)
    return flags[codes]


def labels(frame: pd.DataFrame, schema: LeadSchema) -> np.ndarray:
    """The target as 0/1, using the schema's list of values that mean converted."""
    return matches(frame[schema.target_column], schema.positive_values).astype(np.int8)


def known(frame: pd.DataFrame, schema: LeadSchema) -> np.ndarray:
    """True where the target holds one of the schema's positive or negative values."""
    return matches(frame[schema.target_column], (*schema.positive_values, *schema.negative_values))

"""The grade rule, the shared qualification definition: a lead gets the first grade (A, B, C, D) whose
floor its calibrated probability reaches. Training's grade table, the API, the pyfunc wrapper and
reports all call this one function.

    >>> assign_grades([0.4, 0.1, 0.0], {"A": 0.3, "B": 0.15, "C": 0.06, "D": 0.0}).tolist()
    ['A', 'C', 'D']
    >>> assign_grades(0.2, {"A": 0.3, "B": 0.15, "C": 0.06, "D": 0.0})
    'B'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import overload

import numpy as np
import numpy.typing as npt


@overload
def assign_grades(probability: float, floors: Mapping[str, float]) -> str: ...
@overload
def assign_grades(probability: npt.ArrayLike, floors: Mapping[str, float]) -> np.ndarray: ...
def assign_grades(probability: float | npt.ArrayLike, floors: Mapping[str, float]) -> str | np.ndarray:
    """Each probability's grade: a name for one number, an object array for an array; NaN gets the last grade.

    One number is graded in plain Python (a few hundred nanoseconds, for row-by-row callers)."""
    if isinstance(probability, float | int):
        if not math.isnan(probability):
            for name, floor in floors.items():
                if probability >= floor:
                    return name
        return list(floors)[-1]
    names = list(floors)
    p = np.asarray(probability, dtype=np.float64)
    reached = p[..., None] >= np.array(list(floors.values()))
    first = reached.argmax(axis=-1)
    first[~reached.any(axis=-1)] = len(names) - 1
    return np.array(names, dtype=object)[first]

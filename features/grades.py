"""The grade rule, the shared qualification definition: a lead gets the first grade (A, B, C, D) whose
floor its calibrated probability reaches. Training's grade table, the API, the pyfunc wrapper and
reports all call this one function.

    >>> assign_grades([0.4, 0.1, 0.0], {"A": 0.3, "B": 0.15, "C": 0.06, "D": 0.0}).tolist()
    ['A', 'C', 'D']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt


def assign_grades(probability: npt.ArrayLike, floors: Mapping[str, float]) -> np.ndarray:
    """Each probability's grade (an object array of grade names); NaN gets the last grade."""
    names = np.asarray(list(floors), dtype=object)
    p = np.asarray(probability, dtype=np.float64)
    reached = p[..., None] >= np.fromiter(floors.values(), dtype=np.float64)
    first = np.where(reached.any(axis=-1), reached.argmax(axis=-1), len(names) - 1)
    return names[first]

"""The calibration map: the model's raw score (log-odds) to a probability people can read as one.

Fitting happens in training; applying happens everywhere, so the map lives here as plain numbers
(isotonic knots or Platt coefficients) that travel in the bundle's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHODS = ("isotonic", "platt", "identity")


@dataclass(frozen=True)
class Calibrator:
    """`method` "isotonic": piecewise-linear through (x, y) knots; "platt": sigmoid(a * raw + b)."""

    method: str
    x: tuple[float, ...] = field(default=())
    y: tuple[float, ...] = field(default=())
    a: float = 1.0
    b: float = 0.0

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            p = np.interp(raw, self.x, self.y)
        elif self.method == "platt":
            p = 1.0 / (1.0 + np.exp(-(self.a * raw + self.b)))
        else:
            p = 1.0 / (1.0 + np.exp(-raw))
        return np.clip(p, 1e-6, 1 - 1e-6)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": "identity"}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Calibrator:
        method = state.get("method")
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        if method == "isotonic":
            x, y = tuple(map(float, state["x"])), tuple(map(float, state["y"]))
            if len(x) != len(y) or len(x) < 2:
                raise ValueError("isotonic calibration needs at least two knots")
            return cls("isotonic", x=x, y=y)
        if method == "platt":
            return cls("platt", a=float(state["a"]), b=float(state["b"]))
        return cls("identity")

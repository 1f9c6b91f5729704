"""Champion/challenger: when a newly trained model may replace the one serving. Pure.

The primary metric is log loss on the challenger's test quarter, with the champion scored on the
very same leads: it rewards both ranking and calibration, which is what a probability promises.
A challenger may be slightly worse (within `tolerance`) and still win, so the newest data wins ties.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from features.errors import TrainingError

MODES = ("auto", "never", "force")
TOLERANCE_ENV = "LEADSCORE_PROMOTE_TOLERANCE"
DEFAULT_TOLERANCE = 0.002


@dataclass(frozen=True)
class PromotionSettings:
    """How much worse (in log loss) a challenger may be and still be promoted under `auto`."""

    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PromotionSettings:
        """Read `LEADSCORE_PROMOTE_TOLERANCE` once; a bad value is one clear error, not a silent default."""
        environ = os.environ if environ is None else environ
        text = environ.get(TOLERANCE_ENV)
        if text is None or not text.strip():
            return cls()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise TrainingError(
                f"{TOLERANCE_ENV} must be a non-negative number (log loss), got {text!r}", field=TOLERANCE_ENV
            )
        return cls(tolerance=value)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(
    mode: str,
    challenger_log_loss: float,
    champion_log_loss: float | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    champion_note: str = "",
    pr_auc: tuple[float, float] | None = None,
) -> Decision:
    """Promote the challenger to champion? `champion_log_loss` is None when there is no champion
    (or it could not be scored; `champion_note` says why). `pr_auc` (challenger, champion) is
    reported in the reason, never decisive: ranking the few best leads matters, but log loss
    already covers ranking and calibration together."""
    if mode not in MODES:
        raise TrainingError(f"promote must be one of {', '.join(MODES)}, got {mode!r}", field="promote")
    if mode == "never":
        return Decision(False, "promotion disabled (--promote never): registered as challenger only")
    if mode == "force":
        return Decision(True, "promotion forced (--promote force)")
    if champion_log_loss is None:
        if champion_note:
            return Decision(False, f"champion kept: {champion_note}; use --promote force to replace it")
        return Decision(True, "first model: no champion yet")
    limit = champion_log_loss + tolerance
    pr = f"; PR AUC {pr_auc[0]:.4f} vs champion {pr_auc[1]:.4f}" if pr_auc else ""
    if challenger_log_loss <= limit:
        return Decision(
            True,
            f"log loss {challenger_log_loss:.4f} <= champion {champion_log_loss:.4f} + tolerance {tolerance:g}{pr}",
        )
    return Decision(
        False,
        f"log loss {challenger_log_loss:.4f} > champion {champion_log_loss:.4f} "
        f"+ tolerance {tolerance:g}: champion kept{pr}",
    )

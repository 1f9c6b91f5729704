"""How a setting moves away from its default: only when the validation leads clearly ask for it.

Every choice training makes on the newest slice (LightGBM's rounds, the blend weight, quarter
levels) is judged on one window of leads. Under drift that window can be unlike both the past
and the future: on a bank-marketing export whose newest quarter a model of the older leads ranks
*worse than chance* (AUC 0.43), the lowest validation loss asked for 10 trees and C = 0.01, and the
served model ranked the next year at 0.58 where the defaults reach 0.70+. So each setting has a prior
(a default that is rarely far from best) and moves to the best candidate only when that candidate's
per-lead loss is lower by more than EVIDENCE_SE standard errors of the paired difference (Breiman
et al.'s one-standard-error rule, with the default where theirs has the simplest model).

Candidates are judged after a two-parameter Platt map fitted on the same leads, so a setting is not
chosen for a miscalibration the calibration step fixes anyway (a drifting base rate, a scale).

The paired standard error measures noise among the window's leads, not how unlike the future the
window itself is. The logistic model's C has no default worth defending but a natural order of
simplicity: it takes the most regularised strength within one standard error of the best
(`simplest_within_se`), over the rolling-origin slices pooled.

When a model of the older leads cannot rank the window (ROC AUC below DRIFT_AUC),
the window is no evidence at all and every setting keeps its prior (`trusted_window`): on the bank
exports the 2-SE rule still let such a window pick C = 0.03 or the logistic model alone, and the
next period's AUC swung between 0.68 and 0.74 with which window happened to clear it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np
from sklearn.linear_model import LogisticRegression

from training.threads import one_blas_thread

EVIDENCE_SE = 2.0
SIMPLEST_SE = 1.0  # simplest_within_se: how far above the best a simpler candidate's loss may be
DRIFT_AUC = 0.6  # a window that a model of the older leads ranks below this says nothing about settings

K = TypeVar("K", bound=Hashable)


def platt_losses(raw: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-lead log loss after the best map a * raw + b, fitted on the same leads."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64)
    if np.ptp(raw) == 0 or y.min() == y.max():
        rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
        z = np.full(len(y), math.log(rate / (1 - rate)))
    else:
        with one_blas_thread():
            z = LogisticRegression(C=1e6).fit(raw, y).decision_function(raw)
    return np.logaddexp(0.0, z) - y * z


def best_with_evidence(per_lead: Mapping[K, np.ndarray], prior: K) -> K:
    """The candidate with the lowest mean loss if it beats `prior` clearly; otherwise `prior`.

    Ties on the mean go to the first candidate in `per_lead`'s order, so callers order candidates
    from the one they prefer on equal evidence.
    """
    best = min(per_lead, key=lambda k: float(per_lead[k].mean()))
    if prior not in per_lead or best == prior:
        return best
    gain = per_lead[prior] - per_lead[best]
    se = gain.std(ddof=1) / math.sqrt(len(gain)) if len(gain) > 1 else math.inf
    return best if gain.mean() > EVIDENCE_SE * se else prior


def simplest_within_se(per_lead: Mapping[K, np.ndarray]) -> K:
    """The first candidate in `per_lead`'s order (callers order them simplest first) whose per-lead loss
    is within SIMPLEST_SE standard errors of the paired difference above the lowest mean loss.

    The one-standard-error rule as cross-validation uses it (glmnet's lambda.1se): for a strength of
    regularisation, where the slices cannot tell the candidates apart, the more regularised one, whose
    coefficients the noise in the training leads moved least. `best_with_evidence` instead keeps a
    default; this is for a setting with a natural order of simplicity and no default to defend.
    """
    best = min(per_lead, key=lambda k: float(per_lead[k].mean()))
    for k, losses in per_lead.items():
        gap = losses - per_lead[best]
        se = gap.std(ddof=1) / math.sqrt(len(gap)) if len(gap) > 1 else math.inf
        if gap.mean() <= SIMPLEST_SE * se:
            return k
    return best


def trusted_window(prior_score: np.ndarray, y: np.ndarray) -> bool:
    """Whether the window can judge settings: the prior model ranks it at ROC AUC >= DRIFT_AUC."""
    return trusted_auc(window_auc(prior_score, y))


def trusted_auc(auc: float) -> bool:
    """`trusted_window` from the prior model's ROC AUC on the window (NaN: one class, no evidence)."""
    return bool(auc >= DRIFT_AUC)


def window_auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of `score` on the window; NaN when the window holds one class."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, score)) if len(y) and y.min() != y.max() else math.nan

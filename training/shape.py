"""Trees shaped for explanation: fewer, smaller trees when the newest leads cannot tell them apart.

Exact TreeSHAP costs, per explained lead, about the sum over every leaf of the distinct features on
its path (the *leaf-path cost*); predicting costs one path per tree. Bigger steps (learning rate 0.1
instead of 0.05: half the trees) and smaller trees (15 leaves instead of 31: shorter paths) cut that
sum several-fold. On some exports the smaller model ranks and fits as well as the default one, on
others it does not, so training fits both on the same leads and keeps the shaped one only when its
ROC AUC and Platt log loss on the valid slice are each within SHAPE_TOLERANCE of the default's and
its leaf-path cost is at most 1 / MIN_COST_RATIO of the default's.
A slice that cannot judge settings (`training.evidence.trusted_window`) keeps the default shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from training.evidence import platt_losses
from training.model import LARGE_DATA_ROWS

if TYPE_CHECKING:
    import lightgbm as lgb

EXPLAIN_SHAPE: dict[str, Any] = {"learning_rate": 0.1, "num_leaves": 15}
SHAPE_TOLERANCE = 0.002  # ROC AUC and log loss on the valid slice: what the shaped trees may give up
MIN_COST_RATIO = 1.25  # and they must cost clearly less to explain (early stopping can leave the default small)


@dataclass(frozen=True)
class TreeFit:
    """One LightGBM fit as the chooser judged it: its settings, rounds and log-odds of the valid slice."""

    params: dict[str, Any]
    booster: lgb.Booster
    rounds: int
    valid_raw: np.ndarray


@dataclass(frozen=True)
class ShapeChoice:
    """Both fits' valid-slice figures and explanation cost, and which one training kept."""

    shaped: bool
    auc: tuple[float, float]  # (default, shaped)
    log_loss: tuple[float, float]
    leaf_path_cost: tuple[int, int]
    trees: tuple[int, int]
    n_valid: int = 0  # leads in the slice these figures come from
    # under rolling origin, the shaped minus the default figures (ROC AUC, log loss) over this slice and the
    # earlier folds' slices, weighted by their leads: what the decision was taken on (None: this slice alone)
    pooled: tuple[float, float] | None = None
    slices: int = 1

    @property
    def cost_ratio(self) -> float:
        return self.leaf_path_cost[0] / max(self.leaf_path_cost[1], 1)

    def describe(self) -> str:
        """One line for the training summary and the model card."""
        kept = "shaped for explanation" if self.shaped else "default shape"
        setting = ", ".join(f"{k} {v}" for k, v in EXPLAIN_SHAPE.items())
        return (
            f"{kept} (tried {setting}: valid ROC AUC {self.auc[1]:.4f} vs {self.auc[0]:.4f}, log loss "
            f"{self.log_loss[1]:.4f} vs {self.log_loss[0]:.4f}, tolerance {SHAPE_TOLERANCE}; leaf-path cost "
            f"{self.leaf_path_cost[1]:,} vs {self.leaf_path_cost[0]:,}: {self._saving()}{self._pooled()})"
        )

    def _pooled(self) -> str:
        if self.pooled is None:
            return ""
        return (
            f"; over the {self.slices} rolling-origin slices so far: ROC AUC {self.pooled[0]:+.4f}, "
            f"log loss {self.pooled[1]:+.4f}"
        )

    def _saving(self) -> str:
        ratio = self.cost_ratio
        return f"{ratio:.1f}x less to explain" if ratio >= 1 else f"{1 / ratio:.1f}x more to explain"

    def record(self) -> dict[str, Any]:
        """Flat figures for MLflow metrics and bundle metadata."""
        out: dict[str, Any] = {"shaped": float(self.shaped), "tolerance": SHAPE_TOLERANCE}
        for k, name in enumerate(("default", "shaped")):
            out[f"{name}_valid_roc_auc"] = self.auc[k]
            out[f"{name}_valid_log_loss"] = self.log_loss[k]
            out[f"{name}_leaf_path_cost"] = float(self.leaf_path_cost[k])
            out[f"{name}_trees"] = float(self.trees[k])
        if self.pooled is not None:
            out["slices"] = float(self.slices)
            out["pooled_roc_auc_gap"], out["pooled_log_loss_gap"] = self.pooled
        return out


def shaped_params(params: dict[str, Any]) -> dict[str, Any]:
    """The default settings with the explanation shape (never a smaller step than the default's)."""
    rate = max(float(params.get("learning_rate", 0.1)), EXPLAIN_SHAPE["learning_rate"])
    return {**params, **EXPLAIN_SHAPE, "learning_rate": rate}


def worth_trying(params: dict[str, Any], overrides: dict[str, Any] | None, n_rows: int) -> bool:
    """Only when the caller did not set the shape itself, the shape differs from the default, and the
    data is below LARGE_DATA_ROWS: there the default already steps at 0.1 (half the trees), and on a
    million leads the second fit cost 1.28x the CPU of the whole training, beyond its time budget."""
    if n_rows >= LARGE_DATA_ROWS or (overrides and any(k in overrides for k in (*EXPLAIN_SHAPE, "max_depth"))):
        return False
    return shaped_params(params) != params


def choose_shape(
    default: TreeFit, shaped: TreeFit, y_valid: np.ndarray, earlier: Sequence[ShapeChoice] = ()
) -> tuple[TreeFit, ShapeChoice]:
    """The shaped fit when it is within SHAPE_TOLERANCE of the default on both figures and clearly cheaper to
    explain, else the default.

    `earlier`: the choices of the earlier rolling-origin folds. The figures are then judged over all those
    slices, weighted by their leads: one small slice can miss what the others show. On the small synthetic
    export the first three of four slices found the shaped trees clearly worse (ROC AUC -0.003 to -0.008);
    the last alone let them through, and the served model lost 0.0008 log loss on the next quarter."""
    from sklearn.metrics import roc_auc_score

    auc = (float(roc_auc_score(y_valid, default.valid_raw)), float(roc_auc_score(y_valid, shaped.valid_raw)))
    loss = tuple(float(platt_losses(fit.valid_raw, y_valid).mean()) for fit in (default, shaped))
    cost = (leaf_path_cost(default.booster), leaf_path_cost(shaped.booster))
    choice = ShapeChoice(
        shaped=False,
        auc=auc,
        log_loss=(loss[0], loss[1]),
        leaf_path_cost=cost,
        trees=(default.rounds, shaped.rounds),
        n_valid=len(y_valid),
    )
    judged = [c for c in earlier if c.n_valid > 0] + [choice]
    weights = np.array([c.n_valid for c in judged], dtype=float)
    gap_auc = float(np.average([c.auc[1] - c.auc[0] for c in judged], weights=weights))
    gap_loss = float(np.average([c.log_loss[1] - c.log_loss[0] for c in judged], weights=weights))
    keep = gap_auc >= -SHAPE_TOLERANCE and gap_loss <= SHAPE_TOLERANCE and cost[1] * MIN_COST_RATIO <= cost[0]
    pooled = (gap_auc, gap_loss) if len(judged) > 1 else None
    choice = replace(choice, shaped=keep, pooled=pooled, slices=len(judged))
    return (shaped if keep else default), choice


def leaf_path_cost(booster: lgb.Booster) -> int:
    """Sum over all leaves of the distinct features on the leaf's path: exact TreeSHAP's work per lead."""
    total = 0
    for tree in booster.dump_model()["tree_info"]:
        stack: list[tuple[dict[str, Any], frozenset[int]]] = [(tree["tree_structure"], frozenset())]
        while stack:
            node, features = stack.pop()
            if "split_feature" not in node:
                total += len(features)
                continue
            below = features | {node["split_feature"]}
            stack += [(node["left_child"], below), (node["right_child"], below)]
    return total

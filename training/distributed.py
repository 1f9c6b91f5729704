"""`leadscore train --engine dask`: the same training, with every LightGBM fit run by lightgbm.dask.

Labelling, the time split, the family choice, the refit, calibration, the MLflow run, the registry and
the bundle are the single-machine pipeline's own (`training.pipeline.train`); only the booster
fits move to the cluster, through `training.family.BOOSTER_TRAINER`. `DaskLGBMClassifier.to_local()`
gives the plain LightGBM model the pickle-free bundle stores.

lightgbm.dask's known pitfalls, and what is done about each:
- Early stopping is not supported (it hangs or breaks the sockets when one worker stops first). The
  fit runs a fixed number of rounds; the validation curve is computed here from the fitted trees, and
  the in-process early-stopping rule (stop after 50 rounds without improvement) is replayed on it.
  When the curve has not stopped yet, the fit is repeated with twice the rounds (the first trees are
  the same for the same seed), so the result is what early stopping would have chosen.
- Every worker must hold data, and partitions must not move during training: the matrix is scattered
  in at least two pieces per worker, spread over all workers, before the fit.
- Several workers on one host must not collide on LightGBM's ports: lightgbm.dask (>= 3.2) picks free
  ports per host in one call; `time_out` bounds a worker that cannot connect.
- OpenMP threads: each worker's LightGBM uses as many threads as the worker has, not every core.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator
from functools import partial
from typing import Any

import lightgbm as lgb
import numpy as np

from features.errors import TrainingError
from training.family import BOOSTER_TRAINER
from training.levels import fold_start, start_score
from training.model import EARLY_STOPPING_ROUNDS

_logger = logging.getLogger(__name__)

FIRST_ROUNDS = 400  # the first try at an early-stopped fit (most stop before 350); doubled while still improving
PIECES_PER_WORKER = 2
NETWORK_TIMEOUT_MIN = 5  # minutes LightGBM's workers wait for each other


@contextlib.contextmanager
def lightgbm_on(client: Any) -> Iterator[None]:
    """Within this block every LightGBM fit of the training recipe runs on `client`'s workers."""
    token = BOOSTER_TRAINER.set(partial(train_on_dask, client))
    try:
        yield
    finally:
        BOOSTER_TRAINER.reset(token)


def train_on_dask(
    client: Any,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    encoder: Any,
    *,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    min_rounds: int = 0,
    offsets: np.ndarray | None = None,
) -> lgb.Booster:
    """`training.family.train_booster`'s contract on the cluster: `rounds` rounds; with `valid`, the
    booster early stopping would leave (its rounds up to the stop, `best_iteration` set when it stopped);
    with `offsets`, each lead starts from its period's level (`training.levels`)."""
    start = None if offsets is None else start_score(y, weights, offsets)
    data = _scatter(client, X, y, weights, None if start is None or offsets is None else start + offsets)
    try:
        if valid is None:
            return _fit(client, params, data, encoder, rounds, start)
        n = min(max(FIRST_ROUNDS, min_rounds), rounds)
        while True:
            booster = _fit(client, params, data, encoder, n, start)
            best, stop = early_stopping_point(validation_curve(booster, *valid), EARLY_STOPPING_ROUNDS, min_rounds)
            if stop is not None:
                _logger.info("lightgbm.dask: best iteration %d, stopped after %d of %d trained", best, stop, n)
                stopped = lgb.Booster(model_str=booster.model_to_string(num_iteration=stop))
                stopped.best_iteration = best
                return stopped
            if n >= rounds:
                return booster  # never stopped: like LightGBM, best_iteration stays 0 and every round counts
            n = min(2 * n, rounds)
    finally:
        client.cancel([part for key in ("X", "y", "w", "i") for part in data[key] if part is not None])


def early_stopping_point(curve: np.ndarray, patience: int, min_rounds: int = 0) -> tuple[int, int | None]:
    """The in-process early-stopping rule (`training.family`) replayed on a validation curve (loss per
    round, lower is better): the best round (1-based) and the rounds trained when it stops, never
    before `min_rounds`; None when it would not stop within the curve."""
    best_loss, best = math.inf, 0
    for i, loss in enumerate(curve):
        if loss < best_loss:
            best_loss, best = float(loss), i
        if i + 1 >= min_rounds and i - best >= patience:
            return best + 1, i + 1
    return best + 1, None


def validation_curve(booster: lgb.Booster, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Binary log loss on (X, y) after each round, from the fitted trees one at a time (the binary
    objective starts from zero: the average is folded into the first tree)."""
    n = booster.current_iteration()
    raw = np.zeros(len(X))
    y = np.asarray(y, dtype=float)
    curve = np.empty(n)
    for k in range(n):
        raw += booster.predict(X, raw_score=True, start_iteration=k, num_iteration=1)
        curve[k] = float(np.mean(np.logaddexp(0.0, raw) - y * raw))
    return curve


def _scatter(
    client: Any, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None, init: np.ndarray | None = None
) -> dict[str, list[Any]]:
    """The matrix, labels, weights and start scores in row pieces spread over every worker (so each holds data)."""
    workers = list(client.scheduler_info()["workers"])
    pieces = max(1, min(len(X), PIECES_PER_WORKER * len(workers)))
    bounds = np.linspace(0, len(X), pieces + 1).astype(int)
    out: dict[str, list[Any]] = {"X": [], "y": [], "w": [], "i": [], "n": list(np.diff(bounds))}
    for k, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        worker = [workers[k % len(workers)]]
        out["X"].append(client.scatter(X[start:stop], workers=worker))
        out["y"].append(client.scatter(np.asarray(y[start:stop], dtype=float), workers=worker))
        out["w"].append(client.scatter(weights[start:stop], workers=worker) if weights is not None else None)
        out["i"].append(client.scatter(init[start:stop], workers=worker) if init is not None else None)
    return out


def _fit(
    client: Any,
    params: dict[str, Any],
    data: dict[str, list[Any]],
    encoder: Any,
    rounds: int,
    start: float | None = None,
) -> lgb.Booster:
    import dask.array as da
    from lightgbm import DaskLGBMClassifier

    sizes = data["n"]
    n_features = len(encoder.feature_names)
    dX = da.concatenate(
        [da.from_delayed(f, shape=(n, n_features), dtype=float) for f, n in zip(data["X"], sizes, strict=True)]
    )
    dy = da.concatenate([da.from_delayed(f, shape=(n,), dtype=float) for f, n in zip(data["y"], sizes, strict=True)])
    dw, di = (
        None
        if data[key][0] is None
        else da.concatenate(
            [da.from_delayed(f, shape=(n,), dtype=float) for f, n in zip(data[key], sizes, strict=True)]
        )
        for key in ("w", "i")
    )
    # lightgbm.dask gives each worker's LightGBM that worker's threads; a thread count here is ignored
    settings = {k: v for k, v in params.items() if k not in ("num_threads", "n_jobs", "n_estimators")}
    settings["time_out"] = NETWORK_TIMEOUT_MIN
    model = DaskLGBMClassifier(client=client, n_estimators=rounds, **settings)
    try:
        model.fit(
            dX,
            dy,
            sample_weight=dw,
            init_score=di,
            feature_name=encoder.feature_names,
            categorical_feature=encoder.categorical_indices,
        )
    except Exception as exc:  # noqa: BLE001 - a lost worker or a network timeout: one line, nothing recorded
        text = str(exc).strip().splitlines()
        raise TrainingError(
            f"lightgbm.dask failed on the cluster, nothing was recorded: {type(exc).__name__}: "
            f"{text[0][:200] if text else ''}"
        ) from None
    booster = model.to_local().booster_
    return booster if start is None else fold_start(booster, start)


def train_command(*, scheduler: str | None = None, workers: int | None = None, **options: Any) -> int:
    """`leadscore train --engine dask`: the pipeline's own command (its checks, summary and `--force`)
    with LightGBM on the cluster; the new run is tagged with the engine."""
    import time

    from serving.reports.distributed import connect
    from training import pipeline

    lgb.register_logger(_logger)  # lightgbm.dask's notes ("Finding random open ports") go to -v, not stdout
    started_ms = int(time.time() * 1000)
    with connect(scheduler, workers) as client, lightgbm_on(client):
        workers = len(client.scheduler_info()["workers"])
        print(f"dask: {workers} workers, dashboard {client.dashboard_link}", file=sys.stderr)
        code = pipeline.train_command(**options)
    if code == 0 and _tag_new_run(started_ms, f"dask ({workers} workers)"):
        print(
            f"  engine: lightgbm.dask on {workers} Dask workers{' at ' + scheduler if scheduler else ' (LocalCluster)'}"
        )
    return code


def _tag_new_run(started_ms: int, engine: str) -> bool:
    """Tag the run behind the newest challenger when this command created it (not when the inputs were
    unchanged and nothing was trained)."""
    from training import tracking

    with tracking.use_tracking(tracking.resolve_tracking_uri(None)) as client:
        version = tracking.alias_version(client, tracking.CHALLENGER)
        if version is None:
            return False
        run_id = client.get_model_version(tracking.MODEL_NAME, version).run_id
        if client.get_run(run_id).info.start_time < started_ms:
            return False
        client.set_tag(run_id, "leadscore.engine", engine)
    return True

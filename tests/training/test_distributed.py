"""`leadscore train --engine dask`: LightGBM fitted by lightgbm.dask on a real 2-worker LocalCluster,
everything else the single-machine pipeline's own."""

from __future__ import annotations

from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pytest

from features.target import labels
from training.distributed import early_stopping_point, validation_curve
from training.family import train_booster
from training.model import EARLY_STOPPING_ROUNDS


@pytest.mark.parametrize("min_rounds", [0, 200])
def test_replayed_early_stopping_leaves_the_in_process_booster(min_rounds: int) -> None:
    """lightgbm.dask cannot early-stop; the rule replayed on the validation curve must stop where the
    in-process fit stops and pick its best round (noisy labels, so it does stop early)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6000, 6))
    y = (rng.random(6000) < 1 / (1 + np.exp(-(X[:, 0] - 0.5 * X[:, 1] - 2)))).astype(float)
    train, valid = slice(0, 4000), slice(4000, None)
    params = {
        "objective": "binary",
        "learning_rate": 0.2,
        "num_leaves": 15,
        "verbosity": -1,
        "num_threads": 1,
        "seed": 1,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
    }
    encoder = SimpleNamespace(feature_names=[f"x{i}" for i in range(6)], categorical_indices=[])
    stopped = train_booster(
        params, X[train], y[train], None, encoder, rounds=600, valid=(X[valid], y[valid]), min_rounds=min_rounds
    )
    full = lgb.train(params, lgb.Dataset(X[train], label=y[train]), num_boost_round=600)
    curve = validation_curve(full, X[valid], y[valid])
    best, stop = early_stopping_point(curve, EARLY_STOPPING_ROUNDS, min_rounds)
    assert stop is not None and stop < 600 and stop >= min_rounds
    assert (best, stop) == (stopped.best_iteration, stopped.current_iteration())
    assert early_stopping_point(curve[: stop - 1], EARLY_STOPPING_ROUNDS, min_rounds) == (best, None)  # needs more


def test_cli_trains_registers_and_exports_like_the_single_machine_path(
    dask_client, trained_model, mlflow_store, tmp_path, capsys
) -> None:
    from mlflow import MlflowClient

    from serving.model.bundle import Bundle
    from training.cli import main

    code = main(
        [
            "train",
            "--engine",
            "dask",
            "--scheduler",
            dask_client.scheduler.address,
            "--data",
            str(trained_model.data_path),
            "--models-dir",
            str(tmp_path / "models"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "engine: lightgbm.dask on 2 Dask workers at tcp://" in out
    local = trained_model.result
    # same labelling and split as the in-process run on the same file
    assert f"split (quarterly): train 2023-10-01..2025-12-31 {local.report.n_train:,} leads" in out
    assert "decision: promoted to champion (first model: no champion yet)" in out

    client = MlflowClient(mlflow_store)
    version = client.get_model_version_by_alias("lead-conversion", "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["leadscore.engine"] == "dask (2 workers)"
    model_auc = run.data.metrics["model_roc_auc"]
    assert abs(model_auc - local.evaluations["model"].roc_auc) < 0.01  # distributed histograms differ slightly
    assert model_auc > 0.87

    bundle = Bundle.load(tmp_path / "models" / "lead-conversion" / str(version.version))
    assert bundle.metadata["run_id"] == version.run_id and bundle.family == run.data.params["family"]
    local_bundle = Bundle.load(trained_model.bundle_dir)  # the quarter levels come from the same logistic fit
    assert bundle.metadata["quarter_levels"] == local_bundle.metadata["quarter_levels"]
    leads = trained_model.history.leads.iloc[-4000:]
    p = bundle.calibrator(bundle.raw_scores(bundle.encoder.transform(leads)))
    y = labels(leads, bundle.schema)
    assert np.all((p > 0) & (p < 1)) and p[y == 1].mean() > 2 * p[y == 0].mean()


@pytest.mark.parametrize("workers", [0, -1])
def test_refuses_a_bad_worker_count(workers: int, capsys) -> None:
    from training.cli import main

    code = main(["train", "--engine", "dask", "--workers", str(workers), "--data", "nowhere.parquet"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"leadscore train: error: --workers must be at least 1, got {workers}"


def test_quarter_levels_reach_the_cluster(dask_client) -> None:
    """A base rate that triples in the last two quarters: the trees fitted by lightgbm.dask start each lead
    from its quarter's level, as in process, so both serve the same scores at the newest quarter's level."""
    from features.encoding import LeadEncoder
    from features.synthetic import bundled_schema, generate
    from training.distributed import lightgbm_on
    from training.family import Recipe, fit_components, lightgbm_params
    from training.levels import period_codes

    schema = bundled_schema()
    leads = generate(quarters=6, leads_per_quarter=700, seed=5, base_rate_shift=3.0).leads
    y = labels(leads, schema)
    params = lightgbm_params(schema, LeadEncoder(schema).fit(leads), len(leads), None, seed=0)
    recipe = Recipe(rounds=60, n_rows_chosen=len(leads), C=1.0, tree_weight=0.5, params=params)
    local = fit_components(leads, y, schema, recipe)
    with lightgbm_on(dask_client):
        remote = fit_components(leads, y, schema, recipe)
    assert local.levels is not None and remote.levels == local.levels
    levels = list(local.levels.values())
    assert levels[-1] == 0.0 and min(levels[-2:]) - max(levels[:-2]) > 1.0  # the jump, in its quarters
    X = local.encoder.transform(leads)
    trees = {name: c.booster.predict(X, raw_score=True) for name, c in (("local", local), ("dask", remote))}
    assert remote.booster.current_iteration() == local.booster.current_iteration() == 60
    # lightgbm.dask's trees are not the in-process ones lead by lead (its histograms are merged across
    # workers: without levels too, a median 0.13 log-odds apart on these leads, correlation 0.98), but
    # each quarter's leads must be scored at the same level: a start score lost or misaligned on the
    # cluster moves whole quarters by about the jump (1.7 log-odds)
    gap = trees["dask"] - trees["local"]
    codes, _ = period_codes(leads, schema)
    by_quarter = np.bincount(codes, weights=gap) / np.bincount(codes)
    assert np.abs(by_quarter).max() < 0.1, by_quarter
    assert np.corrcoef(trees["dask"], trees["local"])[0, 1] > 0.97
    newest = codes == codes.max()
    p = {name: 1 / (1 + np.exp(-raw[newest])) for name, raw in trees.items()}
    assert p["dask"].mean() == pytest.approx(p["local"].mean(), abs=0.01)

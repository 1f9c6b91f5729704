"""`leadscore train` end to end, on synthetic leads whose true conversion probabilities are known.

`trained_model` (tests/conftest.py) trains once per session; tests that change the registry work on
a copy of its store (`registry_copy`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.loading import read_leads
from features.schema import load_schema
from features.synthetic import bundled_schema
from serving.model.bundle import Bundle
from training import tracking
from training.cli import main
from training.metrics import roc_auc
from training.model import raw_scores
from training.pipeline import train
from training.splits import label_at, time_split

NAME = "lead-conversion"
CONTRACT_KEYS = {
    "name",
    "version",
    "as_of",
    "data_window",
    "trained_at",
    "run_id",
    "metrics",
    "n_train",
    "n_valid",
    "n_test",
    "test_quarter",
}


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _aliases(uri: str) -> dict[str, str]:
    return {alias: tracking.alias_version(_client(uri), alias) for alias in ("champion", "challenger")}


def _test_quarter(trained_model) -> tuple[pd.DataFrame, np.ndarray]:
    schema = bundled_schema()
    split = time_split(label_at(read_leads(trained_model.data_path, schema), schema), schema)
    return split.test, split.y_test


# -- the first model ----------------------------------------------------------------------------------


def test_first_model_becomes_champion_and_challenger(trained_model) -> None:
    assert trained_model.result.promoted and trained_model.version == "1"
    assert _aliases(trained_model.tracking_uri) == {"champion": "1", "challenger": "1"}
    assert "first model" in trained_model.result.decision


def test_bundle_is_exported_with_the_contract_metadata(trained_model) -> None:
    assert trained_model.bundle_dir == trained_model.models_dir / NAME / "1"
    bundle = Bundle.load(trained_model.bundle_dir)
    meta = bundle.metadata
    assert set(meta) >= CONTRACT_KEYS
    assert (meta["name"], meta["version"], meta["run_id"]) == (NAME, "1", trained_model.result.run_id)
    assert meta["test_quarter"] == "2026Q2" and meta["data_window"] == {"start": "2023-10-01", "end": "2026-06-30"}
    assert meta["metrics"]["roc_auc"] == pytest.approx(trained_model.result.evaluations["model"].roc_auc)
    assert not list(trained_model.models_dir.glob(f"{NAME}/.*")), "no temp folder left beside the bundle"


def test_quality_floors_against_the_generators_truth(trained_model) -> None:
    test, y = _test_quarter(trained_model)
    truth = trained_model.history.truth.set_index("lead_id").loc[test["lead_id"].astype(str), "true_probability"]
    best_possible = roc_auc(y, truth.to_numpy())
    model = trained_model.result.evaluations["model"]
    baseline = trained_model.result.evaluations["baseline"]
    assert model.n == len(y)
    assert model.roc_auc >= best_possible - 0.02, (model.roc_auc, best_possible)
    assert model.ece < 0.02
    assert model.log_loss < baseline.log_loss


def test_no_leakage_into_the_features(trained_model) -> None:
    schema = bundled_schema()
    bundle = Bundle.load(trained_model.bundle_dir)
    used = set(bundle.booster.feature_name())
    assert used == set(schema.feature_names)
    assert not used & (set(schema.excluded) | set(schema.context) | set(schema.role_columns))
    assert "lead_status" in schema.excluded
    # Scrambling the leaky status, the context columns and the ids changes no score.
    test, _ = _test_quarter(trained_model)
    test = test.head(500)
    scrambled = test.copy()
    rng = np.random.default_rng(0)
    for column in ("lead_status", "lead_source", "campaign", "converted", "converted_at"):
        scrambled[column] = rng.permutation(scrambled[column].to_numpy())
    scrambled["lead_id"] = [f"X{i}" for i in range(len(scrambled))]
    np.testing.assert_array_equal(raw_scores(bundle, test), raw_scores(bundle, scrambled))


def test_run_records_params_metrics_and_artifacts(trained_model) -> None:
    client = _client(trained_model.tracking_uri)
    run = client.get_run(trained_model.result.run_id)
    params, metrics = run.data.params, run.data.metrics
    sha = hashlib.sha256(trained_model.data_path.read_bytes()).hexdigest()
    assert params["data_fingerprint"] == sha
    assert params["schema_fingerprint"] == bundled_schema().fingerprint()
    assert params["split_method"] == "quarterly" and params["test_quarter"] == "2026Q2"
    for key in (
        "as_of",
        "n_train",
        "n_valid",
        "n_test",
        "best_iteration",
        "calibration_method",
        "lgb.learning_rate",
        "lgb.num_leaves",
        "data_window_start",
        "promote_tolerance",
    ):
        assert key in params, key
    for key in (
        "model_roc_auc",
        "model_log_loss",
        "model_ece",
        "model_lift_top10",
        "model_grade_A_rate",
        "baseline_log_loss",
        "promoted",
        "train_seconds",
    ):
        assert key in metrics, key
    files = _artifact_files(client, run.info.run_id)
    for name in (
        "charts/roc.png",
        "charts/pr.png",
        "charts/calibration.png",
        "charts/lift.png",
        "charts/factor_importance.png",
        "factor_importance.csv",
        "model_card.md",
        "data_profile.json",
        "data_profile.csv",
        "split_report.json",
        "evaluation.json",
    ):
        assert name in files, name
    card = Path(client.download_artifacts(run.info.run_id, "model_card.md", str(_tmp(trained_model)))).read_text()
    assert "## Known limits" in card and "| A |" in card and "2026Q2" in card


def test_run_records_the_tree_shape_trade_off(trained_model) -> None:
    """The explanation-shaped trees are tried on the synthetic history; both fits' figures are on record."""
    client = _client(trained_model.tracking_uri)
    run = client.get_run(trained_model.result.run_id)
    params, metrics = run.data.params, run.data.metrics
    shaped = metrics["shape_shaped"] == 1.0
    assert params["tree_shape"] == (
        "shaped for explanation" if shaped else "default (shaped trees outside the tolerance)"
    )
    assert params["lgb.num_leaves"] == ("15" if shaped else "31")
    assert metrics["shape_shaped_leaf_path_cost"] < metrics["shape_default_leaf_path_cost"]
    assert metrics["shape_tolerance"] == 0.002
    within = (
        metrics["shape_shaped_valid_roc_auc"] >= metrics["shape_default_valid_roc_auc"] - 0.002
        and metrics["shape_shaped_valid_log_loss"] <= metrics["shape_default_valid_log_loss"] + 0.002
        and metrics["shape_shaped_leaf_path_cost"] * 1.25 <= metrics["shape_default_leaf_path_cost"]
    )
    assert shaped == within
    note = Bundle.load(trained_model.bundle_dir).metadata["tree_shape"]["note"]
    assert f"  trees: {note}" in trained_model.result.summary()
    card = Path(client.download_artifacts(run.info.run_id, "model_card.md", str(_tmp(trained_model)))).read_text()
    assert f"- trees: {note}" in card


def test_no_quarter_levels_where_the_features_explain_the_quarters(trained_model) -> None:
    """On the synthetic history a features-only model misses no quarter's conversions by more than chance
    (its rate moves with the source mix, which the features carry): no level per quarter is fitted, and
    the record says so. The drift scenario's test checks the levels when they are fitted."""
    run = _client(trained_model.tracking_uri).get_run(trained_model.result.run_id)
    assert run.data.params["quarter_levels"] == "none"
    assert Bundle.load(trained_model.bundle_dir).metadata["quarter_levels"] is None
    assert trained_model.result.quarter_levels is None and "quarter levels" not in trained_model.result.summary()


def test_run_has_the_training_data_as_input_and_the_summary_as_description(trained_model) -> None:
    from training.pipeline import file_sha256

    client = _client(trained_model.tracking_uri)
    run = client.get_run(trained_model.result.run_id)
    [data_input] = run.inputs.dataset_inputs
    assert data_input.dataset.name == "leads.parquet"
    assert data_input.dataset.digest == file_sha256(trained_model.data_path)[:36]
    assert str(trained_model.data_path.absolute()) in data_input.dataset.source
    assert '"name": "company_size"' in data_input.dataset.schema
    assert {t.key: t.value for t in data_input.tags} == {"mlflow.data.context": "training"}
    assert run.data.tags["mlflow.note.content"] == f"```\n{trained_model.result.summary()}\n```"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_drift_is_logged_when_the_drift_module_exists(trained_model) -> None:
    pytest.importorskip("features.drift")
    metrics = _client(trained_model.tracking_uri).get_run(trained_model.result.run_id).data.metrics
    # The AI-assistant launch is the planted drift in product interest.
    assert metrics["drift_psi_product_interest"] > 0.2


def test_registered_pyfunc_scores_like_the_bundle(trained_model) -> None:
    import mlflow

    test, _ = _test_quarter(trained_model)
    leads = test.head(50)
    bundle = Bundle.load(trained_model.bundle_dir)
    with tracking.use_tracking(trained_model.tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    out = model.predict(leads.drop(columns=["converted", "converted_at", "lead_status"]))
    assert list(out.columns) == ["lead_id", "probability", "grade"]
    np.testing.assert_allclose(out["probability"], bundle.calibrator(raw_scores(bundle, leads)))
    assert out["lead_id"].tolist() == leads["lead_id"].astype(str).tolist()


# -- champion / challenger ----------------------------------------------------------------------------


def test_worse_challenger_is_registered_but_not_promoted(trained_model, registry_copy: str) -> None:
    result = train(trained_model.data_path, params={"num_iterations": 3, "num_leaves": 2})
    assert result.version == "2" and not result.promoted
    assert os.environ["MLFLOW_TRACKING_URI"] == registry_copy, (
        "training leaves the caller's MLflow settings as they were"
    )
    assert "champion kept" in result.decision
    assert result.evaluations["champion"].log_loss < result.evaluations["model"].log_loss
    assert _aliases(registry_copy) == {"champion": "1", "challenger": "2"}
    run = _client(registry_copy).get_run(result.run_id)
    assert run.data.metrics["promoted"] == 0.0 and "champion_log_loss" in run.data.metrics
    assert Path("models", NAME, "2", "bundle.json").is_file()


def test_cli_never_registers_a_challenger_only(trained_model, registry_copy: str, capsys) -> None:
    code = main(["train", "--data", str(trained_model.data_path), "--promote", "never", "--force"])
    out = capsys.readouterr().out
    assert code == 0
    assert "registered as challenger" in out and "champion v1" in out and "2026Q2" in out
    assert _aliases(registry_copy) == {"champion": "1", "challenger": "2"}


def test_cli_skips_a_run_whose_inputs_equal_the_champions(trained_model, registry_copy: str, capsys) -> None:
    versions_before = _client(registry_copy).search_model_versions(f"name='{NAME}'")
    code = main(["train", "--data", str(trained_model.data_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        out.startswith(
            "unchanged: champion version 1 was trained on the same data (leads.parquet), schema and parameters"
        )
        and "use --force to train anyway" in out
    ), out
    assert len(_client(registry_copy).search_model_versions(f"name='{NAME}'")) == len(versions_before) == 1
    assert _aliases(registry_copy) == {"champion": "1", "challenger": "1"}
    assert not Path("models").exists()


def test_the_champion_records_what_it_was_trained_from(trained_model, tmp_path: Path) -> None:
    from training.pipeline import file_sha256
    from training.unchanged import TAG, inputs_fingerprint

    schema = load_schema(trained_model.schema_path)
    data_sha = file_sha256(trained_model.data_path)
    tags = _client(trained_model.tracking_uri).get_model_version(NAME, trained_model.version).tags
    assert tags[TAG] == inputs_fingerprint(data_sha=data_sha, schema=schema)
    changed = tmp_path / "changed.parquet"
    pd.read_parquet(trained_model.data_path).iloc[:-1].to_parquet(changed)
    others = {
        inputs_fingerprint(data_sha=file_sha256(changed), schema=schema),
        inputs_fingerprint(data_sha=data_sha, schema=schema, as_of="2026-07-01"),
        inputs_fingerprint(data_sha=data_sha, schema=schema, half_life_days=365.0),
        inputs_fingerprint(data_sha=data_sha, schema=schema, params={"num_leaves": 7}),
    }
    assert tags[TAG] not in others and len(others) == 4
    assert inputs_fingerprint(data_sha=data_sha, schema=schema, as_of="2026-07-01") == inputs_fingerprint(
        data_sha=data_sha, schema=schema, as_of=pd.Timestamp("2026-07-01")
    )


# -- failed runs move nothing -------------------------------------------------------------------------


def _one_class(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(converted=0, converted_at=pd.NaT)


def _few_positives(frame: pd.DataFrame) -> pd.DataFrame:
    keep = frame["converted"].eq(1) & (np.arange(len(frame)) % 60 == 0)
    return frame.assign(converted=keep.astype("int8"), converted_at=frame["converted_at"].where(keep))


def _missing_feature(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["industry"])


def _duplicate_ids(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.head(3)], ignore_index=True)


@pytest.mark.parametrize(
    ("change", "flags", "message"),
    [
        (_one_class, [], "only one class"),
        (_few_positives, [], "too few leads"),
        (None, ["--as-of", "2020-01-01"], "before the first lead"),
        (None, ["--as-of", "next tuesday"], "not a date"),
        (_missing_feature, [], "missing feature columns named in the schema: industry"),
        (_duplicate_ids, [], "duplicate lead ids"),
        ("garbage", [], "not a readable"),
    ],
)
def test_failed_runs_exit_2_with_one_line_and_move_nothing(
    trained_model, registry_copy: str, tmp_path: Path, capsys, change, flags, message
) -> None:
    data = trained_model.data_path
    if change == "garbage":
        data = tmp_path / "broken.parquet"
        data.write_bytes(b"this is not parquet")
    elif change is not None:
        data = tmp_path / "changed.parquet"
        change(pd.read_parquet(trained_model.data_path)).to_parquet(data)
    runs_before = _client(registry_copy).search_runs(_experiment_ids(registry_copy))
    code = main(["train", "--data", str(data), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("leadscore train: error:") and message in err, err
    assert _aliases(registry_copy) == {"champion": "1", "challenger": "1"}
    assert len(_client(registry_copy).search_model_versions(f"name='{NAME}'")) == 1
    assert len(_client(registry_copy).search_runs(_experiment_ids(registry_copy))) == len(runs_before)
    assert not Path("models").exists(), "a failed run leaves no bundle folder"


def _experiment_ids(uri: str) -> list[str]:
    return [e.experiment_id for e in _client(uri).search_experiments()]


def _artifact_files(client, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_files(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _tmp(trained_model) -> Path:
    folder = trained_model.models_dir.parent / "downloads"
    folder.mkdir(exist_ok=True)
    return folder


def test_the_summary_says_when_the_newest_slice_drifted_and_what_was_served(trained_model) -> None:
    steady = trained_model.result
    assert "drift:" not in steady.summary()
    drifted = dataclasses.replace(steady, drifting=True, valid_auc=0.41, family="logistic", calibration="identity")
    lines = [line for line in drifted.summary().splitlines() if line.strip().startswith("drift:")]
    assert len(lines) == 1
    assert "ranks the newest slice at ROC AUC 0.41" in lines[0]
    assert "serves the logistic model" in lines[0] and "its own probabilities" in lines[0]
    assert "(regularised logistic model; identity calibration)" in drifted.summary()

"""A new user's path (schema infer -> train -> score the next quarter) on the shapes of real CRM exports
that the first version learned badly from (issue 13), each reproduced by the synthetic generator:

- a short export whose conversions arrive months after first contact (it used to be refused);
- a base rate that triples in the last two quarters (drift; the served model used to miss the newest data);
- a small export (~5,000 leads, ~450 conversions): rolling-origin evaluation;
- a post-contact column with an innocent name (leakage found by its values, not its name).

The export file holds the first quarters with their outcomes as known at the export date (a quarter
after the newest lead, so it knows more than the newest creation date); the next quarter's leads are
scored and judged against the generator's true probabilities: the expected ROC AUC under the truth
(each lead counted as converted with weight p and not with weight 1 - p), so no sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from features.inference import infer_schema, schema_yaml
from features.synthetic import generate
from serving.model.bundle import Bundle
from serving.model.scorer import Scorer
from training.levels import describe_levels
from training.pipeline import train
from training.promotion import PromotionSettings

# Issue 13 asks for 0.02 ROC AUC of the generator's true probabilities, and every scenario is held to it.
AUC_SLACK = 0.02
# The short export's history has the generator's launch and regional turn where its 12 months can learn
# them: the product launches in its second quarter and India and Brazil convert well from the first. By
# default, in a 4-quarter history, the product would launch in the scored quarter itself (a fifth of its
# leads, true effect +0.9 log-odds, a value training never saw) and the region would turn in a quarter
# the 180-day window leaves immature: no learner can know either at the export date (s4-13s: models
# fitted on every export lead with its eventual outcome reached only 0.871-0.877 against the truth's
# 0.896). The scenario tests slow conversions on a short export, not an unknowable next quarter.
SHORT_EXPORT_EVENTS = {"launch_quarter": 1, "expansion_quarter": 0}


@dataclass(frozen=True)
class Scenario:
    export: Path
    schema: Path
    next_leads: pd.DataFrame
    next_truth: np.ndarray
    notes: list[str]


def _scenario(folder: Path, *, quarters: int, leads_per_quarter: int, seed: int, **options) -> Scenario:
    history = generate(quarters=quarters, leads_per_quarter=leads_per_quarter, seed=seed, **options)
    leads = history.leads.drop(columns=["lead_status"])  # a leak found by its name; tested elsewhere
    created = pd.to_datetime(leads["created_at"])
    cut = created.dt.to_period("Q") == created.dt.to_period("Q").max()
    export = folder / "export.csv"
    leads[~cut].to_csv(export, index=False)
    schema, notes = infer_schema(leads[~cut], target="converted", id_column="lead_id", created_at="created_at")
    schema_path = folder / "export.schema.yaml"
    schema_path.write_text(schema_yaml(schema, header=notes))
    truth = history.truth.set_index("lead_id").loc[leads.loc[cut, "lead_id"], "true_probability"].to_numpy()
    return Scenario(export, schema_path, leads[cut].reset_index(drop=True), truth, notes)


def _expected_auc(score: np.ndarray, truth: np.ndarray) -> float:
    both = np.r_[score, score]
    y = np.r_[np.ones(len(score)), np.zeros(len(score))]
    return float(roc_auc_score(y, both, sample_weight=np.r_[truth, 1 - truth]))


def _train_and_judge(scenario: Scenario, folder: Path, make_mlflow_store) -> tuple[object, Bundle, float, float]:
    uri = make_mlflow_store(folder)
    result = train(
        scenario.export, scenario.schema, models_dir=folder / "models", tracking_uri=uri, settings=PromotionSettings()
    )
    bundle = Bundle.load(result.bundle_dir)
    p = Scorer(bundle).predict_proba(scenario.next_leads)
    return (
        result,
        bundle,
        _expected_auc(p, scenario.next_truth),
        _expected_auc(scenario.next_truth, scenario.next_truth),
    )


def _learned_from_newest(result, bundle: Bundle) -> None:
    """The served model was refitted on every used lead, the test leads (the newest) included."""
    report = result.report
    assert bundle.metadata["n_deployed"] == report.n_used > report.n_train + report.n_valid
    assert bundle.metadata["label"].startswith("converted")


def test_short_export_with_slow_conversions_trains_and_learns(tmp_path: Path, make_mlflow_store) -> None:
    scenario = _scenario(
        tmp_path, quarters=4, leads_per_quarter=5000, seed=21, conversion_delay="slow", **SHORT_EXPORT_EVENTS
    )
    window = next(n for n in scenario.notes if n.startswith("outcome window"))
    assert "covers" in window and "mature" in window  # the trade-off is said, with figures
    result, bundle, auc, truth_auc = _train_and_judge(scenario, tmp_path, make_mlflow_store)
    # as-of is what the export knows: the newest conversion, after the newest creation date
    assert "conversion" in result.report.as_of_source
    _learned_from_newest(result, bundle)
    assert auc >= truth_auc - AUC_SLACK, (auc, truth_auc)


def test_base_rate_tripling_in_the_last_two_quarters(tmp_path: Path, make_mlflow_store) -> None:
    scenario = _scenario(tmp_path, quarters=8, leads_per_quarter=2500, seed=22, base_rate_shift=3.0)
    result, bundle, auc, truth_auc = _train_and_judge(scenario, tmp_path, make_mlflow_store)
    _learned_from_newest(result, bundle)
    assert auc >= truth_auc - AUC_SLACK, (auc, truth_auc)
    # calibrated to the newest level: the mean prediction follows the tripled rate, not the average one
    p = Scorer(bundle).predict_proba(scenario.next_leads)
    assert p.mean() == pytest.approx(scenario.next_truth.mean(), rel=0.25)
    # one level per quarter, recorded: the export's newest quarter (the first tripled one) is served, and
    # every quarter before it stands well below it
    levels = bundle.metadata["quarter_levels"]
    assert list(levels) == sorted(levels) and len(levels) == 7 and levels == result.quarter_levels
    assert levels[max(levels)] == 0.0 and max(list(levels.values())[:-1]) < -0.8, levels
    assert "quarter levels: the features leave the quarters' conversion rates unexplained" in result.summary()
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.run_id).data.params["quarter_levels"] == describe_levels(levels)
    card = Path(client.download_artifacts(result.run_id, "model_card.md", str(tmp_path))).read_text()
    assert f"- quarter levels (log-odds against {max(levels)}, the level served): {describe_levels(levels)}" in card


def test_small_export_is_judged_by_rolling_origin(tmp_path: Path, make_mlflow_store) -> None:
    scenario = _scenario(tmp_path, quarters=9, leads_per_quarter=650, seed=23)
    result, bundle, auc, truth_auc = _train_and_judge(scenario, tmp_path, make_mlflow_store)
    assert result.report.method == "rolling_origin" and len(result.folds) == 4
    assert "rolling origin, 4 folds" in result.summary()
    _learned_from_newest(result, bundle)
    assert auc >= truth_auc - AUC_SLACK, (auc, truth_auc)


def test_leaky_column_with_an_innocent_name_is_flagged(tmp_path: Path, make_mlflow_store) -> None:
    scenario = _scenario(tmp_path, quarters=6, leads_per_quarter=2000, seed=24, leak_column="last_touch")
    text = scenario.schema.read_text()
    assert "last_touch" not in [line.split("name:")[-1].strip() for line in text.splitlines() if "- name:" in line]
    assert any("last_touch" in note for note in scenario.notes) or "last_touch: possible leakage" in text
    result, bundle, auc, truth_auc = _train_and_judge(scenario, tmp_path, make_mlflow_store)
    assert "last_touch" not in bundle.schema.feature_names
    _learned_from_newest(result, bundle)
    assert auc >= truth_auc - AUC_SLACK, (auc, truth_auc)

"""The model backends side by side: which one a run uses, that both give the same comparison within the
fold-to-fold spread, held-out metrics against an independent computation, tuning and the verdict on
constructed results, and at-risk reasons on a table where one feature drives the score."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from test_models import BACKEND_PARAMS, BACKENDS, FAST, independent_metrics, synthetic_users

from sparkify_utils.artifacts import MODEL_METRICS, PREDICTIONS
from sparkify_utils.modeling import compare, explain, outputs, sklearn_backend
from sparkify_utils.modeling import metrics as ev
from sparkify_utils.modeling.backend import BACKEND_CHOICES, choose_backend
from sparkify_utils.modeling.table import MODEL_NAMES, ModelInputError
from sparkify_utils.paths import run_paths

ALL_MODELS = list(MODEL_NAMES)
#: The agreement runs: 5 folds give each model a fold spread to compare the backends against.
AGREEMENT = {**FAST, "cv_folds": 5}


@pytest.fixture(scope="module")
def both(spark, one_point_grids):
    """Both backends on one table, each chosen by ``auto`` (the limit set below and above the table's size)."""
    users = spark.createDataFrame(synthetic_users(seed=5))
    limits = {"sklearn": 1_000_000, "spark": 224}
    return {
        name: compare.compare_models(
            users, models=ALL_MODELS, seed=7, model_backend="auto", local_model_max_rows=limits[name], **AGREEMENT
        )
        for name in BACKENDS
    }


# --- which backend ----------------------------------------------------------------------------------------


def test_auto_models_small_tables_with_sklearn_and_large_ones_with_spark():
    assert choose_backend("auto", 1_000_000, 1_000_000)[0] == "sklearn"
    assert choose_backend("auto", 1_000_001, 1_000_000)[0] == "spark"
    name, reason = choose_backend("auto", 225, 1_000_000)
    assert "225 users <= local_model_max_rows=1000000" in reason and "scikit-learn" in reason
    for name in ("sklearn", "spark"):
        assert choose_backend(name, 10**9, 0) == (name, f"model_backend={name} was set explicitly")
    with pytest.raises(ModelInputError, match=r"model_backend='Spark'.*choose one of \['auto', 'sklearn', 'spark'\]"):
        choose_backend("Spark", 10, 10)
    assert set(BACKEND_CHOICES) == {"auto", "sklearn", "spark"}


@pytest.mark.slow
def test_the_backend_and_why_are_recorded(both, tmp_path):
    for name, result in both.items():
        assert result.backend.name == name
        paths = run_paths(str(tmp_path / name))
        outputs.save_artifacts(result, paths)
        metrics = json.loads(paths.file(MODEL_METRICS).read_text())
        assert metrics["backend"] == {
            "name": name,
            "reason": result.backend_reason,
            "model_format": result.backend.model_format,
        }
        assert metrics["backend"]["reason"].startswith(f"auto: 225 users {'<=' if name == 'sklearn' else '>'}")
        assert metrics["parameters"]["model_backend"] == "auto"
        assert ("skops" in metrics["backend"]["model_format"]) == (name == "sklearn")


# --- the backends agree ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_both_backends_agree_within_the_fold_spread(both):
    """Same splits and folds; per model the mean CV PR-AUC and ROC-AUC differ by less than 2 fold sds."""
    sk, sp = (compare.cv_summary(both[name].folds) for name in BACKENDS)
    assert both["sklearn"].split == both["spark"].split
    for model in ALL_MODELS:
        for metric in ("pr_auc", "roc_auc"):
            spread = np.sqrt((sk.at[model, f"{metric}_sd"] ** 2 + sp.at[model, f"{metric}_sd"] ** 2) / 2)
            difference = abs(sk.at[model, f"{metric}_mean"] - sp.at[model, f"{metric}_mean"])
            assert difference <= 2 * spread, f"{model} {metric}: backends differ by {difference:.3f}, sd {spread:.3f}"
        # Both learn the table's signal (so agreeing is not agreeing on noise).
        assert min(sk.at[model, "roc_auc_mean"], sp.at[model, "roc_auc_mean"]) > 0.7
    # The baselines do not depend on the backend at all.
    pd.testing.assert_frame_equal(sk.loc[["majority", "rule"]], sp.loc[["majority", "rule"]])


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_forest_and_boosting_held_out_metrics_match_an_independent_computation(both, backend, tmp_path):
    result = both[backend]
    paths = run_paths(str(tmp_path / "run"))
    outputs.save_artifacts(result, paths)
    saved = pd.read_csv(paths.file(PREDICTIONS))
    metrics = json.loads(paths.file(MODEL_METRICS).read_text())
    for model in ("rf", "gbt"):
        rows = saved[saved["model"] == model]
        assert len(rows) == result.split["test_users"] and rows["label"].sum() == result.split["test_churners"]
        threshold = metrics["models"][model]["threshold"]
        assert (rows["prediction"] == (rows["probability"] >= threshold)).all()
        recorded = {m: metrics["models"][model]["test"][m] for m in ev.METRICS}
        assert recorded == pytest.approx(independent_metrics(rows["label"], rows["probability"], rows["prediction"]))


# --- saved scikit-learn models --------------------------------------------------------------------------------


def _doubled(x: np.ndarray) -> np.ndarray:
    return 2 * x


def test_a_model_file_with_foreign_types_is_refused(tmp_path):
    foreign = make_pipeline(FunctionTransformer(_doubled))
    sio.dump(foreign, tmp_path / sklearn_backend.MODEL_FILE)
    with pytest.raises(ModelInputError, match=r"never saves \(.*_doubled\)"):
        sklearn_backend.load_model(tmp_path)
    with pytest.raises(ModelInputError, match="No saved model"):
        sklearn_backend.load_model(tmp_path / "missing")


# --- tuning, choice and verdict ------------------------------------------------------------------------------


@pytest.mark.parametrize("depths", [[1, 4], [4, 1]])
def test_tuning_picks_the_depth_an_interaction_needs(spark, monkeypatch, depths):
    """Churn is the sign of x1 * x2: one split cannot see it, four levels can, in either grid order."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(-1, 1, 240), rng.uniform(-1, 1, 240)
    table = pd.DataFrame(
        {
            "userId": [f"u{i:03d}" for i in range(240)],
            "churn": (x1 * x2 > 0).astype(int),
            "x1": x1,
            "x2": x2,
            "noise": rng.normal(size=240),
        }
    )
    monkeypatch.setattr(sklearn_backend, "PARAM_GRIDS", {"dt": {"maxDepth": depths}})
    result = compare.compare_models(
        spark.createDataFrame(table), models=["dt"], seed=1, model_backend="sklearn", baseline_feature="x1", **FAST
    )
    assert result.tuning["dt"]["params"] == {"maxDepth": 4}
    scores = {g["params"]["maxDepth"]: g["pr_auc"] for g in result.tuning["dt"]["grid"]}
    assert scores[4] > 0.9 and scores[1] < 0.75


def _folds(f1: dict[str, list[float]], pr_auc: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Fold results as :func:`compare._cv_rows` shapes them (metrics other than F1 and PR-AUC are filler)."""
    rows = []
    for model, values in f1.items():
        for fold, value in enumerate(values):
            row = dict.fromkeys(ev.METRICS, 0.5)
            row.update(f1=value, pr_auc=(pr_auc or {}).get(model, [0.5] * len(values))[fold])
            rows.append({"split": f"__cv0_{fold}", "model": model, **row, "repeat": 0, "fold": fold})
    return pd.DataFrame(rows)


def test_model_choice_is_the_best_mean_f1_among_models_with_pr_auc_breaking_ties():
    folds = _folds({"lr": [0.6, 0.6], "dt": [0.6, 0.8], "rf": [0.4, 0.5], "majority": [0, 0], "rule": [0.9, 0.9]})
    assert compare.choose_model(folds, ["lr", "dt", "rf"]) == "dt"  # not the better rule baseline
    tied = _folds({"lr": [0.6, 0.6], "dt": [0.5, 0.7]}, pr_auc={"lr": [0.5, 0.5], "dt": [0.6, 0.6]})
    assert compare.choose_model(tied, ["lr", "dt"]) == "dt"
    tied = _folds({"lr": [0.6, 0.6], "dt": [0.5, 0.7]}, pr_auc={"lr": [0.7, 0.7], "dt": [0.6, 0.6]})
    assert compare.choose_model(tied, ["lr", "dt"]) == "lr"


def _verdict(folds: pd.DataFrame, chosen: str) -> list[str]:
    test = pd.DataFrame([{"model": chosen, "f1": 0.5, "pr_auc": 0.5, "roc_auc": 0.7, "threshold": 0.4}])
    result = SimpleNamespace(folds=folds, chosen=chosen, test=test, split={"test_users": 45, "test_churners": 10})
    return compare.verdict(result).splitlines()


def test_verdict_calls_a_consistent_lead_clear_and_a_noisy_one_not():
    # Folds differ a lot from each other (sd of F1 ~0.2 for every model), but lr beats rf by 0.10 +- 0.01 in
    # each fold: a clear win on the paired differences, which comparing the two sds would miss.
    base = np.array([0.2, 0.7, 0.4, 0.8, 0.3])
    clear = _folds(
        {
            "lr": list(base + [0.10, 0.11, 0.09, 0.10, 0.10]),
            "rf": list(base),
            "dt": list(base - 0.2),
            "majority": [0.0] * 5,
            "rule": list(base + [0.2, -0.2, 0.2, -0.2, 0.0]),
        }
    )
    lines = _verdict(clear, "lr")
    assert lines[1].startswith("vs runner-up random forest (rf") and lines[1].endswith("(a clear win).")
    assert "difference +0.100" in lines[1]
    assert lines[2].startswith("vs baseline always majority") and lines[2].endswith("(a clear win).")
    assert lines[3].startswith("vs baseline one-feature rule") and lines[3].endswith("(not a clear win).")
    # Same means, but the lead changes sign from fold to fold: within the spread.
    noisy = clear.copy()
    noisy.loc[noisy["model"] == "lr", "f1"] = base + [0.3, -0.2, 0.3, -0.2, 0.3]
    assert _verdict(noisy, "lr")[1].endswith("within the spread (not a clear win).")


# --- at-risk reasons --------------------------------------------------------------------------------------------


def _one_driver(n: int, seed: int) -> pd.DataFrame:
    """Churn driven by days_inactive alone; the other columns (numbers, a flag, a level) are noise."""
    rng = np.random.default_rng(seed)
    days = rng.gamma(2.0, 3.0, n)
    churn = (rng.random(n) < 1 / (1 + np.exp(-(days - 8)))).astype(int)
    return pd.DataFrame(
        {
            "userId": [f"u{seed}_{i:04d}" for i in range(n)],
            "churn": churn,
            "songs": rng.normal(500, 100, n),
            "flagged": rng.random(n) < 0.5,
            "days_inactive": days,
            "thumbs": rng.poisson(5, n).astype(float),
            "level": rng.choice(["free", "paid"], n),
        }
    )


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def driven(request, spark, one_point_grids):
    users = spark.createDataFrame(_one_driver(300, seed=1))
    return compare.compare_models(users, models=["lr", "rf"], seed=2, model_backend=request.param, **FAST)


@pytest.mark.parametrize("model", ["lr", "rf"])
def test_the_feature_that_drives_churn_is_the_top_reason(spark, driven, model):
    result = dataclasses.replace(driven, chosen=model)
    active = _one_driver(200, seed=9).drop(columns="churn")
    at_risk = explain.rank_at_risk(result, spark.createDataFrame(active), "memory")
    # Exact on both backends: TreeSHAP for the forests (scikit-learn's, or Spark ML's rebuilt trees).
    assert at_risk.reasons["exact"] and ("TreeSHAP" in at_risk.reasons["method"]) == (model == "rf"), at_risk.reasons
    table = at_risk.table
    riskiest = table.head(20)
    assert riskiest["reason_1"].eq("days_inactive (high)").all(), riskiest
    assert riskiest["top_features"].str.startswith("days_inactive (high) +").all()
    assert (riskiest["contribution_1"] > 0).all()
    # And it is never a reason for the least inactive users.
    least = table.merge(active, on="userId").nsmallest(40, "days_inactive")
    assert not least["top_features"].str.contains("days_inactive (high)", regex=False).any()

"""Model comparison: metric functions vs hand-computed values, split hygiene, leak sensitivity, saved
models that reload, baselines in the tables, scoring, and a clear error for each kind of bad input.

The comparison tests run once per backend (scikit-learn and Spark ML); tests/test_backends.py holds the
tests that set the backends side by side."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from sklearn import metrics as skm

from sparkify_utils.artifacts import FEATURE_IMPORTANCE, MODEL_METRICS, PREDICTIONS
from sparkify_utils.modeling import baselines, compare, explain, outputs, sklearn_backend, splits
from sparkify_utils.modeling import metrics as ev
from sparkify_utils.modeling import table as mtable
from sparkify_utils.paths import run_paths

#: Cheap settings: one grid point per model, 3 folds, one repeat (the protocol is the same).
FAST = {"cv_folds": 3, "cv_repeats": 1, "tuning_folds": 2, "parallelism": 2}
#: The same single grid point for both backends (one of the Spark grid's points, which the scikit-learn grid holds).
ONE_POINT_GRIDS = {
    "lr": {"regParam": [0.01]},
    "dt": {"maxDepth": [3]},
    "rf": {"maxDepth": [4]},
    "gbt": {"maxDepth": [2]},
}
BACKENDS = ("sklearn", "spark")
#: Both backends as fixture parameters; Spark ML's many small jobs make its variant slow (not in test-fast).
BACKEND_PARAMS = [pytest.param("sklearn"), pytest.param("spark", marks=pytest.mark.slow)]


def synthetic_users(n: int = 225, seed: int = 0, churn_rate: float = 0.23) -> pd.DataFrame:
    """Per-user table shaped like notebook 02's: churners play fewer songs and see more adverts."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < churn_rate).astype(int)
    return pd.DataFrame(
        {
            "userId": [f"u{i:04d}" for i in range(n)],
            "churn": y,
            "songs": np.round(np.exp(rng.normal(6.5 - 0.6 * y, 0.8))).astype(int),
            "ads_per_song": np.abs(rng.normal(0.015 + 0.02 * y, 0.01)),
            "recency_days": np.abs(rng.normal(3 + 4 * y, 3)).round(1),
            "noise": rng.normal(size=n),
            "level": rng.choice(["free", "paid"], n),
        }
    )


@pytest.fixture(scope="module")
def users(spark):
    return spark.createDataFrame(synthetic_users())


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def result(request, spark, users, one_point_grids):
    return compare.compare_models(users, models=["lr", "dt"], seed=3, model_backend=request.param, **FAST)


def independent_metrics(label: pd.Series, probability: pd.Series, prediction: pd.Series) -> dict[str, float]:
    """Every metric of ``ev.METRICS`` computed by scikit-learn, to check the project's own functions."""
    return {
        "f1": skm.f1_score(label, prediction, zero_division=0),
        "precision": skm.precision_score(label, prediction, zero_division=0),
        "recall": skm.recall_score(label, prediction, zero_division=0),
        "pr_auc": skm.average_precision_score(label, probability),
        "roc_auc": skm.roc_auc_score(label, probability),
        "accuracy": skm.accuracy_score(label, prediction),
        "weighted_f1": skm.f1_score(label, prediction, average="weighted", zero_division=0),
    }


def user_ids(users: object) -> set[str]:
    """The ids of a backend's table of users (pandas or Spark)."""
    if isinstance(users, pd.DataFrame):
        return set(users["userId"].astype(str))
    return {r[0] for r in users.select("userId").collect()}


# --- metrics vs hand-computed values ------------------------------------------------------------------


def test_auc_and_average_precision_match_hand_computed_values():
    y, s = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]
    # Positive/negative pairs: (.9,.8) (.9,.1) (.7,.1) ordered, (.7,.8) not -> 3/4.
    assert ev.roc_auc(y, s) == pytest.approx(0.75)
    # Recall 1/2 at precision 1, then recall 1 at precision 2/3.
    assert ev.average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert ev.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert ev.average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert ev.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert ev.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert ev.average_precision([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0


def test_auc_equals_brute_force_pair_count_with_ties():
    rng = np.random.default_rng(1)
    y, s = rng.integers(0, 2, 60), rng.integers(0, 6, 60) / 5
    pos, neg = s[y == 1], s[y == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in product(pos, neg)]
    assert ev.roc_auc(y, s) == pytest.approx(np.mean(pairs))
    curve = ev.roc_curve(y, s)
    assert curve.iloc[0][["fpr", "tpr"]].tolist() == [0, 0] and curve.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]
    assert np.trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(ev.roc_auc(y, s))


def test_classification_metrics_match_hand_computed_confusion():
    y, s = [1, 1, 0, 0, 0], [0.9, 0.2, 0.8, 0.1, 0.3]
    m = ev.classification_metrics(y, s, 0.5)  # predicted 1,0,1,0,0: tp 1, fn 1, fp 1, tn 2
    assert ev.confusion_counts(y, [1, 0, 1, 0, 0]) == {"tp": 1, "fp": 1, "fn": 1, "tn": 2}
    assert (m["precision"], m["recall"], m["f1"], m["accuracy"]) == pytest.approx((0.5, 0.5, 0.5, 0.6))
    # Stayed-class F1 = 2*2/(2*2+1+1) = 2/3; weighted by support (2 churn, 3 stayed): (2*.5 + 3*2/3)/5.
    assert m["weighted_f1"] == pytest.approx(0.6)
    none = ev.classification_metrics(y, s, 0.95)
    assert (none["precision"], none["recall"], none["f1"]) == (0.0, 0.0, 0.0)


def test_best_f1_threshold_is_the_midpoint_below_the_best_cut():
    y, s = [1, 1, 0, 0, 0], [0.9, 0.2, 0.8, 0.1, 0.3]
    # F1 by cut: .9 -> 2/3, .8 -> 1/2, .3 -> 2/5, .2 -> 2/3, .1 -> 4/7; tie keeps the higher cut (.9).
    assert ev.best_f1_threshold(y, s) == pytest.approx(0.85)
    assert ev.best_f1_threshold([1, 0, 1], [0.7, 0.1, 0.4]) == pytest.approx(0.25)


# --- splits ----------------------------------------------------------------------------------------------


def test_stratified_folds_and_split_keep_the_class_balance():
    y = np.array([1] * 50 + [0] * 175)
    folds = splits.stratified_folds(y, 5, seed=0)
    assert all(np.sum((folds == f) & (y == 1)) == 10 for f in range(5))
    assert np.bincount(folds).tolist() == [45] * 5
    test = splits.split_users(y, 0.2, seed=0)
    assert (test & (y == 1)).sum() == 10 and (test & (y == 0)).sum() == 35
    assert np.array_equal(test, splits.split_users(y, 0.2, seed=0))
    assert not np.array_equal(test, splits.split_users(y, 0.2, seed=1))


def test_held_out_users_never_enter_tuning_or_cv():
    y = np.array([1] * 30 + [0] * 90)
    roles, groups = splits.user_roles(y, 0.2, cv_folds=4, cv_repeats=2, tuning_folds=3, seed=5)
    held_out = (roles["__final"] == "test").to_numpy()
    for split in groups["tuning"] + groups["cv"]:
        assert (roles.loc[held_out, split] == "").all()
        assert roles.loc[~held_out, split].isin(["fit", "valid", "test"]).all()
    # Across one repeat each training user is a CV test user exactly once.
    tested = sum((roles[s] == "test").astype(int) for s in groups["cv"][:4])
    assert (tested[~held_out] == 1).all()


# --- the comparison --------------------------------------------------------------------------------------


def test_tables_include_baselines_and_every_model(result):
    summary = compare.cv_summary(result.folds)
    assert list(summary.index) == ["lr", "dt", "majority", "rule"]
    assert set(result.test["model"]) == {"lr", "dt", "majority", "rule"}
    assert len(result.folds) == 4 * FAST["cv_folds"] * FAST["cv_repeats"]
    assert result.rule.feature == "songs" and result.rule.direction == -1
    majority = result.test.set_index("model").loc["majority"]
    assert majority["f1"] == 0 and majority["roc_auc"] == 0.5
    # The synthetic table carries real signal: the models beat the always-majority baseline on PR-AUC.
    assert summary.loc["lr", "pr_auc_mean"] > summary.loc["majority", "pr_auc_mean"]
    # The chosen model is the one with the best mean fold F1 among the models, whatever the baselines score.
    mean_f1 = result.folds[result.folds["model"].isin(["lr", "dt"])].groupby("model")["f1"].mean()
    assert result.chosen == mean_f1.idxmax()
    lines = compare.verdict(result).splitlines()
    assert lines[0].startswith(
        f"Chosen model: {mtable.MODEL_NAMES[result.chosen]} ({result.chosen}), mean CV "
        f"churn-class F1 {mean_f1[result.chosen]:.3f}"
    )
    other = "dt" if result.chosen == "lr" else "lr"
    assert [line.split(" (")[0] for line in lines[1:4]] == [
        f"vs runner-up {mtable.MODEL_NAMES[other]}",
        "vs baseline always majority",
        "vs baseline one-feature rule",
    ]


def test_test_metrics_come_from_held_out_users_only(result):
    predictions = result.predictions
    held_out = set(predictions["userId"])
    assert len(held_out) == result.split["test_users"] == 45
    train_ids = user_ids(result.backend.training_users())
    assert not held_out & train_ids and len(train_ids) == result.split["train_users"]
    for name, group in predictions.groupby("model"):
        row = result.test.set_index("model").loc[name]
        assert len(group) == row["users"] == 45
        assert (group["prediction"] == (group["probability"] >= row["threshold"])).all()
        independent = independent_metrics(group["label"], group["probability"], group["prediction"])
        assert {m: row[m] for m in ev.METRICS} == pytest.approx(independent)


def test_held_out_users_do_not_move_tuning_or_cv(users, one_point_grids):
    """Scrambling the held-out users' features changes nothing but the held-out scores."""
    table = synthetic_users()
    held_out = splits.split_users(table["churn"].to_numpy(), 0.2, seed=3)  # sorted ids: the comparison's split
    rng = np.random.default_rng(1)
    scrambled = table.copy()
    for column in ("songs", "ads_per_song", "recency_days", "noise"):
        scrambled.loc[held_out, column] = rng.permutation(table[column].to_numpy())[: held_out.sum()]
    runs = [
        compare.compare_models(
            users.sparkSession.createDataFrame(t), models=["lr", "dt"], seed=3, model_backend="sklearn", **FAST
        )
        for t in (table, scrambled)
    ]
    assert runs[0].tuning == runs[1].tuning and runs[0].thresholds == runs[1].thresholds
    pd.testing.assert_frame_equal(runs[0].folds, runs[1].folds)
    # ...while the held-out scores do see the change (so the check above is not vacuous).
    assert not np.allclose(runs[0].test["pr_auc"], runs[1].test["pr_auc"])


def test_saved_models_reload_and_reproduce_predictions(result, users, tmp_path):
    paths = run_paths(str(tmp_path / "run"))
    written = outputs.save_artifacts(result, paths)
    scoring = users.drop("churn")  # no label, no weight column: as the scoring table
    for name, model in result.models.items():
        if result.backend.name == "spark":
            loaded = PipelineModel.load(written[f"model_{name}"])
            before, after = (
                m.transform(scoring)
                .select("userId", vector_to_array("probability")[1].alias("p"), "prediction")
                .toPandas()
                for m in (model, loaded)
            )
            # The saved model's prediction column is the at-risk flag at the tuned threshold.
            assert ((after["p"] > result.thresholds[name]).astype(float) == after["prediction"]).all()
        else:
            loaded = sklearn_backend.load_model(written[f"model_{name}"])
            X = sklearn_backend.model_input(scoring.toPandas(), result.spec)
            before, after = (
                pd.DataFrame({"p": m.predict_proba(X)[:, 1], "prediction": m.predict(X)}) for m in (model, loaded)
            )
            assert ((after["p"] >= result.thresholds[name]).astype(float) == after["prediction"]).all()
        pd.testing.assert_frame_equal(before, after)
        assert after["prediction"].nunique() == 2  # both flags occur, so the threshold check above has teeth
    metrics = json.loads(paths.file(MODEL_METRICS).read_text())
    assert metrics["backend"]["name"] == result.backend.name
    assert metrics["backend"]["model_format"] == result.backend.model_format
    assert metrics["chosen_model"] == result.chosen
    assert set(metrics["models"]) == {"lr", "dt", "majority", "rule"}
    assert set(metrics["models"]["lr"]["cv"]["f1"]) == {"mean", "sd"}
    assert len(metrics["folds"]["lr"]["f1"]) == FAST["cv_folds"] * FAST["cv_repeats"]
    assert {"tuning_s", "repeated_cv_s", "final_fit_s"} <= set(metrics["timings"])
    importance = pd.read_csv(paths.file(FEATURE_IMPORTANCE))
    assert set(importance["model"]) == {"lr", "dt"} and {"level=free", "level=paid"} <= set(importance["feature"])
    assert list(pd.read_csv(paths.file(PREDICTIONS)).columns) == [
        "userId",
        "label",
        "probability",
        "prediction",
        "model",
    ]


def test_scoring_ranks_flags_and_explains(result, spark):
    active = synthetic_users(40, seed=9).drop(columns="churn").assign(userId=lambda d: "new" + d["userId"])
    scoring = explain.rank_at_risk(result, spark.createDataFrame(active), "memory")
    table = scoring.table
    assert len(table) == 40 and table["probability"].is_monotonic_decreasing
    assert (table["at_risk"] == (table["probability"] >= result.thresholds[result.chosen])).all()
    assert scoring.level_column == "level" and scoring.recency_column == "recency_days"
    assert table.loc[table["at_risk"] == 1, "top_features"].str.len().gt(0).all()
    assert explain.rank_at_risk(result, None, "nowhere").table.empty


@pytest.mark.parametrize("leak_on", ["train_only", "everywhere"])
def test_leaky_feature_is_caught_by_the_held_out_users(spark, one_point_grids, leak_on):
    table = synthetic_users(seed=4).assign(songs=1.0, ads_per_song=0.0, recency_days=0.0)  # no real signal
    rng = np.random.default_rng(0)
    y = table["churn"].to_numpy()
    held_out = splits.split_users(y, 0.2, seed=11)  # ids are sorted, so this is the comparison's split
    leak = y.astype(float) if leak_on == "everywhere" else np.where(held_out, rng.integers(0, 2, len(y)), y)
    result = compare.compare_models(spark.createDataFrame(table.assign(leak=leak)), models=["dt"], seed=11, **FAST)
    test_auc = result.test.set_index("model").at["dt", "roc_auc"]
    if leak_on == "everywhere":
        assert test_auc > 0.95  # the pipeline does pick up a feature that carries the label
    else:
        assert compare.cv_summary(result.folds).at["dt", "roc_auc_mean"] > 0.95  # leak inside training...
        assert test_auc < 0.8  # ...but the held-out users expose it


def test_rule_falls_back_to_the_best_univariate_feature():
    table = synthetic_users(seed=2).drop(columns="songs")
    spec = mtable.FeatureSpec("userId", "churn", ("ads_per_song", "recency_days", "noise"), (), ("level",))
    rule = baselines.fit_rule(table, spec, "songs")
    assert rule.feature in ("ads_per_song", "recency_days") and rule.direction == 1
    assert "best univariate ROC-AUC" in rule.note


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda d: d.drop(columns="churn"), {}, "'churn' is missing"),
        (lambda d: d.drop(columns="userId"), {}, "'userId' is missing"),
        (lambda d: d.assign(churn=d["churn"] * 2), {}, "must be 0/1"),
        (lambda d: d.assign(churn=0), {}, "single class"),
        (lambda d: d.assign(churn=np.r_[[1] * 9, [0] * (len(d) - 9)]), {}, "fewer than 2 per fold"),
        (lambda d: d.assign(churn=d["churn"].astype(str)), {}, "must hold 0/1 numbers"),
        (lambda d: pd.concat([d, d.head(2)]), {}, "one row per user"),
        (lambda d: d.assign(songs=np.nan), {}, "entirely null"),
        (lambda d: d, {"models": ["svm"]}, "choose one or more"),
        (lambda d: d, {"cv_folds": 2}, "cv_folds=2"),
        (lambda d: d, {"model_backend": "h2o"}, r"choose one of \['auto', 'sklearn', 'spark'\]"),
        (lambda d: d, {"local_model_max_rows": -1}, "local_model_max_rows=-1 must be >= 0"),
    ],
)
def test_bad_input_gets_a_clear_error(spark, change, kwargs, message):
    frame = change(synthetic_users(60, seed=1, churn_rate=0.4))
    with pytest.raises(mtable.ModelInputError, match=message):
        compare.compare_models(spark.createDataFrame(frame), **kwargs)


def test_csv_and_parquet_tables_load_alike(spark, tmp_path):
    frame = synthetic_users(30)
    frame.to_csv(tmp_path / "users.csv", index=False)
    spark.createDataFrame(frame).write.parquet(str(tmp_path / "users.parquet"))
    specs = [
        mtable.feature_spec(mtable.load_table(spark, str(tmp_path / name))) for name in ("users.csv", "users.parquet")
    ]
    assert specs[0].columns == specs[1].columns == ["songs", "ads_per_song", "recency_days", "noise", "level"]
    with pytest.raises(mtable.ModelInputError, match="Run notebook 02_features first"):
        mtable.load_table(spark, str(tmp_path / "missing.parquet"))
    assert mtable.try_load_table(spark, str(tmp_path / "missing.parquet")) is None


def test_unencodable_column_is_named(spark):
    frame = spark.createDataFrame(synthetic_users(30)).withColumn("pages", F.array(F.lit("Home")))
    with pytest.raises(mtable.ModelInputError, match=r"pages \(array<string>\)"):
        mtable.feature_spec(frame)


def test_high_cardinality_strings_are_reported_not_encoded(spark):
    frame = synthetic_users(60).assign(city=lambda d: d["userId"] + "ville")
    spec = mtable.feature_spec(spark.createDataFrame(frame))
    assert "city" in spec.ignored and "city" not in spec.columns and "level" in spec.categorical

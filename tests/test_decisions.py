"""Decision metrics on small constructed tables: lift and gains, campaign economics, calibration, survival."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from sparkify_utils.modeling import economics, lift, reliability, survival

Y = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0])
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_gains_and_lift_count_the_churners_reached():
    gains = lift.gains_curve(Y, SCORE)
    assert gains["churners_reached"].tolist() == [0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert gains["share_of_churners"].iloc[-1] == 1 and gains["share_contacted"].iloc[-1] == 1
    table = lift.lift_table(Y, SCORE, shares=(0.1, 0.2, 0.5)).set_index("share")
    assert table.loc[0.1, "k"] == 1 and table.loc[0.1, "precision"] == 1.0
    assert table.loc[0.1, "lift"] == pytest.approx(1 / 0.3)  # base rate 3/10
    assert table.loc[0.2, "capture"] == pytest.approx(1 / 3) and table.loc[0.5, "capture"] == pytest.approx(2 / 3)
    assert lift.precision_at_k(Y, SCORE, 3) == pytest.approx(2 / 3)
    # A perfect ranking reaches every churner in the first three users; a reversed one in the last three.
    assert lift.lift_table(Y, Y, shares=(0.3,))["capture"].iloc[0] == 1
    assert lift.lift_table(Y, -Y, shares=(0.3,))["capture"].iloc[0] == 0


def test_lift_rejects_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        lift.gains_curve([1, 0], [0.5])
    with pytest.raises(ValueError, match="share"):
        lift.lift_table(Y, SCORE, shares=(0,))
    with pytest.raises(ValueError, match="k=11"):
        lift.precision_at_k(Y, SCORE, 11)


def test_profit_curve_and_its_optimum():
    econ = economics.Economics(contact_cost=1.0, churner_value=10.0, save_rate=0.5)
    assert econ.break_even_probability == pytest.approx(0.2)
    curve = economics.profit_curve(SCORE, econ, Y)
    # Contacting user i is worth 5 * p_i - 1 in expectation: positive while p > 0.2.
    assert curve["expected_profit"].iloc[1] == pytest.approx(5 * 0.9 - 1)
    best = economics.best_campaign(curve)
    assert best["k"] == 7 and best["threshold"] == pytest.approx(0.3)  # the users with p > 0.2
    assert best["profit"] == pytest.approx(5 * SCORE[:7].sum() - 7)
    # Realised: +4 for each churner contacted, -1 for each other user.
    assert curve["realised_profit"].tolist()[:4] == [0, 4, 3, 7]
    realised = economics.best_campaign(curve, "realised_profit")
    assert realised["k"] == 7 and realised["profit"] == pytest.approx(8)  # the third churner is 7th


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"contact_cost": 0.0, "churner_value": 10.0, "save_rate": 0.5}, "contact_cost"),
        ({"contact_cost": 1.0, "churner_value": -5.0, "save_rate": 0.5}, "churner_value"),
        ({"contact_cost": 1.0, "churner_value": 10.0, "save_rate": 1.5}, "save_rate"),
        ({"contact_cost": 1.0, "churner_value": 10.0, "save_rate": -0.1}, "save_rate"),
    ],
)
def test_economics_refuse_values_out_of_range_by_name(kwargs, name):
    with pytest.raises(economics.EconomicsError, match=name):
        economics.Economics(**kwargs)


def test_brier_and_skill():
    p = np.full(Y.size, 0.3)
    assert reliability.brier(Y, p) == pytest.approx(brier_score_loss(Y, p))
    assert reliability.brier_skill(Y, p, base_rate=0.3) == pytest.approx(0)
    assert reliability.brier_skill(Y, Y.astype(float), base_rate=0.3) == pytest.approx(1)


def test_reliability_curve_bins_hold_every_user():
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)  # calibrated by construction
    curve = reliability.reliability_curve(y, p, bins=10)
    assert curve["users"].sum() == 1000 and len(curve) == 10
    assert np.abs(curve["observed"] - curve["predicted"]).max() < 0.1


def test_calibration_fixes_a_miscalibrated_score_and_keeps_a_calibrated_one():
    rng = np.random.default_rng(1)
    truth = rng.random(4000)
    y = (rng.random(4000) < truth).astype(int)
    squashed = truth**3  # ranks right, probabilities far too low
    calibrator, table = reliability.choose_calibrator(y[:2000], squashed[:2000], seed=0)
    assert calibrator.method in ("platt", "isotonic") and set(table["method"]) == set(reliability.METHODS)
    before, after = (
        reliability.brier(y[2000:], squashed[2000:]),
        reliability.brier(y[2000:], calibrator.transform(squashed[2000:])),
    )
    assert after < before - 0.01
    # Already calibrated scores: the raw ones are kept unless a method beats them on validation folds.
    kept, table = reliability.choose_calibrator(y[:2000], truth[:2000], seed=0)
    brier_by_method = table.set_index("method")["brier_mean"]
    assert kept.method == brier_by_method.idxmin()
    assert np.allclose(reliability.fit_calibrator(y, truth, "none").transform(truth), truth)


def test_cox_model_finds_the_covariate_that_drives_the_hazard():
    rng = np.random.default_rng(2)
    n = 400
    risk = rng.normal(size=n)
    noise = rng.normal(size=n)
    days = rng.exponential(30 / np.exp(risk))  # higher risk -> earlier cancellation
    event = (days < 60).astype(int)
    table = pd.DataFrame({"risk": risk, "noise": noise, "days": np.minimum(days, 60), "event": event})
    train = np.arange(n) < 300
    result = survival.fit_cox(table, ["risk", "noise"], train)
    ratios = result.hazard_ratios.set_index("covariate")
    assert ratios.at["risk", "hazard_ratio"] > 1.5 and ratios.at["risk", "p_value"] < 1e-6
    assert ratios.at["noise", "lower_95"] < 1 < ratios.at["noise", "upper_95"]
    assert 0.65 < result.concordance_test < 0.95 and result.test_users == 100
    # Shuffled durations carry no signal: the held-out C-index falls to about 0.5.
    shuffled = table.assign(days=rng.permutation(table["days"].to_numpy()), event=rng.permutation(event))
    assert abs(survival.fit_cox(shuffled, ["risk", "noise"], train).concordance_test - 0.5) < 0.1


def test_calibrators_are_never_judged_on_a_user_they_were_fit_on():
    """With one prediction per user and CV repeat, an ungrouped calibration CV sees a user's other copies in
    training: isotonic regression memorises pure noise and looks best. Grouped by user, it does not."""
    chosen = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y, score = (rng.random(150) < 0.25).astype(int), rng.random(150) * 0.3 + 0.35  # score unrelated to y
        users, y3, score3 = np.repeat(np.arange(150), 3), np.repeat(y, 3), np.repeat(score, 3)
        _, leaky = reliability.choose_calibrator(y3, score3, seed=1)
        calibrator, grouped = reliability.choose_calibrator(y3, score3, seed=1, groups=users)
        leaky, grouped = leaky.set_index("method")["brier_mean"], grouped.set_index("method")["brier_mean"]
        assert grouped["isotonic"] > leaky["isotonic"]
        chosen.append(calibrator.method)
    assert chosen.count("isotonic") <= 1


@pytest.mark.parametrize("mixed", [False, True], ids=["one-label-groups", "mixed-label-groups"])
def test_group_folds_keep_groups_whole_and_classes_balanced(mixed):
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(400), 3)
    y = np.repeat((rng.random(400) < 0.2).astype(float), 3)
    if mixed:
        y[::7] = 1 - y[::7]  # some groups now hold both labels: the scikit-learn splitter's case
    folds = list(reliability.group_folds(y, groups, 5, seed=0))
    assert len(folds) == 5
    held = np.concatenate([h for _, h in folds])
    assert np.array_equal(np.sort(held), np.arange(len(y)))  # every row is held out exactly once
    for fit, held in folds:
        assert not set(groups[fit]) & set(groups[held])
        assert len(fit) + len(held) == len(y)
        assert abs(y[held].mean() - y.mean()) < 0.05
    again = list(reliability.group_folds(y, groups, 5, seed=0))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(folds, again, strict=True))


# --- the decision evaluation of a real comparison (modeling.decisions) ----------------------------------------

DAY_MS = 86_400_000
START_MS = 1_538_352_000_000  # 2018-10-01 UTC


def _users_and_lifetimes(n: int = 240, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A per-user table whose churners play fewer songs, and a users table whose churners cancel sooner."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    ids = [f"u{i:04d}" for i in range(n)]
    table = pd.DataFrame(
        {
            "userId": ids,
            "churn": y,
            "songs": np.round(np.exp(rng.normal(6.5 - 0.8 * y, 0.7))),
            "ads_per_song": np.abs(rng.normal(0.015 + 0.02 * y, 0.01)),
            "tenure_days": rng.uniform(10, 300, n),
            "noise": rng.normal(size=n),
            "level": rng.choice(["free", "paid"], n),
        }
    )
    first = START_MS + rng.integers(0, 10 * DAY_MS, n)
    end = START_MS + 60 * DAY_MS
    churn_ts = np.where(y == 1, first + rng.integers(DAY_MS, 45 * DAY_MS, n), np.nan)
    lifetimes = pd.DataFrame(
        {"userId": ids, "churn": y, "churn_ts": churn_ts, "first_ts": first, "last_ts": np.where(y == 1, churn_ts, end)}
    )
    return table, lifetimes


ONE_POINT_GRIDS = {
    "lr": {"regParam": [0.01]},
    "dt": {"maxDepth": [3]},
    "rf": {"maxDepth": [4]},
    "gbt": {"maxDepth": [2]},
}


@pytest.fixture(scope="module")
def comparison(spark):
    from sparkify_utils.modeling import compare, sklearn_backend

    table, lifetimes = _users_and_lifetimes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sklearn_backend, "PARAM_GRIDS", ONE_POINT_GRIDS)
        result = compare.compare_models(
            spark.createDataFrame(table),
            models=list(ONE_POINT_GRIDS),
            seed=1,
            cv_folds=3,
            cv_repeats=2,
            tuning_folds=2,
            model_backend="sklearn",
        )
    return result, lifetimes


ECON = economics.Economics(contact_cost=2.0, churner_value=40.0, save_rate=0.3)


def test_calibration_is_fit_on_training_users_only(comparison):
    from sparkify_utils.modeling import decisions

    result, lifetimes = comparison
    held_out = set(result.predictions["userId"])
    validation = result.validation
    # One out-of-fold prediction per training user, model and CV repeat, none of a held-out user.
    assert not held_out & set(validation["userId"])
    assert (validation.groupby("model")["userId"].nunique() == result.split["train_users"]).all()
    repeats = result.parameters["cv_repeats"]
    assert repeats > 1 and set(validation["repeat"]) == set(range(repeats))
    assert (validation.groupby("model").size() == repeats * result.split["train_users"]).all()
    assert not validation.duplicated(["model", "repeat", "userId"]).any()
    # A user's predictions differ between repeats (other folds), so every repeat adds calibration data.
    spread = validation.groupby(["model", "userId"])["probability"].nunique()
    assert (spread > 1).mean() > 0.5
    decision = decisions.evaluate(result, ECON, lifetimes, seed=1)
    table = decision.calibration.set_index("model")
    assert set(table.index) == set(ONE_POINT_GRIDS)
    for model in table.index:  # the held-out Brier scores are those of the held-out predictions
        held = result.predictions[result.predictions["model"] == model]
        assert table.at[model, "brier_raw"] == pytest.approx(reliability.brier(held["label"], held["probability"]))
        # The calibrator is the one choose_calibrator picks from the training users' predictions alone.
        oof = validation[validation["model"] == model]
        expected, _ = reliability.choose_calibrator(oof["label"], oof["probability"], seed=1, groups=oof["userId"])
        assert decision.calibrators[model].method == expected.method == table.at[model, "method"]
    # Held-out scores: calibrated, riskiest first, and the economics use exactly them.
    held = decision.held_out
    assert np.allclose(held["probability"], decision.calibrator.transform(held["score"]))
    assert held["probability"].is_monotonic_decreasing
    assert decision.held_out_profit["expected_profit"].iloc[1] == pytest.approx(
        held["probability"].iloc[0] * 0.3 * 40 - 2
    )
    assert set(decision.lift["model"]) == {*ONE_POINT_GRIDS, "majority", "rule"}
    assert set(decision.lift["share"]) == set(lift.TOP_SHARES)


def test_survival_is_wired_and_skipped_with_a_reason(comparison, tmp_path):
    from sparkify_utils.modeling import decisions
    from sparkify_utils.paths import run_paths

    result, lifetimes = comparison
    decision = decisions.evaluate(result, ECON, lifetimes, seed=1)
    s = decision.survival
    assert s is not None and s.users == result.split["users"] and s.events == result.split["churners"]
    assert "tenure_days" not in s.covariates and {"songs", "ads_per_song"} <= set(s.covariates)
    assert set(s.tests) == {"paid_vs_free", "high_vs_low_risk"}
    # Churners cancel within 45 days and play fewer songs: more songs, lower hazard; the model ranks them.
    ratios = s.hazard_ratios.set_index("covariate")
    assert ratios.at["songs", "hazard_ratio"] < 1 and 0.5 < s.concordance_test <= 1
    assert s.tests["high_vs_low_risk"]["p_value"] < 0.05
    # A user's own table: no timestamps, so survival is skipped with the reason; the rest still works.
    none, reason = survival.load_lifetimes(run_paths(str(tmp_path / "run")), "my_table.parquet")
    assert none is None and "my_table.parquet" in reason and "skipped" in reason
    skipped = decisions.evaluate(result, ECON, None, seed=1, no_survival_reason=reason)
    assert skipped.survival is None and skipped.survival_note == reason
    assert reason in decisions.summary_text(skipped)
    none, reason = survival.load_lifetimes(run_paths(str(tmp_path / "empty-run")))
    assert none is None and "user_lifetimes.csv" in reason


def test_decisions_json_is_declared_and_complete(comparison, tmp_path):
    from sparkify_utils import artifacts
    from sparkify_utils.modeling import decisions, outputs
    from sparkify_utils.paths import run_paths
    from sparkify_utils.report.run import Run

    result, lifetimes = comparison
    decision = decisions.evaluate(result, ECON, lifetimes, seed=1)
    campaign = decisions.plan_campaign(decision, np.array([0.9, 0.5, 0.2, 0.05]))
    # Expected profit per user 12 p - 2: positive above p = 1/6, so the first three are worth contacting.
    assert campaign["k"] == 3 and campaign["threshold"] == pytest.approx(0.2)
    assert campaign["profit"] == pytest.approx(12 * 1.6 - 6)
    paths = run_paths(str(tmp_path / "run"))
    written = outputs.save_artifacts(result, paths, None, decision)
    assert artifacts.DECISIONS.name in written and artifacts.DECISIONS in artifacts.written_by(artifacts.MODELS)
    document = Run(paths.run_dir).json(artifacts.DECISIONS)  # checked against the registry's keys
    assert document["economics"]["parameters"] == {"contact_cost": 2.0, "churner_value": 40.0, "save_rate": 0.3}
    assert document["economics"]["campaign"]["k"] == 3
    assert document["calibration"]["method"] == decision.calibrator.method
    assert {r["model"] for r in document["calibration"]["reliability"]} == set(ONE_POINT_GRIDS)
    assert document["survival"]["available"] and document["survival"]["cox"]["hazard_ratios"]
    assert len(document["held_out_scores"]) == result.split["test_users"]


# --- exact reasons (modeling.explain) -------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(ONE_POINT_GRIDS))
def test_contributions_add_up_to_the_model_output(comparison, model):
    """Per user: the contributions plus the base value are the model's own output (log-odds or probability)."""
    from dataclasses import replace

    from sparkify_utils.modeling import explain, sklearn_backend

    result, _ = comparison
    result = replace(result, chosen=model)
    fitted = result.models[model]
    vectors = result.backend.vectors(fitted, result.table)
    X = np.stack(vectors["x"].to_numpy())
    contrib = explain.contributions(result, X, X, vectors["probability"])
    assert contrib.exact and contrib.values.shape == (len(result.table), len(result.feature_names))
    pipeline = sklearn_backend._pipeline(fitted)
    inputs = sklearn_backend.model_input(result.table, result.spec)
    if contrib.output == "log-odds":
        assert model in ("lr", "gbt")
        output = pipeline.decision_function(inputs)
    else:
        assert model in ("dt", "rf") and contrib.output == "probability"
        output = pipeline.predict_proba(inputs)[:, 1]
    np.testing.assert_allclose(contrib.values.sum(axis=1) + contrib.base, output, rtol=0, atol=1e-8)
    assert ("TreeSHAP" in contrib.method) == (model != "lr")


def test_top_reasons_are_the_largest_signed_contributions():
    from sparkify_utils.modeling import explain

    values = np.array([[0.5, -0.9, 0.1, 0.0], [0.0, 0.0, 0.2, 0.0]])
    contrib = explain.Contributions(values, 0.0, "log-odds", "test", True)
    X = np.array([[10.0, 1.0, 3.0, 1.0], [0.0, 0.0, 5.0, 0.0]])
    found = explain.top_reasons(contrib, X, np.array([5.0, 2.0, 4.0, 0.5]), ["songs", "ads", "days", "level=paid"])
    assert found.loc[0, "top_features"] == "ads (low) -0.900; songs (high) +0.500; days (low) +0.100"
    assert found.loc[0, "contribution_1"] == -0.9 and found.loc[0, "reason_2"] == "songs (high)"
    # Features that contribute nothing are not reasons.
    assert found.loc[1, "top_features"] == "days (high) +0.200" and found.loc[1, "reason_2"] is None


def test_at_risk_list_carries_calibrated_probabilities_and_exact_reasons(comparison, spark):
    from dataclasses import replace

    from sparkify_utils.modeling import decisions, explain

    result, lifetimes = comparison
    result = replace(result, chosen="gbt")
    decision = decisions.evaluate(result, ECON, lifetimes, seed=1)
    scoring = spark.createDataFrame(result.table.drop(columns=["churn"]).head(30))
    at_risk = explain.rank_at_risk(result, scoring, "test", decision.calibrator)
    table = at_risk.table
    assert np.allclose(table["probability"], decision.calibrator.transform(table["score"]))
    assert (table["at_risk"] == (table["probability"] >= decision.threshold)).all()
    assert at_risk.reasons["exact"] and at_risk.reasons["output"] == "log-odds"
    assert table["reason_1"].notna().all() and "TreeSHAP" in at_risk.note
    first = table.iloc[0]
    assert first["top_features"].startswith(f"{first['reason_1']} {first['contribution_1']:+.3f}")


# --- out-of-time backtest (modeling.backtest) -------------------------------------------------------------------


def _two_user_log(spark):
    """The users table of a 63-day log (2018-10-01 .. 2018-12-02) with one stayer and one churner."""
    return spark.createDataFrame(
        pd.DataFrame(
            {
                "userId": ["a", "b"],
                "churn": [0, 1],
                "churn_ts": [None, START_MS + 30 * DAY_MS],
                "first_ts": [START_MS, START_MS],
                "last_ts": [START_MS + 62 * DAY_MS, START_MS + 30 * DAY_MS],
            }
        )
    )


def test_backtest_cutoffs_leave_a_horizon_between_training_and_test(spark):
    from sparkify_utils.modeling import backtest

    users = _two_user_log(spark)
    pairs = backtest.plan_cutoffs(users, cutoffs=3, step_days=7, horizon_days=14)
    # The log ends at the midnight after its last event (2018-12-03); the last test cutoff leaves a horizon.
    assert [(a.isoformat(), b.isoformat()) for a, b in pairs] == [
        ("2018-10-22", "2018-11-05"),
        ("2018-10-29", "2018-11-12"),
        ("2018-11-05", "2018-11-19"),
    ]
    # Every training label (cancelled within 14 days of the training cutoff) is known on the test cutoff.
    assert all((test - train).days == 14 for train, test in pairs)
    # More cutoffs than the log holds: the ones that fit (the latest), none reaching before the first event.
    fitting = backtest.plan_cutoffs(users, cutoffs=8, step_days=7, horizon_days=14)
    assert fitting[-3:] == pairs and len(fitting) == 5
    assert fitting[0][0].isoformat() == "2018-10-08"
    assert backtest.plan_cutoffs(users, cutoffs=3, step_days=7, horizon_days=40) == []
    with pytest.raises(backtest.BacktestError, match="backtest_step_days=0"):
        backtest.plan_cutoffs(users, cutoffs=3, step_days=0, horizon_days=14)


def test_backtest_that_does_not_fit_the_log_is_skipped_with_the_fix_not_failed(comparison, spark):
    from sparkify_utils.modeling import backtest

    result, _ = comparison
    users = _two_user_log(spark)
    # A 40-day horizon leaves no training window in a 63-day log: the run goes on, the backtest says why not.
    none = backtest.run_backtest(result, None, users, cutoffs=3, step_days=7, horizon_days=40)
    assert none.skipped.startswith("The backtest is skipped. Only 0 of backtest_cutoffs=3 cutoffs fit")
    assert "horizon_days=40" in none.skipped and none.rows.empty


def test_backtest_pair_trains_on_the_earlier_cutoff_and_scores_the_later(comparison, spark):
    from dataclasses import replace

    from sparkify_utils.modeling import backtest

    result, _ = comparison
    result = replace(result, chosen="lr")
    train, _ = _users_and_lifetimes(n=300, seed=11)
    test, _ = _users_and_lifetimes(n=200, seed=12)
    row, scores = backtest._evaluate_pair(result, train, test, spark, seed=1)
    assert row["status"] == "ok" and row["train_users"] == 300 and row["test_users"] == 200
    assert row["test_churners"] == int(test["churn"].sum()) == int(scores["label"].sum())
    # Scored: the later cutoff's users only, with the labels they really had.
    assert scores["userId"].str.endswith("@test").all() and len(scores) == 200
    y = test.set_index(test["userId"] + "@test").loc[scores["userId"], "churn"].to_numpy()
    assert (scores["label"].to_numpy() == y).all()
    # Churners play fewer songs at both cutoffs: the model trained on one ranks the other.
    assert row["pr_auc"] > test["churn"].mean() and row["lift_10"] > 1
    assert row["brier"] == pytest.approx(reliability.brier(scores["label"], scores["probability"]))
    # Too few churners at the training cutoff to choose a threshold: skipped, saying so.
    few = train.assign(churn=0)
    few.loc[:2, "churn"] = 1
    row, scores = backtest._evaluate_pair(result, few, test, spark, seed=1)
    assert scores is None and row["status"].startswith("skipped: 3 churners")


def test_backtest_is_skipped_with_a_reason_for_a_users_own_table(comparison, tmp_path):
    from sparkify_utils.modeling import backtest, outputs
    from sparkify_utils.paths import run_paths

    result, _ = comparison
    paths = run_paths(str(tmp_path / "run"))
    skipped = backtest.backtest_run(result, None, paths, features_path="mine.csv")
    assert "mine.csv" in skipped.skipped and "skipped" in skipped.note
    assert "switched off" in backtest.backtest_run(result, None, paths, cutoffs=0).skipped
    assert "features_summary.json" in backtest.backtest_run(result, None, paths).skipped
    outputs.save_artifacts(result, paths, None, None, skipped)
    from sparkify_utils import artifacts
    from sparkify_utils.report.run import Run

    document = Run(paths.run_dir).json(artifacts.BACKTEST)
    assert document["skipped"] == skipped.skipped and document["cutoffs"] == []


@pytest.mark.slow
def test_backtest_cutoff_tables_are_each_cutoffs_features_sorted_by_user(spark):
    import datetime as dt

    from test_features import base_rows, frame

    from sparkify_utils.data.label import label_users
    from sparkify_utils.features.build import build_features
    from sparkify_utils.features.catalog import feature_columns
    from sparkify_utils.modeling import backtest

    events = frame(spark, base_rows())
    users = label_users(events)
    days = [dt.date(2018, 10, 20), dt.date(2018, 10, 13), dt.date(2018, 10, 25)]
    tables = backtest._cutoff_tables(events, users, days, horizon_days=14, lookback_days=20)
    assert list(tables) == days and backtest._cutoff_tables(events, users, [], 14, 20) == {}
    descriptive = feature_columns("horizon", kinds=("descriptive",))
    for day in days:
        alone = build_features(events, users, "horizon", day.isoformat(), 14, 20).drop(*descriptive).toPandas()
        alone = alone.sort_values("userId", key=lambda s: s.astype(str), kind="mergesort", ignore_index=True)
        pd.testing.assert_frame_equal(tables[day], alone, check_exact=True, obj=day.isoformat())

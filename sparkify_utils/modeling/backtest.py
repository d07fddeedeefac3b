"""Out-of-time backtest: would the chosen model have found next fortnight's churners, cutoff after cutoff?

A random split of users (the comparison's CV) mixes every period in training and test. Here time moves
forward. For ``backtest_cutoffs`` test cutoffs, ``backtest_step_days`` apart and ending at the latest cutoff
whose horizon the log still covers, with the run's ``horizon_days`` and ``lookback_days``:

1. the horizon-mode features are built as of the test cutoff (users active in the lookback, not cancelled)
   and as of its **training cutoff**, ``horizon_days`` earlier, so that every training label (cancelled
   within the horizon after the training cutoff) was known on the test cutoff: no training user's label
   reaches past it (every cutoff's table comes from the same two passes over the events,
   ``features.build.build_features_at``);
2. the chosen model, with its tuned hyper-parameters and the run's backend, is fit on the training cutoff's
   users (class weights as in the comparison); its threshold (best churn-class F1) and calibrator are chosen
   on ``tuning folds`` out-of-fold predictions of those users only;
3. it scores the test cutoff's users, who are compared with who actually cancelled in the following horizon:
   churn-class F1, PR-AUC, lift at the top 10 %, Brier of the calibrated probabilities.

Per cutoff and pooled over cutoffs, next to the comparison's random-split CV figure. A cutoff whose training
users hold too few churners to choose a threshold is reported as skipped, with the counts.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from sparkify_utils.artifacts import FEATURES, FEATURES_SUMMARY
from sparkify_utils.data.label import read_users
from sparkify_utils.data.read import read_clean_events
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.features.build import CUTOFF_DATE, build_features_at
from sparkify_utils.features.catalog import feature_columns
from sparkify_utils.features.window import date_to_ms, log_end_ts, ms_to_date
from sparkify_utils.modeling.backtest_report import BACKTEST_METRICS, Backtest, note, skipped
from sparkify_utils.modeling.compare import Comparison, cv_summary
from sparkify_utils.modeling.lift import lift_table
from sparkify_utils.modeling.metrics import best_f1_threshold, classification_metrics
from sparkify_utils.modeling.reliability import brier, brier_skill, choose_calibrator
from sparkify_utils.modeling.sklearn_backend import SklearnBackend
from sparkify_utils.modeling.spark_backend import SparkBackend
from sparkify_utils.modeling.splits import stratified_folds
from sparkify_utils.modeling.table import LABEL, MAX_CATEGORY_LEVELS, ROLE, ROW, FeatureSpec, ModelInputError
from sparkify_utils.paths import RunPaths

#: Folds of the training cutoff's users that choose the threshold and the calibrator.
THRESHOLD_FOLDS = 3
_FINAL = "__bt_final"


class BacktestError(ModelInputError):
    """The backtest parameters do not fit the log; the message names the parameter and the fix."""


def plan_cutoffs(users: DataFrame, cutoffs: int, step_days: int, horizon_days: int) -> list[tuple[dt.date, dt.date]]:
    """``(training cutoff, test cutoff)`` pairs, oldest first: up to ``cutoffs`` test cutoffs ``step_days`` apart
    ending at the log's last day minus ``horizon_days``, each trained ``horizon_days`` earlier. Pairs whose training
    cutoff would fall before the log's first event are left out (a short log gets fewer cutoffs, or none)."""
    if cutoffs < 1 or step_days < 1:
        raise BacktestError(
            f"backtest_cutoffs={cutoffs} and backtest_step_days={step_days} must be at least 1 "
            "(backtest_cutoffs=0 skips the backtest)."
        )
    end = log_end_ts(users)
    start = users.agg({"first_ts": "min"}).first()[0]
    latest = end - horizon_days * DAY_MS
    pairs = [
        (latest - i * step_days * DAY_MS - horizon_days * DAY_MS, latest - i * step_days * DAY_MS)
        for i in reversed(range(cutoffs))
    ]
    return [(ms_to_date(a), ms_to_date(b)) for a, b in pairs if a > start]


def _too_few_cutoffs(users: pd.DataFrame, planned: int, cutoffs: int, step_days: int, horizon_days: int) -> str:
    """The sentence saying that only ``planned`` of the ``cutoffs`` asked for fit in the log, and what to change."""
    start, end = users["first_ts"].min(), users["last_ts"].max()
    return (
        f"Only {planned} of backtest_cutoffs={cutoffs} cutoffs fit in the log: it spans {(end - start) / DAY_MS:.0f} "
        f"days, and each cutoff needs horizon_days={horizon_days} of training window before it and as many after "
        f"it, with backtest_step_days={step_days} between cutoffs. Use a longer log, a shorter step or a shorter "
        "horizon for more."
    )


def _cancellations(lifetimes: pd.DataFrame, cutoff: dt.date, horizon_days: int) -> int:
    """Users of the users table who cancelled within ``horizon_days`` after ``cutoff``."""
    start = date_to_ms(cutoff)
    churn_ts = lifetimes["churn_ts"]
    return int(((churn_ts >= start) & (churn_ts < start + horizon_days * DAY_MS)).sum())


def _cutoff_tables(
    events: DataFrame, users: DataFrame, days: list[dt.date], horizon_days: int, lookback_days: int
) -> dict[dt.date, pd.DataFrame]:
    """The horizon-mode table as of each of ``days`` (rows sorted by user), all built and collected at once."""
    if not days:
        return {}
    descriptive = feature_columns("horizon", kinds=("descriptive",))
    stacked = build_features_at(events, users, [day.isoformat() for day in days], horizon_days, lookback_days)
    tables = stacked.drop(*descriptive).toPandas()
    return {
        day: tables[tables[CUTOFF_DATE] == day.isoformat()]
        .drop(columns=CUTOFF_DATE)
        .sort_values("userId", key=lambda s: s.astype(str), kind="mergesort", ignore_index=True)
        for day in days
    }


def _roles(train_y: np.ndarray, test_users: int, seed: int) -> pd.DataFrame:
    """Threshold folds over the training cutoff's users, and the final split (fit on them, test the others)."""
    folds = stratified_folds(train_y, THRESHOLD_FOLDS, seed + 7)
    roles = {
        f"__bt_tune{t}": np.r_[np.where(folds == t, "valid", "fit"), np.full(test_users, "")].astype(object)
        for t in range(THRESHOLD_FOLDS)
    }
    roles[_FINAL] = np.r_[np.full(len(train_y), "fit"), np.full(test_users, "test")].astype(object)
    return pd.DataFrame(roles)


def _evaluate_pair(
    result: Comparison, train: pd.DataFrame, test: pd.DataFrame, spark: Any, seed: int
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Fit the chosen model on ``train`` (threshold and calibrator on its out-of-fold predictions), score ``test``."""
    counts = {
        "train_users": len(train),
        "train_churners": int(train["churn"].sum()),
        "test_users": len(test),
        "test_churners": int(test["churn"].sum()),
    }
    if min(counts["train_churners"], counts["train_users"] - counts["train_churners"]) < 2 * THRESHOLD_FOLDS:
        return {
            **counts,
            "status": f"skipped: {counts['train_churners']} churners among the training cutoff's "
            f"users, fewer than {2 * THRESHOLD_FOLDS} to choose a threshold",
        }, None
    if counts["test_churners"] == 0 or counts["test_churners"] == counts["test_users"]:
        return {**counts, "status": "skipped: the test cutoff's users are all of one class"}, None
    combined = pd.concat([train.assign(__cut="train"), test.assign(__cut="test")], ignore_index=True)
    combined["userId"] = combined["userId"].astype(str) + "@" + combined["__cut"]
    combined = combined.drop(columns="__cut")
    roles = _roles(train["churn"].to_numpy(float), len(test), seed)
    spec = table_spec(combined)
    model, params = result.chosen, result.tuning[result.chosen]["params"]
    parallelism = int(result.parameters.get("parallelism", 1))
    if result.backend.name == "spark":
        backend = SparkBackend(spark.createDataFrame(combined), combined, roles, spec, seed, parallelism)
    else:
        backend = SklearnBackend(combined, roles, spec, seed, parallelism)
    try:
        fitted = backend.run(list(roles.columns), [(model, params)])
    finally:
        backend.close()
    oof = pd.concat([f.predictions[f.predictions[ROLE] == "valid"] for f in fitted if f.split != _FINAL])
    threshold = best_f1_threshold(oof[LABEL], oof["probability"])
    calibrator, _ = choose_calibrator(oof[LABEL], oof["probability"], seed)
    final = next(f for f in fitted if f.split == _FINAL).predictions.sort_values(ROW)
    y, p = final[LABEL].to_numpy(float), final["probability"].to_numpy(float)
    calibrated = calibrator.transform(p)
    base_rate = counts["train_churners"] / counts["train_users"]
    metrics = classification_metrics(y, p, threshold)
    row = {
        **counts,
        "status": "ok",
        "threshold": threshold,
        "calibration": calibrator.method,
        "f1": metrics["f1"],
        "pr_auc": metrics["pr_auc"],
        "roc_auc": metrics["roc_auc"],
        "lift_10": float(lift_table(y, p, (0.1,))["lift"].iloc[0]),
        "brier": brier(y, calibrated),
        "brier_skill": brier_skill(y, calibrated, base_rate),
    }
    scores = pd.DataFrame(
        {
            "userId": combined["userId"].to_numpy()[final[ROW].to_numpy()],
            "label": y.astype(int),
            "score": p,
            "probability": calibrated,
            "predicted": (p >= threshold).astype(int),
        }
    )
    return row, scores


def table_spec(combined: pd.DataFrame) -> FeatureSpec:
    """The feature spec of a collected horizon-mode table (numeric, boolean and string columns), as
    :func:`~sparkify_utils.modeling.table.feature_spec` sorts a Spark table's."""
    numeric, boolean, categorical, ignored = [], [], [], {}
    for column in combined.columns:
        if column in ("userId", "churn"):
            continue
        kind = combined[column].dtype
        if pd.api.types.is_bool_dtype(kind):
            boolean.append(column)
        elif pd.api.types.is_numeric_dtype(kind):
            numeric.append(column)
        elif combined[column].nunique() <= MAX_CATEGORY_LEVELS:
            categorical.append(column)
        else:
            ignored[column] = f"more than {MAX_CATEGORY_LEVELS} levels"
    return FeatureSpec("userId", "churn", tuple(numeric), tuple(boolean), tuple(categorical), ignored)


def _pooled(scores: pd.DataFrame, base_rate: float) -> dict[str, float]:
    y, p = scores["label"].to_numpy(float), scores["score"].to_numpy(float)
    predicted = scores["predicted"].to_numpy(float)
    tp, fp, fn = (float(np.sum((predicted == a) & (y == b))) for a, b in ((1, 1), (1, 0), (0, 1)))
    return {
        "users": len(y),
        "churners": int(y.sum()),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "pr_auc": classification_metrics(y, p, 0.5)["pr_auc"],
        "lift_10": float(lift_table(y, p, (0.1,))["lift"].iloc[0]),
        "brier": brier(y, scores["probability"]),
        "brier_skill": brier_skill(y, scores["probability"], base_rate),
    }


def run_backtest(
    result: Comparison,
    events: DataFrame,
    users: DataFrame,
    cutoffs: int = 3,
    step_days: int = 7,
    horizon_days: int = 14,
    lookback_days: int = 28,
    seed: int = 42,
    label_mode: str = "whole_period",
) -> Backtest:
    """The out-of-time backtest of ``result``'s chosen model (see the module docstring); ``label_mode`` is the
    run's, said next to the CV figure it produced. ``cutoffs=0`` skips it."""
    parameters = {
        "backtest_cutoffs": cutoffs,
        "backtest_step_days": step_days,
        "horizon_days": horizon_days,
        "lookback_days": lookback_days,
        "model": result.chosen,
        "backend": result.backend.name,
    }
    if cutoffs == 0:
        return skipped("The backtest is switched off (backtest_cutoffs=0).", parameters)
    pairs = plan_cutoffs(users, cutoffs, step_days, horizon_days)
    lifetimes = users.select("churn_ts", "first_ts", "last_ts").toPandas()  # one row per user
    shortfall = (
        _too_few_cutoffs(lifetimes, len(pairs), cutoffs, step_days, horizon_days) if len(pairs) < cutoffs else ""
    )
    if not pairs:
        return skipped(f"The backtest is skipped. {shortfall}", parameters)
    log_start = ms_to_date(int(lifetimes["first_ts"].min()))
    # Cancellations in each window bound its churners from above: pairs that cannot have enough are skipped
    # before any feature is built (on a tiny log, all of them, in no time).
    bound = {day: _cancellations(lifetimes, day, horizon_days) for pair in pairs for day in pair}
    runnable = [(a, b) for a, b in pairs if bound[a] >= 2 * THRESHOLD_FOLDS and bound[b] > 0]
    days = sorted({day for pair in runnable for day in pair})
    tables = _cutoff_tables(events, users, days, horizon_days, lookback_days)
    spark = events.sparkSession
    rows, scores = [], []
    for train_cut, test_cut in pairs:
        if (train_cut, test_cut) not in runnable:
            row, scored = (
                {
                    "train_churners": bound[train_cut],
                    "test_churners": bound[test_cut],
                    "status": f"skipped: at most {bound[train_cut]} cancellations in the training window "
                    f"and {bound[test_cut]} in the test window; at least {2 * THRESHOLD_FOLDS} and "
                    "1 are needed",
                },
                None,
            )
        else:
            row, scored = _evaluate_pair(result, tables[train_cut], tables[test_cut], spark, seed)
        partial = (train_cut - log_start).days < lookback_days
        rows.append(
            {
                "test_cutoff": test_cut.isoformat(),
                "train_cutoff": train_cut.isoformat(),
                **row,
                "partial_lookback": partial,
            }
        )
        if scored is not None:
            scores.append(scored.assign(test_cutoff=test_cut.isoformat()))
    table = pd.DataFrame(rows)
    summary = cv_summary(result.folds).loc[result.chosen]
    cv = {
        "label_mode": label_mode,
        **{f"{m}_{s}": float(summary[f"{m}_{s}"]) for m in ("f1", "pr_auc") for s in ("mean", "sd")},
    }
    ok = table[table["status"] == "ok"] if "status" in table else table.iloc[:0]
    if ok.empty:
        text = (
            "No cutoff could be evaluated: "
            + "; ".join(f"{r.test_cutoff}: {r.status}" for r in table.itertuples())
            + ". Use a longer or larger log (e.g. params/big.yaml)."
            + (f" {shortfall}" if shortfall else "")
        )
        return Backtest(table, {}, cv, parameters, text, predictions=pd.DataFrame())
    pooled_scores = pd.concat(scores, ignore_index=True)
    base_rate = float(ok["train_churners"].sum() / ok["train_users"].sum())
    overall = {
        **_pooled(pooled_scores, base_rate),
        "cutoffs": len(ok),
        **{f"{m}_mean": float(ok[m].mean()) for m in BACKTEST_METRICS},
        **{f"{m}_sd": float(ok[m].std(ddof=1)) if len(ok) > 1 else float("nan") for m in BACKTEST_METRICS},
    }
    text = note(table, ok, overall, cv) + (f" {shortfall}" if shortfall else "")
    return Backtest(table, overall, cv, parameters, text, predictions=pooled_scores)


def backtest_run(
    result: Comparison,
    spark: Any,
    paths: RunPaths,
    features_path: str = "",
    cutoffs: int = 3,
    step_days: int = 7,
    seed: int = 42,
) -> Backtest:
    """The backtest of a run's comparison, with the horizon and lookback its features were built with
    (``features_summary.json``), or the reason it is skipped (a user's own table has no timestamps)."""
    if features_path:
        return skipped(
            f"The backtest is skipped: the per-user table {features_path!r} is a table of your own, without "
            "the events it came from, and a backtest rebuilds the features as of each cutoff from them."
        )
    if cutoffs == 0:
        return skipped("The backtest is switched off (backtest_cutoffs=0).")
    summary_file = paths.file(FEATURES_SUMMARY)
    if not summary_file.is_file():
        return skipped(f"The backtest is skipped: this run has no {FEATURES_SUMMARY.name} (notebook {FEATURES}).")
    summary = json.loads(summary_file.read_text())
    return run_backtest(
        result,
        read_clean_events(spark, paths),
        read_users(spark, paths),
        cutoffs,
        step_days,
        int(summary["horizon_days"]),
        int(summary["lookback_days"]),
        seed,
        summary["label_mode"],
    )

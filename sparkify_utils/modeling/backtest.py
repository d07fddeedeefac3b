"""Out-of-time backtest: would the chosen model have found next fortnight's churners, cutoff after cutoff?

A random split of users (the comparison's CV) mixes every period in training and test. Here time moves
forward. For ``backtest_cutoffs`` test cutoffs, ``backtest_step_days`` apart and ending at the latest cutoff
whose horizon the log still covers, with the run's ``horizon_days`` and ``lookback_days``:

1. the horizon-mode features are built as of the test cutoff (users active in the lookback, not cancelled)
   and as of its **training cutoff**, ``horizon_days`` earlier, so that every training label (cancelled
   within the horizon after the training cutoff) was known on the test cutoff: no training user's label
   reaches past it;
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from sparkify_utils.artifacts import FEATURES, FEATURES_SUMMARY
from sparkify_utils.data.label import read_users
from sparkify_utils.data.read import read_clean_events
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.features.build import build_features
from sparkify_utils.features.catalog import feature_columns
from sparkify_utils.features.window import date_to_ms, log_end_ts, ms_to_date
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
#: Metrics of the backtest table (per cutoff and pooled).
BACKTEST_METRICS = ("f1", "pr_auc", "lift_10", "brier")
_FINAL = "__bt_final"


class BacktestError(ModelInputError):
    """The backtest parameters do not fit the log; the message names the parameter and the fix."""


@dataclass
class Backtest:
    """The backtest's table (one row per test cutoff), pooled metrics and the CV figure beside them."""

    rows: pd.DataFrame
    overall: dict[str, Any]
    cross_validation: dict[str, Any]
    parameters: dict[str, Any]
    note: str
    skipped: str = ""
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)


def skipped(reason: str, parameters: dict[str, Any] | None = None) -> Backtest:
    """A backtest that did not run, and why (e.g. a user's own table without timestamps)."""
    return Backtest(pd.DataFrame(), {}, {}, parameters or {}, reason, skipped=reason)


def plan_cutoffs(users: DataFrame, cutoffs: int, step_days: int, horizon_days: int) -> list[tuple[dt.date, dt.date]]:
    """``(training cutoff, test cutoff)`` pairs, oldest first: test cutoffs ``step_days`` apart ending at the
    log's last day minus ``horizon_days``, each trained ``horizon_days`` earlier. Refuses cutoffs before the log."""
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
    earliest = pairs[0][0]
    if earliest <= start:
        span = (end - start) / DAY_MS
        raise BacktestError(
            f"backtest_cutoffs={cutoffs} x backtest_step_days={step_days} with horizon_days={horizon_days} reaches "
            f"back to {ms_to_date(earliest)}, before the log's first event ({ms_to_date(start)}; the log spans "
            f"{span:.0f} days). Use fewer cutoffs or a shorter step (backtest_cutoffs=0 skips the backtest)."
        )
    return [(ms_to_date(a), ms_to_date(b)) for a, b in pairs]


def _cancellations(lifetimes: pd.DataFrame, cutoff: dt.date, horizon_days: int) -> int:
    """Users of the users table who cancelled within ``horizon_days`` after ``cutoff``."""
    start = date_to_ms(cutoff)
    churn_ts = lifetimes["churn_ts"]
    return int(((churn_ts >= start) & (churn_ts < start + horizon_days * DAY_MS)).sum())


def _cutoff_table(
    events: DataFrame, users: DataFrame, cutoff: dt.date, horizon_days: int, lookback_days: int
) -> pd.DataFrame:
    descriptive = feature_columns("horizon", kinds=("descriptive",))
    table = build_features(events, users, "horizon", cutoff.isoformat(), horizon_days, lookback_days)
    return table.drop(*descriptive).toPandas().sort_values("userId", key=lambda s: s.astype(str), kind="mergesort")


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
    lifetimes = users.select("churn_ts", "first_ts").toPandas()  # one row per user
    log_start = ms_to_date(int(lifetimes["first_ts"].min()))
    # Cancellations in each window bound its churners from above: pairs that cannot have enough are skipped
    # before any feature is built (on a tiny log, all of them, in no time).
    bound = {day: _cancellations(lifetimes, day, horizon_days) for pair in pairs for day in pair}
    tables: dict[dt.date, pd.DataFrame] = {}
    spark = events.sparkSession
    rows, scores = [], []
    for train_cut, test_cut in pairs:
        if bound[train_cut] < 2 * THRESHOLD_FOLDS or bound[test_cut] == 0:
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
            for day in (train_cut, test_cut):
                if day not in tables:
                    tables[day] = _cutoff_table(events, users, day, horizon_days, lookback_days)
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
        note = (
            "No cutoff could be evaluated: "
            + "; ".join(f"{r.test_cutoff}: {r.status}" for r in table.itertuples())
            + ". Use a longer or larger log (e.g. params/big.yaml)."
        )
        return Backtest(table, {}, cv, parameters, note, predictions=pd.DataFrame())
    pooled_scores = pd.concat(scores, ignore_index=True)
    base_rate = float(ok["train_churners"].sum() / ok["train_users"].sum())
    overall = {
        **_pooled(pooled_scores, base_rate),
        "cutoffs": len(ok),
        **{f"{m}_mean": float(ok[m].mean()) for m in BACKTEST_METRICS},
        **{f"{m}_sd": float(ok[m].std(ddof=1)) if len(ok) > 1 else float("nan") for m in BACKTEST_METRICS},
    }
    return Backtest(table, overall, cv, parameters, _note(table, ok, overall, cv), predictions=pooled_scores)


def _note(table: pd.DataFrame, ok: pd.DataFrame, overall: dict[str, Any], cv: dict[str, Any]) -> str:
    """The backtest in sentences: the gap to the CV figure, and how noisy the windows are."""
    gap = overall["f1"] - cv["f1_mean"]
    spread = cv["f1_sd"] + (overall["f1_sd"] if np.isfinite(overall["f1_sd"]) else 0.0)
    lines = [
        f"Out of time ({len(ok)} test cutoffs pooled, {overall['users']} users, {overall['churners']} cancelled within "
        f"the horizon), churn-class F1 is {overall['f1']:.3f} and PR-AUC {overall['pr_auc']:.3f}, against "
        f"{cv['f1_mean']:.3f} ± {cv['f1_sd']:.3f} and {cv['pr_auc_mean']:.3f} ± {cv['pr_auc_sd']:.3f} in the "
        f"random-split CV: a gap of {gap:+.3f} in F1, "
        + ("within" if abs(gap) <= spread else "beyond")
        + " the fold-to-fold and cutoff-to-cutoff spread."
    ]
    if cv["label_mode"] != "horizon":
        lines.append(
            f"The CV figure is for {cv['label_mode']} labels (cancelled at any time), the backtest for "
            "horizon labels (cancels within the horizon): run with label_mode=horizon to compare like with "
            "like."
        )
    few = int(ok["test_churners"].min())
    lines.append(
        f"Each test cutoff holds {few}–{int(ok['test_churners'].max())} churners among "
        f"{int(ok['test_users'].min())}–{int(ok['test_users'].max())} users, so finding one churner more or less "
        f"moves that cutoff's recall by up to {1 / few:.0%}"
        + (f"; F1 varies by sd {overall['f1_sd']:.3f} between cutoffs." if np.isfinite(overall["f1_sd"]) else ".")
        + (
            " With fewer than about 30 churners per window these numbers are noisy: read them as a range, and use a "
            "larger log (params/big.yaml) for stable backtests."
            if few < 30
            else ""
        )
    )
    if table["partial_lookback"].any():
        lines.append("Training cutoffs less than lookback_days after the log's start see a shortened lookback.")
    skipped_rows = table[table["status"] != "ok"]
    if len(skipped_rows):
        lines.append("Skipped: " + "; ".join(f"{r.test_cutoff} ({r.status})" for r in skipped_rows.itertuples()) + ".")
    return " ".join(lines)


def comparison_table(backtest: Backtest) -> pd.DataFrame:
    """Per test cutoff, pooled, and the random-split CV figure, side by side (F1, PR-AUC, lift at 10 %, Brier)."""
    rows = backtest.rows.assign(row=lambda t: "cutoff " + t["test_cutoff"])
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows.iloc[:0]
    table = ok.reindex(
        columns=["row", "train_users", "train_churners", "test_users", "test_churners", *BACKTEST_METRICS]
    )
    extra = []
    if backtest.overall:
        o = backtest.overall
        extra.append(
            {
                "row": f"pooled ({o['cutoffs']} cutoffs)",
                "test_users": o["users"],
                "test_churners": o["churners"],
                **{m: o[m] for m in BACKTEST_METRICS},
            }
        )
    if backtest.cross_validation:
        cv = backtest.cross_validation
        extra.append(
            {"row": f"random-split CV ({cv['label_mode']} labels)", "f1": cv["f1_mean"], "pr_auc": cv["pr_auc_mean"]}
        )
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True).set_index("row")


def backtest_document(backtest: Backtest) -> dict[str, Any]:
    """The content of ``backtest.json``."""
    return {
        "parameters": backtest.parameters,
        "skipped": backtest.skipped,
        "note": backtest.note,
        "cutoffs": backtest.rows.replace([np.inf, -np.inf], np.nan).to_dict("records"),
        "overall": backtest.overall,
        "cross_validation": backtest.cross_validation,
    }


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

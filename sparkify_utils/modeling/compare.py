"""Honest churn model comparison: tuning, repeated CV, held-out test and the verdict, for any backend.

Protocol (one row per user, every split stratified on the label and seeded):

1. A held-out test set (``test_fraction`` of the users) is put aside and used once, at the end.
2. Tuning: ``tuning_folds``-fold CV on the training users over a small grid per model; the grid point
   with the best out-of-fold PR-AUC wins, and the decision threshold is the one maximising churn-class
   F1 on those out-of-fold predictions (never on test users).
3. Comparison: ``cv_repeats`` x ``cv_folds`` stratified CV on the training users with the tuned
   hyper-parameters. In each fold one of the remaining folds is the validation part: the model is fit
   on the other folds and its threshold chosen on the validation part, so each fold costs one fit per
   model (scores are slightly conservative: fit on (k-2)/k of the training users).
4. Final: every model refit on all training users and scored once on the held-out test users; the best
   by mean CV churn-class F1 (ties: PR-AUC) scores the active users (:mod:`sparkify_utils.modeling.explain`).

The same splits, folds, thresholds and metrics hold whichever backend fits the models
(:func:`~sparkify_utils.modeling.backend.choose_backend`: scikit-learn on the driver, or Spark ML).

Class imbalance is handled with instance weights computed from each fit's own training rows.
Hyper-parameters are tuned once on all training users (not nested inside the comparison folds), so the
CV table can flatter the tuned models slightly; the held-out numbers carry no such bias.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from sparkify_utils.modeling.backend import Backend, Fitted, check_backend, choose_backend
from sparkify_utils.modeling.baselines import RuleBaseline, baseline_scores, fit_rule
from sparkify_utils.modeling.metrics import METRICS, best_f1_threshold, classification_metrics, confusion_counts
from sparkify_utils.modeling.sklearn_backend import SklearnBackend
from sparkify_utils.modeling.spark_backend import SparkBackend
from sparkify_utils.modeling.splits import user_roles
from sparkify_utils.modeling.table import (
    BASELINE_NAMES,
    FINAL,
    LABEL,
    MODEL_NAMES,
    ROLE,
    ROW,
    FeatureSpec,
    check_parameters,
    check_table,
    feature_spec,
)


@dataclass
class Comparison:
    """Everything the comparison produced; :func:`save_artifacts` writes it out."""

    spec: FeatureSpec
    parameters: dict[str, Any]
    split: dict[str, int]
    folds: pd.DataFrame
    test: pd.DataFrame
    predictions: pd.DataFrame
    models: dict[str, Any]
    tuning: dict[str, dict[str, Any]]
    rule: RuleBaseline
    rule_thresholds: dict[str, float]
    importance: pd.DataFrame
    feature_names: list[str]
    timings: dict[str, float]
    fit_seconds: dict[str, float]
    chosen: str
    backend: Backend
    #: Why this backend fits the models (the ``model_backend`` choice).
    backend_reason: str
    #: The per-user table as modelled (sorted by id): id, label and feature columns.
    table: pd.DataFrame | None = None
    #: Out-of-fold predictions of the training users (never the held-out ones): for every model and CV repeat,
    #: each training user's probability from the fold in which the user was scored (``userId``, ``label``,
    #: ``probability``, ``model``, ``repeat``). What calibration is fit on.
    validation: pd.DataFrame | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        """Decision threshold of every model and baseline (chosen without test users)."""
        return dict(zip(self.test["model"], self.test["threshold"], strict=True))


def compare_models(
    features: DataFrame,
    id_col: str = "userId",
    label_col: str = "churn",
    models: Sequence[str] = tuple(MODEL_NAMES),
    seed: int = 42,
    test_fraction: float = 0.2,
    cv_folds: int = 5,
    cv_repeats: int = 3,
    tuning_folds: int = 3,
    parallelism: int = 2,
    baseline_feature: str = "songs",
    model_backend: str = "auto",
    local_model_max_rows: int = 1_000_000,
) -> Comparison:
    """Tune, compare (repeated CV), refit and test ``models`` and the baselines on a per-user table.

    ``model_backend``: ``sklearn``, ``spark``, or ``auto`` (sklearn up to ``local_model_max_rows`` users).
    """
    check_parameters(models, test_fraction, cv_folds, cv_repeats, tuning_folds)
    check_backend(model_backend, local_model_max_rows)
    spec = feature_spec(features, id_col, label_col)
    # One row per user: small enough to split and check on the driver.
    table = features.select(id_col, label_col, *spec.columns).toPandas()
    check_table(table, spec, test_fraction, cv_folds, tuning_folds)
    table = table.sort_values(id_col, key=lambda s: s.astype(str), kind="mergesort").reset_index(drop=True)
    y = table[label_col].to_numpy(float)
    roles, groups = user_roles(y, test_fraction, cv_folds, cv_repeats, tuning_folds, seed)
    backend_name, backend_reason = choose_backend(model_backend, len(table), local_model_max_rows)
    backend: Backend = (
        SklearnBackend(table, roles, spec, seed, parallelism)
        if backend_name == "sklearn"
        else SparkBackend(features, table, roles, spec, seed, parallelism)
    )
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        tuning = _tune(backend, groups["tuning"], list(models))
        timings["tuning_s"] = time.perf_counter() - start

        start = time.perf_counter()
        rule = fit_rule(table.loc[roles[FINAL] == "fit"], spec, baseline_feature)
        fitted = backend.run(groups["cv"], [(m, tuning[m]["params"]) for m in models])
        folds = _cv_rows(fitted, table, roles, groups["cv"], spec, rule)
        timings["repeated_cv_s"] = time.perf_counter() - start

        start = time.perf_counter()
        final = backend.run([FINAL], [(m, tuning[m]["params"]) for m in models])
        timings["final_fit_s"] = time.perf_counter() - start
    finally:
        backend.close()

    train_mask, test_mask = (roles[FINAL] == "fit").to_numpy(), (roles[FINAL] == "test").to_numpy()
    test_rows, predictions, rule_thresholds = [], [], {}
    ids = table[id_col].astype(str).to_numpy()
    for fit in final:
        pred = fit.predictions.sort_values(ROW)
        threshold = tuning[fit.model]["threshold"]
        test_rows.append(_metric_row(fit.model, pred[LABEL], pred["probability"], threshold))
        predictions.append(_prediction_frame(ids[pred[ROW]], pred[LABEL], pred["probability"], threshold, fit.model))
    for name, (score, threshold) in baseline_scores(table, train_mask, test_mask, spec, rule).items():
        rule_thresholds[name] = threshold
        test_rows.append(_metric_row(name, y[test_mask], score, threshold))
        predictions.append(_prediction_frame(ids[test_mask], y[test_mask], score, threshold, name))

    fitted_models = {fit.model: backend.set_threshold(fit.fitted, tuning[fit.model]["threshold"]) for fit in final}
    feature_names = backend.feature_names(fitted_models[models[0]])
    return Comparison(
        spec=spec,
        parameters={
            "id_col": id_col,
            "label_col": label_col,
            "models": list(models),
            "seed": seed,
            "test_fraction": test_fraction,
            "cv_folds": cv_folds,
            "cv_repeats": cv_repeats,
            "tuning_folds": tuning_folds,
            "parallelism": parallelism,
            "baseline_feature": baseline_feature,
            "model_backend": model_backend,
            "local_model_max_rows": local_model_max_rows,
        },
        split={
            "users": len(y),
            "churners": int(y.sum()),
            "train_users": int(train_mask.sum()),
            "train_churners": int(y[train_mask].sum()),
            "test_users": int(test_mask.sum()),
            "test_churners": int(y[test_mask].sum()),
            "cv_fit_users": int((roles[groups["cv"][0]] == "fit").sum()),
            "cv_valid_users": int((roles[groups["cv"][0]] == "valid").sum()),
            "cv_test_users": int((roles[groups["cv"][0]] == "test").sum()),
        },
        folds=folds,
        test=pd.DataFrame(test_rows),
        predictions=pd.concat(predictions, ignore_index=True),
        models=fitted_models,
        tuning=tuning,
        rule=rule,
        rule_thresholds=rule_thresholds,
        importance=_importance(backend, fitted_models, feature_names),
        feature_names=feature_names,
        timings=timings,
        fit_seconds={fit.model: fit.seconds for fit in final},
        chosen=choose_model(folds, models),
        backend=backend,
        backend_reason=backend_reason,
        table=table,
        validation=_out_of_fold(fitted, groups["cv"], cv_folds, ids),
    )


def choose_model(folds: pd.DataFrame, models: Sequence[str]) -> str:
    """The model (never a baseline) with the highest mean CV churn-class F1; ties go to the higher PR-AUC."""
    ranked = (
        cv_summary(folds).loc[list(models)].sort_values(["f1_mean", "pr_auc_mean"], ascending=False, kind="mergesort")
    )
    return str(ranked.index[0])


def _tune(backend: Backend, splits: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """Best grid point per model by out-of-fold PR-AUC, and the F1-best threshold on those predictions."""
    tasks = [(name, params) for name in models for params in backend.grid(name)]
    fitted = backend.run(splits, tasks)
    result: dict[str, dict[str, Any]] = {}
    for name in models:
        scores = []
        for params in backend.grid(name):
            oof = pd.concat(
                [
                    f.predictions[f.predictions[ROLE] == "valid"]
                    for f in fitted
                    if f.model == name and f.params == params
                ]
            )
            threshold = best_f1_threshold(oof[LABEL], oof["probability"])
            metrics = classification_metrics(oof[LABEL], oof["probability"], threshold)
            scores.append({"params": params, "threshold": threshold, "pr_auc": metrics["pr_auc"], "f1": metrics["f1"]})
        best = max(scores, key=lambda s: (s["pr_auc"], s["f1"]))
        result[name] = {"params": best["params"], "threshold": best["threshold"], "grid": scores}
    return result


def _metric_row(model: str, y: object, score: object, threshold: float) -> dict[str, Any]:
    y_arr, s_arr = np.asarray(y, float), np.asarray(score, float)
    return {
        "model": model,
        "threshold": threshold,
        **classification_metrics(y_arr, s_arr, threshold),
        **confusion_counts(y_arr, (s_arr >= threshold).astype(float)),
        "users": len(y_arr),
    }


def _prediction_frame(ids: object, y: object, score: object, threshold: float, model: str) -> pd.DataFrame:
    score = np.asarray(score, float)
    return pd.DataFrame(
        {
            "userId": ids,
            "label": np.asarray(y, int),
            "probability": score,
            "prediction": (score >= threshold).astype(int),
            "model": model,
        }
    )


def _out_of_fold(fitted: list[Fitted], splits: list[str], cv_folds: int, ids: np.ndarray) -> pd.DataFrame:
    """Each training user's out-of-fold probability per model and CV repeat (``splits``, repeat by repeat)."""
    repeat = {split: i // cv_folds for i, split in enumerate(splits)}
    frames = []
    for fit in fitted:
        if fit.split in repeat:
            test = fit.predictions[fit.predictions[ROLE] == "test"]
            frames.append(
                pd.DataFrame(
                    {
                        "userId": ids[test[ROW].to_numpy()],
                        "label": test[LABEL].astype(int),
                        "probability": test["probability"].astype(float),
                        "model": fit.model,
                        "repeat": repeat[fit.split],
                    }
                )
            )
    order = ["model", "repeat", "userId"]
    return pd.concat(frames, ignore_index=True).sort_values(order, kind="mergesort", ignore_index=True)


def _cv_rows(
    fitted: list[Fitted],
    table: pd.DataFrame,
    roles: pd.DataFrame,
    splits: list[str],
    spec: FeatureSpec,
    rule: RuleBaseline,
) -> pd.DataFrame:
    """Per-fold metrics of every model (threshold from the fold's validation part) and baseline."""
    rows = []
    for fit in fitted:
        pred = fit.predictions
        valid, test = pred[pred[ROLE] == "valid"], pred[pred[ROLE] == "test"]
        threshold = best_f1_threshold(valid[LABEL], valid["probability"])
        rows.append({"split": fit.split, **_metric_row(fit.model, test[LABEL], test["probability"], threshold)})
    y = table[spec.label_col].to_numpy(float)
    for split in splits:
        train = roles[split].isin(["fit", "valid"]).to_numpy()
        test = (roles[split] == "test").to_numpy()
        for name, (score, threshold) in baseline_scores(table, train, test, spec, rule).items():
            rows.append({"split": split, **_metric_row(name, y[test], score, threshold)})
    folds = pd.DataFrame(rows)
    parts = folds["split"].str.extract(r"__cv(\d+)_(\d+)").astype(int)
    return folds.assign(repeat=parts[0], fold=parts[1]).sort_values(["model", "repeat", "fold"], kind="mergesort")


def cv_summary(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample sd over CV folds of each metric, one row per model (``<metric>_mean``/``_sd``)."""
    grouped = folds.groupby("model", sort=False)[list(METRICS)]
    summary = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_sd"))
    order = [m for m in (*MODEL_NAMES, *BASELINE_NAMES) if m in summary.index]
    return summary.loc[order, [f"{m}_{s}" for m in METRICS for s in ("mean", "sd")]]


def format_summary(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The CV summary as 'mean ± sd' strings, one column per metric."""
    return pd.DataFrame(
        {
            m: [
                f"{a:.{digits}f} ± {b:.{digits}f}"
                for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_sd"], strict=True)
            ]
            for m in METRICS
        },
        index=summary.index,
    )


def verdict(result: Comparison) -> str:
    """Which model wins on mean CV churn-class F1, and whether its lead exceeds the fold-to-fold spread.

    A lead counts as clear when it exceeds the sd of the paired per-fold differences (same folds for all).
    """
    per_fold = result.folds.pivot_table(index="split", columns="model", values="f1")
    summary = cv_summary(result.folds)
    win = result.chosen
    lines = [
        f"Chosen model: {MODEL_NAMES[win]} ({win}), mean CV churn-class F1 "
        f"{summary.at[win, 'f1_mean']:.3f} ± {summary.at[win, 'f1_sd']:.3f}, PR-AUC "
        f"{summary.at[win, 'pr_auc_mean']:.3f} ± {summary.at[win, 'pr_auc_sd']:.3f}."
    ]
    others = [m for m in summary.index if m != win]
    ranked_models = [m for m in summary.sort_values("f1_mean", ascending=False).index if m in MODEL_NAMES and m != win]
    compare_to = ranked_models[:1] + [m for m in others if m in BASELINE_NAMES]
    for other in compare_to:
        diff = per_fold[win] - per_fold[other]
        spread = float(diff.std(ddof=1))
        clear = diff.mean() > spread
        role = "runner-up" if other in MODEL_NAMES else "baseline"
        name = MODEL_NAMES.get(other) or BASELINE_NAMES[other]
        lines.append(
            f"vs {role} {name} ({other}, F1 {summary.at[other, 'f1_mean']:.3f}): difference {diff.mean():+.3f}, "
            f"sd of per-fold differences {spread:.3f} -> "
            + ("larger than the spread (a clear win)." if clear else "within the spread (not a clear win).")
        )
    test = result.test.set_index("model")
    lines.append(
        f"Held-out test ({result.split['test_users']} users, {result.split['test_churners']} churners): "
        f"F1 {test.at[win, 'f1']:.3f}, PR-AUC {test.at[win, 'pr_auc']:.3f}, ROC-AUC "
        f"{test.at[win, 'roc_auc']:.3f} at threshold {test.at[win, 'threshold']:.3f}."
    )
    return "\n".join(lines)


def _importance(backend: Backend, fitted: dict[str, Any], names: list[str]) -> pd.DataFrame:
    """Per model and feature: |standardised coefficient| (LR, sign in ``coefficient``) or tree importance."""
    frames = []
    for name, model in fitted.items():
        importance, coef = backend.importance(name, model)
        frame = pd.DataFrame(
            {"feature": names, "importance": importance, "coefficient": np.nan if coef is None else coef}
        )
        frame = frame.sort_values("importance", ascending=False, kind="mergesort")
        frames.append(frame.assign(model=name, rank=np.arange(1, len(frame) + 1)))
    return pd.concat(frames, ignore_index=True)[["model", "feature", "importance", "coefficient", "rank"]]

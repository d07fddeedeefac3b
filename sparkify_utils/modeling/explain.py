"""Why a user is at risk: the chosen model scores the active users, and each score is explained.

The at-risk list (``at_risk_users.csv``) holds every user of the scoring table, riskiest first, with the
at-risk flag at the chosen threshold and the features that push the user's score up most.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.stats import spearmanr

from sparkify_utils.artifacts import AT_RISK, FEATURES
from sparkify_utils.modeling.compare import Comparison
from sparkify_utils.modeling.reliability import Calibrator
from sparkify_utils.modeling.table import ModelInputError

#: Columns copied into ``at_risk_users.csv`` when present, first match wins.
LEVEL_COLUMNS = ("level", "current_level", "last_level")
RECENCY_COLUMNS = ("recency_days", "days_since_last_activity", "days_since_last_event", "days_inactive")
#: How many features explain each at-risk score.
TOP_FEATURES = 3
#: Columns of ``at_risk_users.csv`` beyond those its readers require: the model's raw score before calibration.
EXTRA_COLUMNS = ("score",)


@dataclass
class AtRiskList:
    """Active users scored by the chosen model (``table`` is what ``at_risk_users.csv`` holds)."""

    table: pd.DataFrame
    source: str
    note: str
    seconds: float
    level_column: str | None = None
    recency_column: str | None = None


def _pushes(result: Comparison, train: pd.DataFrame, scored: pd.DataFrame) -> np.ndarray:
    """How much each feature pushes each user's score up (users x features; a documented approximation).

    LR: coefficient x standardised value = the feature's exact share of the log-odds relative to the
    average training user. Trees: importance x robust z-score ((value - training median) / IQR, clipped
    to ±3) x the sign of the feature's Spearman correlation with the model's training probabilities.
    """
    backend, model = result.backend, result.models[result.chosen]
    X, X_train = np.stack(scored["x"].to_numpy()), np.stack(train["x"].to_numpy())
    importance, coef = backend.importance(result.chosen, model)
    scaling = backend.scaling(model)
    if coef is not None and scaling is not None:
        mean, std = scaling
        z = np.divide(X - mean, std, out=np.zeros_like(X), where=std > 0)
        return z * coef
    centre = np.median(X_train, axis=0)
    q75, q25 = np.percentile(X_train, [75, 25], axis=0)
    scale = np.where(q75 - q25 > 0, q75 - q25, X_train.std(axis=0))
    z = np.clip(np.divide(X - centre, scale, out=np.zeros_like(X), where=scale > 0), -3, 3)
    direction = np.array([
        0.0 if np.ptp(X_train[:, j]) == 0 else np.sign(np.nan_to_num(spearmanr(X_train[:, j], train["probability"])[0]))
        for j in range(X_train.shape[1])
    ])
    return z * importance * direction


def _describe(name: str, value: float, centre: float) -> str:
    if "=" in name:
        return name if value >= 0.5 else f"not {name}"
    return f"{name} ({'high' if value > centre else 'low'})"


def rank_at_risk(result: Comparison, scoring: DataFrame | None, source: str = "",
                 calibrator: Calibrator | None = None) -> AtRiskList:
    """Score every user of ``scoring`` with the chosen model: riskiest first, at-risk flag, top reasons.

    With a ``calibrator`` (fit on validation predictions, see :mod:`~sparkify_utils.modeling.decisions`),
    ``probability`` is the calibrated churn probability, ``score`` the model's raw one, and the at-risk flag
    uses the decision threshold mapped by the same calibrator.
    """
    start = time.perf_counter()
    columns = [*AT_RISK.columns, *EXTRA_COLUMNS]
    if scoring is None:
        where = f"at {source!r}" if source else "given (pass scoring_path to score a custom table)"
        return AtRiskList(pd.DataFrame(columns=columns), source, f"No scoring table {where}: nobody scored.",
                       time.perf_counter() - start)
    spec, id_col = result.spec, result.spec.id_col
    missing = [c for c in (id_col, *spec.columns) if c not in scoring.columns]
    if missing:
        raise ModelInputError(
            f"The scoring table lacks columns {missing} that the model uses; build it with the same "
            f"feature code as the training table (notebook {FEATURES}) or pass the matching scoring_path."
        )
    level_col = next((c for c in LEVEL_COLUMNS if c in scoring.columns), None)
    recency_col = next((c for c in RECENCY_COLUMNS if c in scoring.columns), None)
    model = result.models[result.chosen]
    scored = result.backend.vectors(model, scoring)
    extra = scoring.select(F.col(id_col).cast("string").alias("userId"),
                           *(F.col(c).cast("string").alias("level") for c in [level_col] if c),
                           *(F.col(c).cast("double").alias("recency_days") for c in [recency_col] if c)).toPandas()
    scored = scored.merge(extra, on="userId", how="left")
    threshold = result.thresholds[result.chosen]
    scored["score"] = scored["probability"]
    if calibrator is not None and len(scored):
        scored["probability"] = calibrator.transform(scored["score"])
        threshold = float(calibrator.transform([threshold])[0])
    scored["at_risk"] = (scored["probability"] >= threshold).astype(int)
    if len(scored):
        train = result.backend.vectors(model, result.backend.training_users())
        push = _pushes(result, train, scored)
        centre = np.median(np.stack(train["x"].to_numpy()), axis=0)
        X = np.stack(scored["x"].to_numpy())
        reasons = []
        for i, row in enumerate(push):
            top = [j for j in np.argsort(-row, kind="mergesort")[:TOP_FEATURES] if row[j] > 0]
            reasons.append("; ".join(_describe(result.feature_names[j], X[i, j], centre[j]) for j in top))
        scored["top_features"] = reasons
    # Calibration can tie users (isotonic steps): the raw score orders them within a tie.
    table = scored.reindex(columns=columns).sort_values(["probability", "score", "userId"],
                                                        ascending=[False, False, True], kind="mergesort")
    scale = f" (probabilities calibrated: {calibrator.method})" if calibrator is not None else ""
    note = (f"{len(table)} users scored by {result.chosen}{scale}; {int(table['at_risk'].sum())} at or above the "
            f"threshold {threshold:.3f}; level from {level_col!r}, days since last activity from {recency_col!r}")
    return AtRiskList(table.reset_index(drop=True), source, note, time.perf_counter() - start, level_col, recency_col)

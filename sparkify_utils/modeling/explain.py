"""Why a user is at risk: the chosen model scores the active users, and each score is explained.

The at-risk list (``at_risk_users.csv``) holds every user of the scoring table, riskiest first, with the
at-risk flag at the chosen threshold and each user's three main reasons: the features with the largest exact
contributions to the model's output for that user (:func:`contributions`), signed.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.stats import spearmanr

from sparkify_utils.artifacts import AT_RISK, FEATURES
from sparkify_utils.modeling import spark_trees
from sparkify_utils.modeling.compare import Comparison
from sparkify_utils.modeling.reliability import Calibrator
from sparkify_utils.modeling.table import ModelInputError

#: Columns copied into ``at_risk_users.csv`` when present, first match wins.
LEVEL_COLUMNS = ("level", "current_level", "last_level")
RECENCY_COLUMNS = ("recency_days", "days_since_last_activity", "days_since_last_event", "days_inactive")
#: How many features explain each at-risk score.
TOP_FEATURES = 3
#: Columns of ``at_risk_users.csv`` beyond those its readers require: the model's raw score before calibration,
#: and each of the top reasons with its signed contribution.
EXTRA_COLUMNS = ("score", *(f"{kind}_{i}" for i in range(1, TOP_FEATURES + 1) for kind in ("reason", "contribution")))


@dataclass
class AtRiskList:
    """Active users scored by the chosen model (``table`` is what ``at_risk_users.csv`` holds)."""

    table: pd.DataFrame
    source: str
    note: str
    seconds: float
    level_column: str | None = None
    recency_column: str | None = None
    #: How the reasons were computed (method, output scale, exact or not).
    reasons: dict[str, object] | None = None


@dataclass
class Contributions:
    """Each feature's contribution to each user's model output (users x features) and what they add up to.

    When ``exact``, ``values.sum(axis=1) + base`` equals the chosen model's own output for every user, on the
    ``output`` scale (log-odds or probability).
    """

    values: np.ndarray
    base: float
    output: str
    method: str
    exact: bool


#: Largest difference allowed between a Spark tree model's output and its contributions plus the base value.
ADDITIVITY_TOLERANCE = 1e-6
#: scikit-learn tree models TreeSHAP explains exactly (the sklearn backend's dt, rf and gbt).
_SHAP_TREES = (
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
)


def contributions(
    result: Comparison, X: np.ndarray, X_train: np.ndarray, train_probability: object, probability: object = None
) -> Contributions:
    """Per-user feature contributions to the chosen model's output for the input vectors ``X``.

    * Logistic regression (both backends): coefficient x standardised value, in log-odds; the base is the
      intercept (the log-odds of a user at the training mean of every feature). Exact.
    * scikit-learn trees: TreeSHAP (``shap.TreeExplainer``): gradient boosting in log-odds, a decision tree or
      forest in probability; the base is the model's mean output over its training data. Exact.
    * Spark ML trees: TreeSHAP on the trees rebuilt from the model itself (:mod:`.spark_trees`, in classic mode
      and over Spark Connect): gradient boosting in log-odds, a decision tree or forest in probability; the
      base is the model's mean output over the training users (``X_train``). Exact: the rebuilt model must give
      Spark's probability (``train_probability`` on ``X_train``, ``probability`` on ``X`` when given) for
      every user, else the approximation below is used and ``method`` says why.
    * Otherwise an approximation (importance x robust z-score ((value - training median) / IQR, clipped to
      ±3) x the sign of the feature's Spearman correlation with the training probabilities), said so in
      ``method``.
    """
    backend, fitted = result.backend, result.models[result.chosen]
    estimator = backend.estimator(fitted)
    importance, coef = backend.importance(result.chosen, fitted)
    scaling = backend.scaling(fitted)
    if coef is not None and scaling is not None:
        mean, std = scaling
        z = np.divide(X - mean, std, out=np.zeros_like(X), where=std > 0)
        intercept = estimator.intercept_[0] if hasattr(estimator, "intercept_") else estimator.intercept
        return Contributions(z * coef, float(intercept), "log-odds", "coefficient × standardised value (exact)", True)
    if type(estimator).__name__ in _SHAP_TREES and type(estimator).__module__.startswith("sklearn"):
        values, base = _tree_shap(estimator, X)
        if values.ndim == 3:  # one slice per class: the churn class's, in probability
            return Contributions(values[..., 1], float(base[1]), "probability", "TreeSHAP (exact)", True)
        return Contributions(values, float(base[0]), "log-odds", "TreeSHAP (exact)", True)
    why = "not exact: run with model_backend=sklearn for TreeSHAP"
    if spark_trees.is_spark_tree(estimator):
        try:
            return _spark_tree_shap(estimator, X, X_train, train_probability, probability)
        except spark_trees.RebuildError as error:
            why = f"not exact: {error}"
    centre = np.median(X_train, axis=0)
    q75, q25 = np.percentile(X_train, [75, 25], axis=0)
    scale = np.where(q75 - q25 > 0, q75 - q25, X_train.std(axis=0))
    z = np.clip(np.divide(X - centre, scale, out=np.zeros_like(X), where=scale > 0), -3, 3)
    direction = np.array(
        [
            0.0
            if np.ptp(X_train[:, j]) == 0
            else np.sign(np.nan_to_num(spearmanr(X_train[:, j], train_probability)[0]))
            for j in range(X_train.shape[1])
        ]
    )
    return Contributions(
        z * importance * direction,
        float("nan"),
        "relative score",
        f"approximation for {backend.name} {result.chosen} (importance × robust z-score × direction; {why})",
        False,
    )


def _tree_shap(model: object, X: np.ndarray, check_additivity: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """TreeSHAP values (path-dependent) of a tree model for ``X``, and the base value(s)."""
    with warnings.catch_warnings():  # shap's plotting colours use matplotlib calls due for deprecation
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap  # noqa: PLC0415 - only the at-risk list needs it, and it takes a second to import

    explainer = shap.TreeExplainer(model)
    values = np.asarray(explainer.shap_values(X, check_additivity=check_additivity))
    return values, np.ravel(explainer.expected_value)


def _spark_tree_shap(
    estimator: object, X: np.ndarray, X_train: np.ndarray, train_probability: object, probability: object
) -> Contributions:
    """TreeSHAP on a Spark tree model rebuilt by :mod:`.spark_trees`, checked against Spark's own output."""
    ensemble = spark_trees.rebuild(estimator, X_train)
    ensemble.check(X_train, train_probability, "the training users")
    if probability is not None:
        ensemble.check(X, probability, "the scored users")
    values, base = _tree_shap(ensemble.shap_model(), X, check_additivity=False)  # checked below
    error = float(np.max(np.abs(values.sum(axis=1) + base[0] - ensemble.predict(X)), initial=0.0))
    if not error <= ADDITIVITY_TOLERANCE:
        raise spark_trees.RebuildError(f"TreeSHAP values miss the model's output by {error:.2e}")
    method = f"TreeSHAP on the Spark ML trees rebuilt from the model (exact, checked to {ADDITIVITY_TOLERANCE:g})"
    return Contributions(values, float(base[0]), ensemble.output, method, True)


def _describe(name: str, value: float, centre: float) -> str:
    if "=" in name:
        return name if value >= 0.5 else f"not {name}"
    return f"{name} ({'high' if value > centre else 'low'})"


def top_reasons(
    contrib: Contributions, X: np.ndarray, centre: np.ndarray, names: list[str], top: int = TOP_FEATURES
) -> pd.DataFrame:
    """Each user's ``top`` features by size of contribution, signed (+ raises the churn score, - lowers it):
    ``reason_<i>`` (feature and whether the user's value is high or low), ``contribution_<i>``, and
    ``top_features``, the three in one line."""
    columns: dict[str, list] = {f"{kind}_{i}": [] for i in range(1, top + 1) for kind in ("reason", "contribution")}
    lines = []
    for i, row in enumerate(contrib.values):
        order = [j for j in np.argsort(-np.abs(row), kind="mergesort")[:top] if row[j] != 0]
        parts = []
        for rank in range(1, top + 1):
            j = order[rank - 1] if rank <= len(order) else None
            reason = None if j is None else _describe(names[j], X[i, j], centre[j])
            columns[f"reason_{rank}"].append(reason)
            columns[f"contribution_{rank}"].append(None if j is None else float(row[j]))
            if j is not None:
                parts.append(f"{reason} {row[j]:+.3f}")
        lines.append("; ".join(parts))
    return pd.DataFrame({"top_features": lines, **columns})


def rank_at_risk(
    result: Comparison, scoring: DataFrame | None, source: str = "", calibrator: Calibrator | None = None
) -> AtRiskList:
    """Score every user of ``scoring`` with the chosen model: riskiest first, at-risk flag, top reasons.

    With a ``calibrator`` (fit on validation predictions, see :mod:`~sparkify_utils.modeling.decisions`),
    ``probability`` is the calibrated churn probability, ``score`` the model's raw one, and the at-risk flag
    uses the decision threshold mapped by the same calibrator.
    """
    start = time.perf_counter()
    columns = [*AT_RISK.columns, *EXTRA_COLUMNS]
    if scoring is None:
        where = f"at {source!r}" if source else "given (pass scoring_path to score a custom table)"
        return AtRiskList(
            pd.DataFrame(columns=columns),
            source,
            f"No scoring table {where}: nobody scored.",
            time.perf_counter() - start,
        )
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
    extra = scoring.select(
        F.col(id_col).cast("string").alias("userId"),
        *(F.col(c).cast("string").alias("level") for c in [level_col] if c),
        *(F.col(c).cast("double").alias("recency_days") for c in [recency_col] if c),
    ).toPandas()
    scored = scored.merge(extra, on="userId", how="left")
    threshold = result.thresholds[result.chosen]
    scored["score"] = scored["probability"]
    if calibrator is not None and len(scored):
        scored["probability"] = calibrator.transform(scored["score"])
        threshold = float(calibrator.transform([threshold])[0])
    scored["at_risk"] = (scored["probability"] >= threshold).astype(int)
    reasons = None
    if len(scored):
        train = result.backend.vectors(model, result.backend.training_users())
        X, X_train = np.stack(scored["x"].to_numpy()), np.stack(train["x"].to_numpy())
        contrib = contributions(result, X, X_train, train["probability"], scored["score"])
        scaling = result.backend.scaling(model)
        centre = scaling[0] if scaling is not None else np.median(X_train, axis=0)
        found = top_reasons(contrib, X, centre, result.feature_names)
        scored = pd.concat([scored.reset_index(drop=True), found], axis=1)
        reasons = {
            "method": contrib.method,
            "output": contrib.output,
            "exact": contrib.exact,
            "base_value": contrib.base,
        }
    # Calibration can tie users (isotonic steps): the raw score orders them within a tie.
    table = scored.reindex(columns=columns).sort_values(
        ["probability", "score", "userId"], ascending=[False, False, True], kind="mergesort"
    )
    scale = f" (probabilities calibrated: {calibrator.method})" if calibrator is not None else ""
    note = (
        f"{len(table)} users scored by {result.chosen}{scale}; {int(table['at_risk'].sum())} at or above the "
        f"threshold {threshold:.3f}; level from {level_col!r}, days since last activity from {recency_col!r}"
    )
    if reasons:
        note += (
            f". Reasons: the {TOP_FEATURES} largest signed contributions to the model's output "
            f"({reasons['output']}), by {reasons['method']}"
        )
    return AtRiskList(
        table.reset_index(drop=True), source, note, time.perf_counter() - start, level_col, recency_col, reasons
    )

"""Honest churn model comparison with pyspark.ml: tuning, repeated CV, held-out test, saved models, scoring.

Protocol (one row per user, every split stratified on the label and seeded):

1. A held-out test set (``test_fraction`` of the users) is put aside and used once, at the end.
2. Tuning: ``tuning_folds``-fold CV on the training users over a small grid per model; the grid point
   with the best out-of-fold PR-AUC wins, and the decision threshold is the one maximising churn-class
   F1 on those out-of-fold predictions (never on test users).
3. Comparison: ``cv_repeats`` x ``cv_folds`` stratified CV on the training users with the tuned
   hyper-parameters. In each fold one of the remaining folds is the validation part: the model is fit
   on the other folds and its threshold chosen on the validation part, so each fold costs one fit per
   model (scores are slightly conservative: fit on (k-2)/k of the training users).
4. Final: every model refit on all training users, scored once on the held-out test users, saved as a
   Spark ``PipelineModel``; the best by mean CV churn-class F1 (ties: PR-AUC) scores the active users.

Class imbalance is handled with instance weights computed from each fit's own training rows.
Hyper-parameters are tuned once on all training users (not nested inside the comparison folds), so the
CV table can flatter the tuned models slightly; the held-out numbers carry no such bias.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.feature import Imputer, OneHotEncoder, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.util import inheritable_thread_target
from scipy.stats import spearmanr

from sparkify_utils.config import RunPaths
from sparkify_utils.evaluate import METRICS, best_f1_threshold, classification_metrics, confusion_counts, roc_auc

#: Spark models compared, in display order, with their readable names.
MODEL_NAMES = {
    "lr": "logistic regression", "dt": "decision tree", "rf": "random forest", "gbt": "gradient-boosted trees",
}
#: Baselines every model must beat: always the majority class, and a one-feature threshold rule.
BASELINE_NAMES = {"majority": "always majority", "rule": "one-feature rule"}
#: Small grids (2 points each): Spark ML pays a fixed cost per fit, and 225 users cannot rank finer grids.
PARAM_GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {"regParam": [0.01, 0.1]},
    "dt": {"maxDepth": [3, 5]},
    "rf": {"maxDepth": [4, 8]},
    "gbt": {"maxDepth": [2, 3]},
}
#: String columns with more levels than this are reported, not one-hot encoded (too few users per level).
MAX_CATEGORY_LEVELS = 20
#: Columns copied into ``at_risk_users.csv`` when present, first match wins.
LEVEL_COLUMNS = ("level", "current_level", "last_level")
RECENCY_COLUMNS = ("recency_days", "days_since_last_activity", "days_since_last_event", "days_inactive")
#: How many features explain each at-risk score.
TOP_FEATURES = 3

_NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_LABEL, _WEIGHT, _FEATURES, _SCALED, _ROW, _ROLE = "__label", "__weight", "__features", "__scaled", "__row", "__role"
#: Partitions of the per-user modelling table (at most a few hundred thousand rows, so one is enough). With one
#: partition, tree split statistics and gradient sums are added in one fixed order instead of the order in which
#: tasks finish, so the same seed gives bit-identical models in local mode and on any cluster.
_MODEL_PARTITIONS = 1
_BOOL_SUFFIX, _INDEX_SUFFIX, _ONEHOT_SUFFIX, _FINAL = "__num", "__idx", "__ohe", "__final"


class ModelInputError(ValueError):
    """The table or parameters cannot be modelled; the message names the problem and the fix."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns of a per-user table are the id, the label and the (encodable) features."""

    id_col: str
    label_col: str
    numeric: tuple[str, ...]
    boolean: tuple[str, ...]
    categorical: tuple[str, ...]
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """All feature columns, as read from the table."""
        return [*self.numeric, *self.boolean, *self.categorical]


@dataclass(frozen=True)
class RuleBaseline:
    """The one-feature rule: flag a user when ``direction * value`` is high (direction -1: low values)."""

    feature: str
    direction: int
    reference: np.ndarray
    note: str

    def score(self, values: np.ndarray) -> np.ndarray:
        """Share of the rule's training users the value ranks above (0..1; a rank, not a probability)."""
        signed = self.direction * np.nan_to_num(np.asarray(values, float), nan=float(np.nanmedian(self.reference)))
        return np.searchsorted(np.sort(self.direction * self.reference), signed, side="right") / self.reference.size


@dataclass
class Comparison:
    """Everything the comparison produced; :func:`save_artifacts` writes it out."""

    spec: FeatureSpec
    parameters: dict[str, Any]
    split: dict[str, int]
    folds: pd.DataFrame
    test: pd.DataFrame
    predictions: pd.DataFrame
    models: dict[str, PipelineModel]
    tuning: dict[str, dict[str, Any]]
    rule: RuleBaseline
    rule_thresholds: dict[str, float]
    importance: pd.DataFrame
    feature_names: list[str]
    timings: dict[str, float]
    fit_seconds: dict[str, float]
    chosen: str
    train: DataFrame

    @property
    def thresholds(self) -> dict[str, float]:
        """Decision threshold of every model and baseline (chosen without test users)."""
        return dict(zip(self.test["model"], self.test["threshold"], strict=True))


@dataclass
class Scoring:
    """Active users scored by the chosen model (``table`` is what ``at_risk_users.csv`` holds)."""

    table: pd.DataFrame
    source: str
    note: str
    seconds: float
    level_column: str | None = None
    recency_column: str | None = None


# --- input -------------------------------------------------------------------------------------------


def load_table(spark: SparkSession, path: str) -> DataFrame:
    """Read a per-user table: CSV (header, inferred types) when the path ends in .csv, else Parquet."""
    try:
        if path.rstrip("/").lower().endswith(".csv"):
            return spark.read.csv(path, header=True, inferSchema=True)
        return spark.read.parquet(path)
    except AnalysisException as exc:
        raise ModelInputError(
            f"Cannot read the per-user table at {path!r} ({str(exc).splitlines()[0]}). Run notebook 02 "
            "first, or pass features_path/scoring_path pointing at a Parquet or .csv table."
        ) from exc


def try_load_table(spark: SparkSession, path: str) -> DataFrame | None:
    """:func:`load_table`, or None when nothing is at ``path``."""
    try:
        return load_table(spark, path)
    except ModelInputError:
        return None


def feature_spec(df: DataFrame, id_col: str = "userId", label_col: str = "churn") -> FeatureSpec:
    """Sort the columns of a per-user table into id, label and numeric/boolean/categorical features."""
    for column, param in ((id_col, "id_col"), (label_col, "label_col")):
        if column not in df.columns:
            raise ModelInputError(
                f"Column {column!r} is missing from the table (columns: {', '.join(df.columns)}); "
                f"pass {param}= naming the table's {'user id' if param == 'id_col' else '0/1 label'} column."
            )
    label_type = df.schema[label_col].dataType
    if not isinstance(label_type, (*_NUMERIC_TYPES, T.BooleanType)):
        raise ModelInputError(
            f"Label column {label_col!r} has type {label_type.simpleString()}; it must hold 0/1 numbers. "
            "Recode it (1 = churned, 0 = stayed) before modelling."
        )
    numeric, boolean, strings, bad = [], [], [], []
    for fld in df.schema.fields:
        if fld.name in (id_col, label_col):
            continue
        if isinstance(fld.dataType, _NUMERIC_TYPES):
            numeric.append(fld.name)
        elif isinstance(fld.dataType, T.BooleanType):
            boolean.append(fld.name)
        elif isinstance(fld.dataType, T.StringType):
            strings.append(fld.name)
        else:
            bad.append(f"{fld.name} ({fld.dataType.simpleString()})")
    if bad:
        raise ModelInputError(
            f"Feature columns {', '.join(bad)} cannot be encoded (only numbers, booleans and strings can). "
            "Drop them or turn them into numbers (e.g. a date into days since an event) before modelling."
        )
    ignored: dict[str, str] = {}
    categorical = []
    if strings:
        levels = df.agg(*(F.countDistinct(c).alias(c) for c in strings)).first().asDict()
        for column in strings:
            if levels[column] > MAX_CATEGORY_LEVELS:
                ignored[column] = f"{levels[column]} levels > {MAX_CATEGORY_LEVELS}: too many to one-hot encode"
            else:
                categorical.append(column)
    if not (numeric or boolean or categorical):
        raise ModelInputError(
            f"The table has no usable feature columns besides {id_col!r} and {label_col!r}; "
            "add numeric, boolean or low-cardinality string features."
        )
    return FeatureSpec(id_col, label_col, tuple(numeric), tuple(boolean), tuple(categorical), ignored)


def _check_parameters(models: Sequence[str], test_fraction: float, cv_folds: int, cv_repeats: int,
                      tuning_folds: int) -> None:
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise ModelInputError(f"models={list(models)!r}: choose one or more of {list(MODEL_NAMES)}.")
    if not 0 < test_fraction < 1:
        raise ModelInputError(f"test_fraction={test_fraction} must be between 0 and 1 (e.g. 0.2).")
    if cv_folds < 3:
        raise ModelInputError(f"cv_folds={cv_folds}: need at least 3 (one test, one validation, the rest to fit).")
    if cv_repeats < 1 or tuning_folds < 2:
        raise ModelInputError(f"cv_repeats={cv_repeats} must be >= 1 and tuning_folds={tuning_folds} >= 2.")


def check_table(table: pd.DataFrame, spec: FeatureSpec, test_fraction: float = 0.2, cv_folds: int = 5,
                tuning_folds: int = 3) -> None:
    """Check a collected per-user table: unique ids, 0/1 label, both classes in every fold, finite features."""
    ids, labels = table[spec.id_col], table[spec.label_col]
    if ids.isna().any() or ids.duplicated().any():
        dup = ids[ids.duplicated()].head(3).tolist()
        raise ModelInputError(
            f"Column {spec.id_col!r} must identify one row per user: found {int(ids.isna().sum())} null and "
            f"{int(ids.duplicated().sum())} repeated ids (e.g. {dup}). Aggregate to one row per user first."
        )
    values = set(pd.unique(labels.dropna().astype(float)))
    if labels.isna().any() or not values <= {0.0, 1.0}:
        odd = sorted(str(v) for v in values - {0.0, 1.0})[:5] + (["null"] if labels.isna().any() else [])
        raise ModelInputError(
            f"Label column {spec.label_col!r} must be 0/1 without nulls; found {', '.join(odd)}. "
            "Recode it (1 = churned, 0 = stayed) or pass the right label_col."
        )
    if len(values) < 2:
        raise ModelInputError(
            f"Label column {spec.label_col!r} has a single class ({int(next(iter(values)))} for all "
            f"{len(labels)} users): nothing to learn. Use a longer log or a different label window."
        )
    folds = max(cv_folds, tuning_folds)
    for cls, count in labels.astype(int).value_counts().items():
        train = count - max(1, round(count * test_fraction))
        if train < 2 * folds:
            raise ModelInputError(
                f"Only {count} users have {spec.label_col}={cls}: after the test split {train} remain, fewer "
                f"than 2 per fold for {folds} folds. Lower cv_folds/tuning_folds or test_fraction, or use "
                "more users."
            )
    numeric = table[[*spec.numeric, *spec.boolean]].astype(float)
    empty = [c for c in numeric if numeric[c].isna().all()]
    infinite = [c for c in numeric if np.isinf(numeric[c]).any()]
    if empty or infinite:
        raise ModelInputError(
            f"Feature columns {', '.join(empty + infinite)} are entirely null or hold infinite values; "
            "drop them or fix their computation (e.g. a ratio with a zero denominator) before modelling."
        )


# --- splits --------------------------------------------------------------------------------------------


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k-1) of each row: classes shuffled separately, then dealt out in turn."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=int)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == cls)) for cls in np.unique(y)])
    folds[order] = (np.arange(len(order)) + rng.integers(k)) % k
    return folds


def split_users(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean held-out mask: ``test_fraction`` of each class (at least one user), seeded."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        test[members[: max(1, round(len(members) * test_fraction))]] = True
    return test


def _roles(y: np.ndarray, test_fraction: float, cv_folds: int, cv_repeats: int, tuning_folds: int,
           seed: int) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One column per split giving each user's role in it: fit, valid, test or '' (not used).

    Columns are named ``__tune<t>``, ``__cv<repeat>_<fold>`` and ``__final`` (the held-out split).
    """
    held_out = split_users(y, test_fraction, seed)
    train = np.flatnonzero(~held_out)
    roles: dict[str, np.ndarray] = {}
    tune = stratified_folds(y[train], tuning_folds, seed + 1)
    for t in range(tuning_folds):
        roles[f"__tune{t}"] = np.full(len(y), "", dtype=object)
        roles[f"__tune{t}"][train] = np.where(tune == t, "valid", "fit")
    for r in range(cv_repeats):
        folds = stratified_folds(y[train], cv_folds, seed + 100 + r)
        for f in range(cv_folds):
            role = np.where(folds == f, "test", np.where(folds == (f + 1) % cv_folds, "valid", "fit"))
            roles[f"__cv{r}_{f}"] = np.full(len(y), "", dtype=object)
            roles[f"__cv{r}_{f}"][train] = role
    roles[_FINAL] = np.where(held_out, "test", "fit").astype(object)
    groups = {"tuning": [f"__tune{t}" for t in range(tuning_folds)],
              "cv": [f"__cv{r}_{f}" for r in range(cv_repeats) for f in range(cv_folds)]}
    return pd.DataFrame(roles), groups


# --- pipelines -----------------------------------------------------------------------------------------


def preprocessing_stages(spec: FeatureSpec) -> list[Any]:
    """Booleans to numbers, median imputation, one-hot strings (unseen/null kept), assemble ``__features``."""
    stages: list[Any] = []
    numeric = list(spec.numeric) + [c + _BOOL_SUFFIX for c in spec.boolean]
    if spec.boolean:
        casts = ", ".join(f"CAST(`{c}` AS DOUBLE) AS `{c}{_BOOL_SUFFIX}`" for c in spec.boolean)
        stages.append(SQLTransformer(statement=f"SELECT *, {casts} FROM __THIS__"))
    if numeric:
        # In place, so the assembled vector keeps the original feature names.
        stages.append(Imputer(inputCols=numeric, outputCols=numeric, strategy="median"))
    onehot = [c + _ONEHOT_SUFFIX for c in spec.categorical]
    if spec.categorical:
        indexed = [c + _INDEX_SUFFIX for c in spec.categorical]
        stages.append(StringIndexer(inputCols=list(spec.categorical), outputCols=indexed, handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=onehot, handleInvalid="keep"))
    stages.append(VectorAssembler(inputCols=numeric + onehot, outputCol=_FEATURES, handleInvalid="keep"))
    return stages


def model_stages(name: str, params: dict[str, Any], seed: int) -> list[Any]:
    """The model-specific stages after preprocessing: a scaler for LR, then the weighted classifier."""
    common = {"labelCol": _LABEL, "weightCol": _WEIGHT, "featuresCol": _FEATURES}
    if name == "lr":
        scaler = StandardScaler(inputCol=_FEATURES, outputCol=_SCALED, withMean=True, withStd=True)
        # Already standardised, so the coefficients are the standardised ones the report shows.
        lr = LogisticRegression(**{**common, "featuresCol": _SCALED}, maxIter=50, standardization=False, **params)
        return [scaler, lr]
    if name == "dt":
        return [DecisionTreeClassifier(**common, minInstancesPerNode=5, seed=seed, **params)]
    if name == "rf":
        return [RandomForestClassifier(**common, numTrees=50, featureSubsetStrategy="sqrt", minInstancesPerNode=2,
                                       seed=seed, **params)]
    if name == "gbt":
        # Few, larger steps: each boosting round is several Spark jobs, the main cost of the comparison.
        return [GBTClassifier(**common, maxIter=10, stepSize=0.3, subsamplingRate=0.8, seed=seed, **params)]
    raise ModelInputError(f"Unknown model {name!r}: choose from {list(MODEL_NAMES)}.")


def _grid(name: str) -> list[dict[str, Any]]:
    keys = list(PARAM_GRIDS[name])
    return [dict(zip(keys, values, strict=True)) for values in product(*(PARAM_GRIDS[name][k] for k in keys))]


def class_weights(y: np.ndarray) -> tuple[float, float]:
    """Instance weights (stayed, churned) that give both classes the same total weight."""
    n, n_pos = len(y), float(np.sum(y))
    return n / (2 * (n - n_pos)), n / (2 * n_pos)


@dataclass
class _Prepared:
    """One split's fitted preprocessing and its cached fit/eval rows."""

    name: str
    prep: PipelineModel
    fit: DataFrame
    evaluate: DataFrame


@dataclass
class _Fitted:
    split: str
    model: str
    params: dict[str, Any]
    pipeline: PipelineModel
    predictions: pd.DataFrame
    seconds: float


def _probability(df: DataFrame) -> DataFrame:
    return df.select(_ROW, _LABEL, _ROLE, vector_to_array("probability")[1].alias("probability"))


class _Runner:
    """Fits (split x model x params) tasks on a thread pool; Spark schedules the small jobs concurrently."""

    def __init__(self, data: DataFrame, roles: pd.DataFrame, labels: np.ndarray, spec: FeatureSpec, seed: int,
                 parallelism: int) -> None:
        self.data, self.roles, self.labels, self.spec = data, roles, labels, spec
        self.seed, self.parallelism = seed, max(1, parallelism)

    def _map(self, func: Any, items: list[Any]) -> list[Any]:
        # Spark Connect keeps the active session per thread: without this, pool threads have none.
        target = inheritable_thread_target(self.data.sparkSession)(func)
        with ThreadPoolExecutor(self.parallelism) as pool:
            return list(pool.map(target, items))

    def prepare(self, split: str) -> _Prepared:
        """Fit the preprocessing on the split's fit rows (weighted) and cache its fit/eval rows."""
        fit_mask = (self.roles[split] == "fit").to_numpy()
        w_neg, w_pos = class_weights(self.labels[fit_mask])
        fit = self.data.filter(F.col(split) == "fit").withColumn(
            _WEIGHT, F.when(F.col(_LABEL) == 1, F.lit(w_pos)).otherwise(F.lit(w_neg))
        )
        prep = Pipeline(stages=preprocessing_stages(self.spec)).fit(fit)
        fit_rows = prep.transform(fit).select(_ROW, _LABEL, _WEIGHT, _FEATURES).cache()
        eval_rows = (prep.transform(self.data.filter(F.col(split).isin("valid", "test")))
                     .select(_ROW, _LABEL, F.col(split).alias(_ROLE), _FEATURES).cache())
        return _Prepared(split, prep, fit_rows, eval_rows)

    def fit(self, prepared: _Prepared, name: str, params: dict[str, Any]) -> _Fitted:
        """Fit one model on a prepared split and collect its probabilities on the split's eval rows."""
        start = time.perf_counter()
        head = Pipeline(stages=model_stages(name, params, self.seed)).fit(prepared.fit)
        predictions = _probability(head.transform(prepared.evaluate)).toPandas()
        pipeline = PipelineModel(prepared.prep.stages + head.stages)
        return _Fitted(prepared.name, name, params, pipeline, predictions, time.perf_counter() - start)

    def run(self, splits: list[str], tasks: list[tuple[str, dict[str, Any]]]) -> list[_Fitted]:
        """Prepare every split, then fit every (split, model, params) combination."""
        prepared = self._map(self.prepare, splits)
        try:
            jobs = [(p, name, params) for p in prepared for name, params in tasks]
            return self._map(lambda job: self.fit(*job), jobs)
        finally:
            for p in prepared:
                p.fit.unpersist()
                p.evaluate.unpersist()


# --- baselines -----------------------------------------------------------------------------------------


def fit_rule(table: pd.DataFrame, spec: FeatureSpec, baseline_feature: str = "songs") -> RuleBaseline:
    """The one-feature rule on training users: ``baseline_feature`` (fewer -> churn) if present, else the
    numeric feature with the best univariate ROC-AUC (either direction)."""
    y = table[spec.label_col].to_numpy(float)
    candidates = [*spec.numeric, *spec.boolean]
    if baseline_feature in candidates:
        values = table[baseline_feature].to_numpy(float)
        return RuleBaseline(baseline_feature, -1, _filled(values),
                            f"fewer {baseline_feature} -> churn (threshold chosen on training users)")
    aucs = {c: roc_auc(y, _filled(table[c].to_numpy(float))) for c in candidates}
    aucs = {c: a for c, a in aucs.items() if not math.isnan(a)}
    if not aucs:
        raise ModelInputError(
            f"baseline_feature={baseline_feature!r} is not a numeric column and no numeric feature exists for "
            "the one-feature rule; pass baseline_feature= naming a numeric column."
        )
    best = max(aucs, key=lambda c: abs(aucs[c] - 0.5))
    direction = 1 if aucs[best] >= 0.5 else -1
    more = "more" if direction > 0 else "fewer"
    return RuleBaseline(
        best, direction, _filled(table[best].to_numpy(float)),
        f"{baseline_feature!r} is not a numeric column, so the rule uses {best!r} ({more} -> churn), the feature "
        f"with the best univariate ROC-AUC on training users ({aucs[best]:.2f})",
    )


def _filled(values: np.ndarray) -> np.ndarray:
    median = np.nanmedian(values) if np.isfinite(values).any() else 0.0
    return np.where(np.isnan(values), median, values)


def _baseline_scores(table: pd.DataFrame, train: np.ndarray, evaluate: np.ndarray, spec: FeatureSpec,
                     chosen_rule: RuleBaseline) -> dict[str, tuple[np.ndarray, float]]:
    """Scores on ``evaluate`` rows and thresholds of both baselines, fit on ``train`` rows only."""
    y = table[spec.label_col].to_numpy(float)
    prevalence = float(y[train].mean())
    values = table[chosen_rule.feature].to_numpy(float)
    rule = RuleBaseline(chosen_rule.feature, chosen_rule.direction, _filled(values[train]), chosen_rule.note)
    threshold = best_f1_threshold(y[train], rule.score(values[train]))
    return {"majority": (np.full(int(evaluate.sum()), prevalence), 0.5),
            "rule": (rule.score(values[evaluate]), threshold)}


# --- the comparison --------------------------------------------------------------------------------------


def compare_models(
    spark: SparkSession,
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
) -> Comparison:
    """Tune, compare (repeated CV), refit and test ``models`` and the baselines on a per-user table."""
    _check_parameters(models, test_fraction, cv_folds, cv_repeats, tuning_folds)
    spec = feature_spec(features, id_col, label_col)
    # One row per user: small enough to split and check on the driver.
    table = features.select(id_col, label_col, *spec.columns).toPandas()
    check_table(table, spec, test_fraction, cv_folds, tuning_folds)
    table = table.sort_values(id_col, key=lambda s: s.astype(str), kind="mergesort").reset_index(drop=True)
    y = table[label_col].to_numpy(float)
    roles, groups = _roles(y, test_fraction, cv_folds, cv_repeats, tuning_folds, seed)
    assignment = spark.createDataFrame(pd.concat([table[[id_col]], roles], axis=1).assign(**{_ROW: table.index}))
    # Tree bootstraps and GBT subsampling draw rows by partition and position, so the rows get a fixed
    # partitioning and order (see _MODEL_PARTITIONS).
    data = (features.join(F.broadcast(assignment), on=id_col)
            .withColumn(_LABEL, F.col(label_col).cast("double"))
            .repartition(_MODEL_PARTITIONS, _ROW).sortWithinPartitions(_ROW).cache())
    runner = _Runner(data, roles, y, spec, seed, parallelism)
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        tuning = _tune(runner, groups["tuning"], list(models), y)
        timings["tuning_s"] = time.perf_counter() - start

        start = time.perf_counter()
        rule = fit_rule(table.loc[roles[_FINAL] == "fit"], spec, baseline_feature)
        fitted = runner.run(groups["cv"], [(m, tuning[m]["params"]) for m in models])
        folds = _cv_rows(fitted, table, roles, groups["cv"], spec, rule)
        timings["repeated_cv_s"] = time.perf_counter() - start

        start = time.perf_counter()
        final = runner.run([_FINAL], [(m, tuning[m]["params"]) for m in models])
        timings["final_fit_s"] = time.perf_counter() - start
    finally:
        data.unpersist()

    train_mask, test_mask = (roles[_FINAL] == "fit").to_numpy(), (roles[_FINAL] == "test").to_numpy()
    test_rows, predictions, rule_thresholds = [], [], {}
    ids = table[id_col].astype(str).to_numpy()
    for fit in final:
        pred = fit.predictions.sort_values(_ROW)
        threshold = tuning[fit.model]["threshold"]
        test_rows.append(_metric_row(fit.model, pred[_LABEL], pred["probability"], threshold))
        predictions.append(_prediction_frame(ids[pred[_ROW]], pred[_LABEL], pred["probability"], threshold, fit.model))
    for name, (score, threshold) in _baseline_scores(table, train_mask, test_mask, spec, rule).items():
        rule_thresholds[name] = threshold
        test_rows.append(_metric_row(name, y[test_mask], score, threshold))
        predictions.append(_prediction_frame(ids[test_mask], y[test_mask], score, threshold, name))

    summary = cv_summary(folds)
    ranked = summary.loc[list(models)].sort_values(["f1_mean", "pr_auc_mean"], ascending=False)
    pipelines = {fit.model: fit.pipeline for fit in final}
    for name, pipeline in pipelines.items():
        _set_threshold(pipeline, tuning[name]["threshold"])
    feature_names = _feature_names(pipelines[models[0]], data, spec)
    return Comparison(
        spec=spec,
        parameters={"id_col": id_col, "label_col": label_col, "models": list(models), "seed": seed,
                    "test_fraction": test_fraction, "cv_folds": cv_folds, "cv_repeats": cv_repeats,
                    "tuning_folds": tuning_folds, "parallelism": parallelism, "baseline_feature": baseline_feature},
        split={"users": len(y), "churners": int(y.sum()), "train_users": int(train_mask.sum()),
               "train_churners": int(y[train_mask].sum()), "test_users": int(test_mask.sum()),
               "test_churners": int(y[test_mask].sum()),
               "cv_fit_users": int((roles[groups["cv"][0]] == "fit").sum()),
               "cv_valid_users": int((roles[groups["cv"][0]] == "valid").sum()),
               "cv_test_users": int((roles[groups["cv"][0]] == "test").sum())},
        folds=folds,
        test=pd.DataFrame(test_rows),
        predictions=pd.concat(predictions, ignore_index=True),
        models=pipelines,
        tuning=tuning,
        rule=rule,
        rule_thresholds=rule_thresholds,
        importance=_importance(pipelines, feature_names),
        feature_names=feature_names,
        timings=timings,
        fit_seconds={fit.model: fit.seconds for fit in final},
        chosen=str(ranked.index[0]),
        train=features.join(F.broadcast(assignment.filter(F.col(_FINAL) == "fit").select(id_col)), on=id_col),
    )


def _tune(runner: _Runner, splits: list[str], models: list[str], y: np.ndarray) -> dict[str, dict[str, Any]]:
    """Best grid point per model by out-of-fold PR-AUC, and the F1-best threshold on those predictions."""
    tasks = [(name, params) for name in models for params in _grid(name)]
    fitted = runner.run(splits, tasks)
    result: dict[str, dict[str, Any]] = {}
    for name in models:
        scores = []
        for params in _grid(name):
            oof = pd.concat([f.predictions[f.predictions[_ROLE] == "valid"] for f in fitted
                             if f.model == name and f.params == params])
            threshold = best_f1_threshold(oof[_LABEL], oof["probability"])
            metrics = classification_metrics(oof[_LABEL], oof["probability"], threshold)
            scores.append({"params": params, "threshold": threshold, "pr_auc": metrics["pr_auc"], "f1": metrics["f1"]})
        best = max(scores, key=lambda s: (s["pr_auc"], s["f1"]))
        result[name] = {"params": best["params"], "threshold": best["threshold"], "grid": scores}
    return result


def _metric_row(model: str, y: object, score: object, threshold: float) -> dict[str, Any]:
    y_arr, s_arr = np.asarray(y, float), np.asarray(score, float)
    return {"model": model, "threshold": threshold, **classification_metrics(y_arr, s_arr, threshold),
            **confusion_counts(y_arr, (s_arr >= threshold).astype(float)), "users": len(y_arr)}


def _prediction_frame(ids: object, y: object, score: object, threshold: float, model: str) -> pd.DataFrame:
    score = np.asarray(score, float)
    return pd.DataFrame({"userId": ids, "label": np.asarray(y, int), "probability": score,
                         "prediction": (score >= threshold).astype(int), "model": model})


def _cv_rows(fitted: list[_Fitted], table: pd.DataFrame, roles: pd.DataFrame, splits: list[str],
             spec: FeatureSpec, rule: RuleBaseline) -> pd.DataFrame:
    """Per-fold metrics of every model (threshold from the fold's validation part) and baseline."""
    rows = []
    for fit in fitted:
        pred = fit.predictions
        valid, test = pred[pred[_ROLE] == "valid"], pred[pred[_ROLE] == "test"]
        threshold = best_f1_threshold(valid[_LABEL], valid["probability"])
        rows.append({"split": fit.split, **_metric_row(fit.model, test[_LABEL], test["probability"], threshold)})
    y = table[spec.label_col].to_numpy(float)
    for split in splits:
        train = roles[split].isin(["fit", "valid"]).to_numpy()
        test = (roles[split] == "test").to_numpy()
        for name, (score, threshold) in _baseline_scores(table, train, test, spec, rule).items():
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
    return pd.DataFrame({m: [f"{a:.{digits}f} ± {b:.{digits}f}" for a, b in
                             zip(summary[f"{m}_mean"], summary[f"{m}_sd"], strict=True)]
                         for m in METRICS}, index=summary.index)


def verdict(result: Comparison) -> str:
    """Which model wins on mean CV churn-class F1, and whether its lead exceeds the fold-to-fold spread.

    A lead counts as clear when it exceeds the sd of the paired per-fold differences (same folds for all).
    """
    per_fold = result.folds.pivot_table(index="split", columns="model", values="f1")
    summary = cv_summary(result.folds)
    win = result.chosen
    lines = [f"Chosen model: {MODEL_NAMES[win]} ({win}), mean CV churn-class F1 "
             f"{summary.at[win, 'f1_mean']:.3f} ± {summary.at[win, 'f1_sd']:.3f}, PR-AUC "
             f"{summary.at[win, 'pr_auc_mean']:.3f} ± {summary.at[win, 'pr_auc_sd']:.3f}."]
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
    lines.append(f"Held-out test ({result.split['test_users']} users, {result.split['test_churners']} churners): "
                 f"F1 {test.at[win, 'f1']:.3f}, PR-AUC {test.at[win, 'pr_auc']:.3f}, ROC-AUC "
                 f"{test.at[win, 'roc_auc']:.3f} at threshold {test.at[win, 'threshold']:.3f}.")
    return "\n".join(lines)


# --- fitted-model details ---------------------------------------------------------------------------------


def _set_threshold(pipeline: PipelineModel, threshold: float) -> None:
    """Make the saved model's ``prediction`` column the at-risk flag (probability > threshold)."""
    model = pipeline.stages[-1]
    model.set(model.thresholds, [1.0 - threshold, threshold])
    if model.hasParam("threshold"):
        model.set(model.threshold, threshold)


def _feature_names(pipeline: PipelineModel, data: DataFrame, spec: FeatureSpec) -> list[str]:
    """Readable names of the assembled vector's slots (one-hot slots as ``column=value``)."""
    prep = PipelineModel(pipeline.stages[: len(preprocessing_stages(spec))])
    schema = prep.transform(data.limit(0)).schema[_FEATURES]
    attrs = [a for group in schema.metadata["ml_attr"]["attrs"].values() for a in group]
    names = [a["name"] for a in sorted(attrs, key=lambda a: a["idx"])]
    return [n.replace(_ONEHOT_SUFFIX + "_", "=").replace(_BOOL_SUFFIX, "").replace("=__unknown", "=(other)")
            for n in names]


def _importance(pipelines: dict[str, PipelineModel], names: list[str]) -> pd.DataFrame:
    """Per model and feature: |standardised coefficient| (LR, sign in ``coefficient``) or tree importance."""
    frames = []
    for name, pipeline in pipelines.items():
        model = pipeline.stages[-1]
        if name == "lr":
            coef = model.coefficients.toArray()
            frame = pd.DataFrame({"feature": names, "importance": np.abs(coef), "coefficient": coef})
        else:
            frame = pd.DataFrame({"feature": names, "importance": model.featureImportances.toArray(),
                                  "coefficient": np.nan})
        frame = frame.sort_values("importance", ascending=False, kind="mergesort")
        frames.append(frame.assign(model=name, rank=np.arange(1, len(frame) + 1)))
    return pd.concat(frames, ignore_index=True)[["model", "feature", "importance", "coefficient", "rank"]]


def _vectors(pipeline: PipelineModel, df: DataFrame, spec: FeatureSpec, id_col: str) -> pd.DataFrame:
    """Probability and the assembled (pre-scaling) feature vector of each user of a small table."""
    out = pipeline.transform(df).select(
        F.col(id_col).cast("string").alias("userId"),
        vector_to_array("probability")[1].alias("probability"),
        vector_to_array(_FEATURES).alias("x"),
    )
    return out.toPandas()


def _pushes(result: Comparison, train: pd.DataFrame, scored: pd.DataFrame) -> np.ndarray:
    """How much each feature pushes each user's score up (users x features; a documented approximation).

    LR: coefficient x standardised value = the feature's exact share of the log-odds relative to the
    average training user. Trees: importance x robust z-score ((value - training median) / IQR, clipped
    to ±3) x the sign of the feature's Spearman correlation with the model's training probabilities.
    """
    pipeline = result.models[result.chosen]
    X, X_train = np.stack(scored["x"].to_numpy()), np.stack(train["x"].to_numpy())
    model = pipeline.stages[-1]
    if result.chosen == "lr":
        scaler = pipeline.stages[-2]
        mean, std = scaler.mean.toArray(), scaler.std.toArray()
        z = np.divide(X - mean, std, out=np.zeros_like(X), where=std > 0)
        return z * model.coefficients.toArray()
    centre = np.median(X_train, axis=0)
    q75, q25 = np.percentile(X_train, [75, 25], axis=0)
    scale = np.where(q75 - q25 > 0, q75 - q25, X_train.std(axis=0))
    z = np.clip(np.divide(X - centre, scale, out=np.zeros_like(X), where=scale > 0), -3, 3)
    direction = np.array([
        0.0 if np.ptp(X_train[:, j]) == 0 else np.sign(np.nan_to_num(spearmanr(X_train[:, j], train["probability"])[0]))
        for j in range(X_train.shape[1])
    ])
    return z * model.featureImportances.toArray() * direction


def _describe(name: str, value: float, centre: float) -> str:
    if "=" in name:
        return name if value >= 0.5 else f"not {name}"
    return f"{name} ({'high' if value > centre else 'low'})"


def score_users(result: Comparison, scoring: DataFrame | None, source: str = "") -> Scoring:
    """Score every user of ``scoring`` with the chosen model: riskiest first, at-risk flag, top reasons."""
    start = time.perf_counter()
    columns = ["userId", "probability", "at_risk", "level", "recency_days", "top_features"]
    if scoring is None:
        where = f"at {source!r}" if source else "given (pass scoring_path to score a custom table)"
        return Scoring(pd.DataFrame(columns=columns), source, f"No scoring table {where}: nobody scored.",
                       time.perf_counter() - start)
    spec, id_col = result.spec, result.spec.id_col
    missing = [c for c in (id_col, *spec.columns) if c not in scoring.columns]
    if missing:
        raise ModelInputError(
            f"The scoring table lacks columns {missing} that the model uses; build it with the same "
            "feature code as the training table (notebook 02) or pass the matching scoring_path."
        )
    level_col = next((c for c in LEVEL_COLUMNS if c in scoring.columns), None)
    recency_col = next((c for c in RECENCY_COLUMNS if c in scoring.columns), None)
    pipeline = result.models[result.chosen]
    scored = _vectors(pipeline, scoring, spec, id_col)
    extra = scoring.select(F.col(id_col).cast("string").alias("userId"),
                           *(F.col(c).cast("string").alias("level") for c in [level_col] if c),
                           *(F.col(c).cast("double").alias("recency_days") for c in [recency_col] if c)).toPandas()
    scored = scored.merge(extra, on="userId", how="left")
    threshold = result.thresholds[result.chosen]
    scored["at_risk"] = (scored["probability"] >= threshold).astype(int)
    if len(scored):
        train = _vectors(pipeline, result.train, spec, id_col)
        push = _pushes(result, train, scored)
        centre = np.median(np.stack(train["x"].to_numpy()), axis=0)
        X = np.stack(scored["x"].to_numpy())
        reasons = []
        for i, row in enumerate(push):
            top = [j for j in np.argsort(-row, kind="mergesort")[:TOP_FEATURES] if row[j] > 0]
            reasons.append("; ".join(_describe(result.feature_names[j], X[i, j], centre[j]) for j in top))
        scored["top_features"] = reasons
    table = scored.reindex(columns=columns).sort_values(["probability", "userId"], ascending=[False, True])
    note = (f"{len(table)} users scored by {result.chosen}; {int(table['at_risk'].sum())} at or above the threshold "
            f"{threshold:.3f}; level from {level_col!r}, days since last activity from {recency_col!r}")
    return Scoring(table.reset_index(drop=True), source, note, time.perf_counter() - start, level_col, recency_col)


# --- artifacts -----------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value


def metrics_document(result: Comparison, scoring: Scoring | None = None) -> dict[str, Any]:
    """The content of ``metrics.json`` (see the module docstring for the protocol behind each number)."""
    summary = cv_summary(result.folds)
    test = result.test.set_index("model")
    models: dict[str, Any] = {}
    for name in summary.index:
        tuned = result.tuning.get(name, {})
        models[name] = {
            "kind": "baseline" if name in BASELINE_NAMES else "model",
            "label": MODEL_NAMES.get(name) or BASELINE_NAMES[name],
            "cv": {m: {"mean": summary.at[name, f"{m}_mean"], "sd": summary.at[name, f"{m}_sd"]} for m in METRICS},
            "test": test.loc[name].drop("threshold").to_dict(),
            "threshold": test.at[name, "threshold"],
            "params": tuned.get("params", {}),
            "tuning_grid": tuned.get("grid", []),
            "fit_seconds": result.fit_seconds.get(name),
        }
    models["rule"]["params"] = {"feature": result.rule.feature,
                                "direction": "higher -> churn" if result.rule.direction > 0 else "lower -> churn",
                                "note": result.rule.note}
    folds = {name: {m: group[m].tolist() for m in METRICS} for name, group in result.folds.groupby("model", sort=False)}
    document = {
        "chosen_model": result.chosen,
        "selection": "highest mean CV churn-class F1 (ties: PR-AUC) among the Spark models",
        "verdict": verdict(result),
        "parameters": result.parameters,
        "split": result.split,
        "features": {"numeric": list(result.spec.numeric), "boolean": list(result.spec.boolean),
                     "categorical": list(result.spec.categorical), "ignored": result.spec.ignored,
                     "encoded": result.feature_names},
        "models": models,
        "folds": folds,
        "timings": dict(result.timings),
    }
    if scoring is not None:
        document["timings"]["scoring_s"] = scoring.seconds
        document["scoring"] = {"source": scoring.source, "users": len(scoring.table),
                               "at_risk": int(scoring.table["at_risk"].sum()) if len(scoring.table) else 0,
                               "level_column": scoring.level_column, "recency_column": scoring.recency_column,
                               "note": scoring.note}
    return _clean(document)


def save_artifacts(result: Comparison, paths: RunPaths, scoring: Scoring | None = None) -> dict[str, str]:
    """Write the models (Spark), predictions/importance/at-risk CSVs and ``metrics.json`` (driver)."""
    written = {}
    for name, pipeline in result.models.items():
        written[f"model_{name}"] = paths.spark(f"models/{name}")
        pipeline.write().overwrite().save(written[f"model_{name}"])
    tables = {"predictions.csv": result.predictions, "feature_importance.csv": result.importance}
    if scoring is not None:
        tables["at_risk_users.csv"] = scoring.table
    for filename, table in tables.items():
        table.to_csv(paths.local(filename), index=False)
        written[filename] = str(paths.local(filename))
    document = metrics_document(result, scoring)
    document["saved"] = written
    paths.local("metrics.json").write_text(json.dumps(document, indent=2))
    written["metrics.json"] = str(paths.local("metrics.json"))
    return written

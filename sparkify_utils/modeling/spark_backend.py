"""The Spark ML backend: the per-user table as a cached one-partition DataFrame, fits as Spark ML pipelines.

For tables that do not fit in the driver's memory. Fits run on a thread pool so Spark schedules their
small jobs concurrently. Models are saved as Spark ``PipelineModel`` directories.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.feature import Imputer, OneHotEncoder, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from sparkify_utils.modeling.backend import Fitted, grid_points
from sparkify_utils.modeling.encoding import (
    BOOSTING_ROUNDS,
    BOOSTING_STEP,
    BOOSTING_SUBSAMPLE,
    FOREST_FEATURES,
    FOREST_TREES,
    IMPUTE_STRATEGY,
    MIN_LEAF_USERS,
    OTHER,
)
from sparkify_utils.modeling.splits import class_weights
from sparkify_utils.modeling.table import FINAL, LABEL, MODEL_NAMES, ROLE, ROW, WEIGHT, FeatureSpec, ModelInputError

#: Small grids (2 points each): Spark ML pays a fixed cost per fit, and 225 users cannot rank finer grids.
PARAM_GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {"regParam": [0.01, 0.1]},
    "dt": {"maxDepth": [3, 5]},
    "rf": {"maxDepth": [4, 8]},
    "gbt": {"maxDepth": [2, 3]},
}
_FEATURES, _SCALED = "__features", "__scaled"
#: Partitions of the per-user modelling table (at most a few hundred thousand rows, so one is enough). With one
#: partition, tree split statistics and gradient sums are added in one fixed order instead of the order in which
#: tasks finish, so the same seed gives bit-identical models in local mode and on any cluster.
_MODEL_PARTITIONS = 1
_BOOL_SUFFIX, _INDEX_SUFFIX, _ONEHOT_SUFFIX = "__num", "__idx", "__ohe"


def preprocessing_stages(spec: FeatureSpec) -> list[Any]:
    """The :mod:`~sparkify_utils.modeling.encoding` steps as Spark ML stages, assembled into ``__features``."""
    stages: list[Any] = []
    numeric = list(spec.numeric) + [c + _BOOL_SUFFIX for c in spec.boolean]
    if spec.boolean:
        casts = ", ".join(f"CAST(`{c}` AS DOUBLE) AS `{c}{_BOOL_SUFFIX}`" for c in spec.boolean)
        stages.append(SQLTransformer(statement=f"SELECT *, {casts} FROM __THIS__"))
    if numeric:
        # In place, so the assembled vector keeps the original feature names.
        stages.append(Imputer(inputCols=numeric, outputCols=numeric, strategy=IMPUTE_STRATEGY))
    onehot = [c + _ONEHOT_SUFFIX for c in spec.categorical]
    if spec.categorical:
        indexed = [c + _INDEX_SUFFIX for c in spec.categorical]
        stages.append(StringIndexer(inputCols=list(spec.categorical), outputCols=indexed, handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=onehot, handleInvalid="keep"))
    stages.append(VectorAssembler(inputCols=numeric + onehot, outputCol=_FEATURES, handleInvalid="keep"))
    return stages


def model_stages(name: str, params: dict[str, Any], seed: int) -> list[Any]:
    """The model-specific stages after preprocessing: a scaler for LR, then the weighted classifier."""
    common = {"labelCol": LABEL, "weightCol": WEIGHT, "featuresCol": _FEATURES}
    if name == "lr":
        scaler = StandardScaler(inputCol=_FEATURES, outputCol=_SCALED, withMean=True, withStd=True)
        # Already standardised, so the coefficients are the standardised ones the report shows.
        lr = LogisticRegression(**{**common, "featuresCol": _SCALED}, maxIter=50, standardization=False, **params)
        return [scaler, lr]
    if name == "dt":
        return [DecisionTreeClassifier(**common, minInstancesPerNode=MIN_LEAF_USERS[name], seed=seed, **params)]
    if name == "rf":
        return [
            RandomForestClassifier(
                **common,
                numTrees=FOREST_TREES,
                featureSubsetStrategy=FOREST_FEATURES,
                minInstancesPerNode=MIN_LEAF_USERS[name],
                seed=seed,
                **params,
            )
        ]
    if name == "gbt":
        # Few, larger steps: each boosting round is several Spark jobs, the main cost of the comparison.
        return [
            GBTClassifier(
                **common,
                maxIter=BOOSTING_ROUNDS,
                stepSize=BOOSTING_STEP,
                subsamplingRate=BOOSTING_SUBSAMPLE,
                minInstancesPerNode=MIN_LEAF_USERS[name],
                seed=seed,
                **params,
            )
        ]
    raise ModelInputError(f"Unknown model {name!r}: choose from {list(MODEL_NAMES)}.")


@dataclass
class _Prepared:
    """One split's fitted preprocessing and its cached fit/eval rows."""

    name: str
    prep: PipelineModel
    fit: DataFrame
    evaluate: DataFrame


def _probability(df: DataFrame) -> DataFrame:
    return df.select(ROW, LABEL, ROLE, vector_to_array("probability")[1].alias("probability"))


class SparkBackend:
    """Fits (split x model x params) tasks as Spark ML pipelines on the per-user table."""

    name = "spark"
    model_format = "Spark ML PipelineModel directory (pyspark.ml.PipelineModel.load)"
    saves_with_spark = True

    def __init__(
        self,
        features: DataFrame,
        table: pd.DataFrame,
        roles: pd.DataFrame,
        spec: FeatureSpec,
        seed: int,
        parallelism: int,
    ) -> None:
        id_col = spec.id_col
        spark = features.sparkSession
        assignment = spark.createDataFrame(pd.concat([table[[id_col]], roles], axis=1).assign(**{ROW: table.index}))
        # Tree bootstraps and GBT subsampling draw rows by partition and position, so the rows get a fixed
        # partitioning and order (see _MODEL_PARTITIONS).
        self.data = (
            features.join(F.broadcast(assignment), on=id_col)
            .withColumn(LABEL, F.col(spec.label_col).cast("double"))
            .repartition(_MODEL_PARTITIONS, ROW)
            .sortWithinPartitions(ROW)
            .cache()
        )
        self.features, self.assignment = features, assignment
        self.roles, self.labels, self.spec = roles, table[spec.label_col].to_numpy(float), spec
        self.seed, self.parallelism = seed, max(1, parallelism)

    def grid(self, model: str) -> list[dict[str, Any]]:
        """The 2-point grid of ``model`` (:data:`PARAM_GRIDS`)."""
        return grid_points(PARAM_GRIDS[model])

    def _map(self, func: Any, items: list[Any]) -> list[Any]:
        # Spark Connect keeps the active session per thread: without this, pool threads have none.
        target = inheritable_thread_target(self.data.sparkSession)(func)
        with ThreadPoolExecutor(self.parallelism) as pool:
            return list(pool.map(target, items))

    def _prepare(self, split: str) -> _Prepared:
        """Fit the preprocessing on the split's fit rows (weighted) and cache its fit/eval rows."""
        fit_mask = (self.roles[split] == "fit").to_numpy()
        w_neg, w_pos = class_weights(self.labels[fit_mask])
        fit = self.data.filter(F.col(split) == "fit").withColumn(
            WEIGHT, F.when(F.col(LABEL) == 1, F.lit(w_pos)).otherwise(F.lit(w_neg))
        )
        prep = Pipeline(stages=preprocessing_stages(self.spec)).fit(fit)
        fit_rows = prep.transform(fit).select(ROW, LABEL, WEIGHT, _FEATURES).cache()
        eval_rows = (
            prep.transform(self.data.filter(F.col(split).isin("valid", "test")))
            .select(ROW, LABEL, F.col(split).alias(ROLE), _FEATURES)
            .cache()
        )
        return _Prepared(split, prep, fit_rows, eval_rows)

    def _fit(self, prepared: _Prepared, name: str, params: dict[str, Any]) -> Fitted:
        """Fit one model on a prepared split and collect its probabilities on the split's eval rows."""
        start = time.perf_counter()
        head = Pipeline(stages=model_stages(name, params, self.seed)).fit(prepared.fit)
        predictions = _probability(head.transform(prepared.evaluate)).toPandas()
        pipeline = PipelineModel(prepared.prep.stages + head.stages)
        return Fitted(prepared.name, name, params, pipeline, predictions, time.perf_counter() - start)

    def run(self, splits: list[str], tasks: list[tuple[str, dict[str, Any]]]) -> list[Fitted]:
        """Prepare every split, then fit every (split, model, params) combination."""
        prepared = self._map(self._prepare, splits)
        try:
            jobs = [(p, name, params) for p in prepared for name, params in tasks]
            return self._map(lambda job: self._fit(*job), jobs)
        finally:
            for p in prepared:
                p.fit.unpersist()
                p.evaluate.unpersist()

    def feature_names(self, fitted: PipelineModel) -> list[str]:
        """Readable names of the assembled vector's slots (one-hot slots as ``column=value``)."""
        prep = PipelineModel(fitted.stages[: len(preprocessing_stages(self.spec))])
        schema = prep.transform(self.data.limit(0)).schema[_FEATURES]
        attrs = [a for group in schema.metadata["ml_attr"]["attrs"].values() for a in group]
        names = [a["name"] for a in sorted(attrs, key=lambda a: a["idx"])]
        return [
            n.replace(_ONEHOT_SUFFIX + "_", "=").replace(_BOOL_SUFFIX, "").replace("=__unknown", f"={OTHER}")
            for n in names
        ]

    def importance(self, model: str, fitted: PipelineModel) -> tuple[np.ndarray, np.ndarray | None]:
        """|standardised coefficient| and the coefficient (LR), or the trees' impurity importance."""
        estimator = fitted.stages[-1]
        if model == "lr":
            coef = estimator.coefficients.toArray()
            return np.abs(coef), coef
        return estimator.featureImportances.toArray(), None

    def scaling(self, fitted: PipelineModel) -> tuple[np.ndarray, np.ndarray] | None:
        """The StandardScaler's mean and sd before logistic regression (None for trees)."""
        scaler = fitted.stages[-2]
        if not hasattr(scaler, "std"):
            return None
        return scaler.mean.toArray(), scaler.std.toArray()

    def estimator(self, fitted: PipelineModel) -> Any:
        """The fitted Spark ML classification model, last stage of the pipeline."""
        return fitted.stages[-1]

    def set_threshold(self, fitted: PipelineModel, threshold: float) -> PipelineModel:
        """Make the saved model's ``prediction`` column the at-risk flag (probability > threshold)."""
        model = fitted.stages[-1]
        model.set(model.thresholds, [1.0 - threshold, threshold])
        if model.hasParam("threshold"):
            model.set(model.threshold, threshold)
        return fitted

    def vectors(self, fitted: PipelineModel, users: DataFrame) -> pd.DataFrame:
        """Probability and the assembled (pre-scaling) feature vector of each user of a small table."""
        out = fitted.transform(users).select(
            F.col(self.spec.id_col).cast("string").alias("userId"),
            vector_to_array("probability")[1].alias("probability"),
            vector_to_array(_FEATURES).alias("x"),
        )
        return out.toPandas()

    def training_users(self) -> DataFrame:
        """The features of the final fit's training users."""
        train_ids = self.assignment.filter(F.col(FINAL) == "fit").select(self.spec.id_col)
        return self.features.join(F.broadcast(train_ids), on=self.spec.id_col)

    def save(self, fitted: PipelineModel, path: str) -> str:
        """Write the pipeline (preprocessing + model) as a Spark ML directory; returns ``path``."""
        fitted.write().overwrite().save(path)
        return path

    def close(self) -> None:
        """Release the cached modelling table."""
        self.data.unpersist()

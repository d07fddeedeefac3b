"""Exact reasons for Spark ML trees: the rebuilt trees split as Spark does, and TreeSHAP on them adds up to the
Spark model's own output (log-odds for boosting, probability for a tree or a forest) for every user."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.functions import array_to_vector, vector_to_array

from sparkify_utils.modeling import explain, spark_trees
from sparkify_utils.modeling.spark_backend import SparkBackend
from sparkify_utils.modeling.table import FINAL, feature_spec

#: One tree as Spark prints it: a continuous split, and a 0/1 slot split on category 1 (left when x == 1).
DEBUG_STRING = """DecisionTreeClassificationModel: uid=dt_1, depth=2, numNodes=5, numClasses=2, numFeatures=2
  If (feature 0 <= 2.5)
   If (feature 1 in {1.0})
    Predict: 1.0
   Else (feature 1 not in {1.0})
    Predict: 0.0
  Else (feature 0 > 2.5)
   Predict: 0.0
"""


def test_debug_string_is_rebuilt_with_sparks_split_directions():
    ((weight, tree),) = spark_trees.parse_debug_string(DEBUG_STRING)
    assert weight == 1.0 and len(tree.left) == 5
    # On the threshold goes left, as in Spark; NaN goes right; the slot's x == 1 goes to the "in {1.0}" leaf.
    X = np.array([[2.5, 1.0], [2.5, 0.0], [2.5000001, 1.0], [np.nan, 1.0], [-1.0, 1.0]])
    assert tree.prediction[tree.leaves(X)].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    nodes, points = tree.leaf_points(2, np.array([False, True]))
    assert (tree.leaves(points) == nodes).all() and set(points[:, 1]) <= {0.0, 1.0}


def test_a_categorical_split_on_several_categories_is_refused():
    with pytest.raises(spark_trees.RebuildError, match="only 0/1 slots"):
        spark_trees.parse_debug_string(DEBUG_STRING.replace("{1.0}", "{1.0,2.0}"))


def _users(n: int, seed: int) -> pd.DataFrame:
    """Churn driven by days_inactive and the free level; songs and the flag are noise."""
    rng = np.random.default_rng(seed)
    days, level = rng.gamma(2.0, 3.0, n).round(1), rng.choice(["free", "paid"], n)
    churn = (rng.random(n) < 1 / (1 + np.exp(-(days - 8 + 1.5 * (level == "free"))))).astype(int)
    return pd.DataFrame(
        {
            "userId": [f"u{seed}_{i:03d}" for i in range(n)],
            "churn": churn,
            "songs": rng.normal(500, 100, n).round(),
            "flagged": rng.random(n) < 0.5,
            "days_inactive": days,
            "level": level,
        }
    )


@pytest.fixture(scope="module")
def spark_trees_fitted(spark):
    """dt, rf and gbt fitted by the Spark backend on 90 users (the final split's fit rows of 120)."""
    table = _users(120, seed=3)
    features = spark.createDataFrame(table)
    roles = pd.DataFrame({FINAL: np.where(np.arange(len(table)) < 90, "fit", "test")})
    backend = SparkBackend(features, table, roles, feature_spec(features), seed=1, parallelism=2)
    fits = backend.run([FINAL], [("dt", {"maxDepth": 3}), ("rf", {"maxDepth": 4}), ("gbt", {"maxDepth": 2})])
    yield backend, features, {f.model: f.fitted for f in fits}
    backend.close()


def _spark_output(spark, estimator, X: np.ndarray, output: str) -> np.ndarray:
    """The Spark model's own output for the vectors ``X``: 2 x margin (log-odds) or the churn probability."""
    frame = spark.createDataFrame(pd.DataFrame({"x": [row.tolist() for row in X]}), "x array<double>")
    scored = estimator.transform(frame.select(array_to_vector("x").alias(estimator.getFeaturesCol())))
    column = "rawPrediction" if output == "log-odds" else "probability"
    value = scored.select(vector_to_array(column)[1].alias("v")).toPandas()["v"].to_numpy()
    return 2 * value if output == "log-odds" else value


@pytest.mark.slow
@pytest.mark.parametrize(("model", "output"), [("dt", "probability"), ("rf", "probability"), ("gbt", "log-odds")])
def test_spark_tree_contributions_add_up_to_the_spark_models_output(spark, spark_trees_fitted, model, output):
    backend, features, models = spark_trees_fitted
    result = SimpleNamespace(backend=backend, models=models, chosen=model)
    fitted, estimator = models[model], models[model].stages[-1]
    train = backend.vectors(fitted, backend.training_users())
    users = backend.vectors(fitted, features)
    X_train, X = np.stack(train["x"].to_numpy()), np.stack(users["x"].to_numpy())
    # Users moved onto each continuous split's threshold, read from Spark's text here: they must go left.
    splits = re.findall(r"If \(feature (\d+) <= (\S+)\)", estimator.toDebugString)
    on_split = [np.where(np.arange(X.shape[1]) == int(f), float(t), X[i % len(X)]) for i, (f, t) in enumerate(splits)]
    X = np.vstack([X, on_split])
    contrib = explain.contributions(result, X, X_train, train["probability"], None)
    assert contrib.exact and contrib.output == output and "TreeSHAP" in contrib.method, contrib.method
    expected = _spark_output(spark, estimator, X, output)
    np.testing.assert_allclose(contrib.values.sum(axis=1) + contrib.base, expected, rtol=0, atol=1e-9)
    # The base is the mean output over the training users, as for scikit-learn's trees.
    assert contrib.base == pytest.approx(_spark_output(spark, estimator, X_train, output).mean(), abs=1e-9)
    if model == "gbt":  # (no Spark job to rebuild it) the scored users' probabilities are checked too
        wrong = explain.contributions(result, X[:5], X_train, train["probability"], np.full(5, 0.5))
        assert not wrong.exact and wrong.method.endswith("on the scored users)")

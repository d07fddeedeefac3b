"""Spark ML tree models rebuilt as plain arrays, so TreeSHAP explains them exactly in classic mode and over
Spark Connect alike (no py4j, no ``_java_obj``).

This module owns the rebuild of a fitted ``DecisionTreeClassificationModel``, ``RandomForestClassificationModel``
or ``GBTClassificationModel``:

* the structure of each tree from the model's ``toDebugString``, whose numbers Spark prints as exact
  (round-trip) doubles; a continuous split sends ``feature <= threshold`` left, as TreeSHAP does, and a split of
  a 0/1 (one-hot) slot on its category set becomes ``<= 0.5`` with the children swapped when needed;
* the leaf values, on the scale that adds up: a boosted tree's ``Predict`` value x 2 x its weight (log-odds,
  Spark's probability being ``1 / (1 + exp(-2 margin))``); a classification tree's churn probability, which the
  debug string does not show, by scoring one point built to land in each leaf with that tree's own model (a
  forest's tree contributes its probability / number of trees, as Spark's averaged votes do);
* the node covers, the training vectors routed through each tree;
* the check that the rebuilt model gives the Spark model's own probability, user by user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: The Spark ML classifiers rebuilt here (the spark backend's dt, rf and gbt).
SPARK_TREES = ("DecisionTreeClassificationModel", "RandomForestClassificationModel", "GBTClassificationModel")
#: Largest difference allowed between the rebuilt model's probability and Spark's before the rebuild is refused.
PROBABILITY_TOLERANCE = 1e-9
#: A leaf no training vector reaches (none should: every leaf held training rows when it was grown) still gets
#: this much cover, so TreeSHAP's cover ratios stay defined.
_EMPTY_COVER = 1e-9

_IF = re.compile(r"If \(feature (\d+) (<=|in) (.+)\)$")
_ELSE = re.compile(r"Else \(feature (\d+) (>|not in) (.+)\)$")
_PREDICT = re.compile(r"Predict: (\S+)$")
_TREE = re.compile(r"Tree \d+ \(weight (\S+)\):$")


class RebuildError(ValueError):
    """The Spark model could not be rebuilt exactly; the message says why."""


def is_spark_tree(estimator: Any) -> bool:
    """Whether ``estimator`` is a fitted Spark ML tree classifier this module rebuilds."""
    return type(estimator).__name__ in SPARK_TREES and type(estimator).__module__.startswith("pyspark.ml")


@dataclass
class Tree:
    """One tree as arrays indexed by node (pre-order; -1 for a leaf's children)."""

    left: np.ndarray
    right: np.ndarray
    missing: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    prediction: np.ndarray
    #: Whether the node splits a 0/1 slot on its category (rebuilt as ``<= 0.5``).
    categorical: np.ndarray

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row of ``X`` lands in (NaN goes where Spark sends it: the right child)."""
        node = np.zeros(len(X), dtype=np.int64)
        inner = self.left[node] >= 0
        while inner.any():
            rows, at = np.flatnonzero(inner), node[inner]
            x = X[rows, self.feature[at]]
            step = np.where(x <= self.threshold[at], self.left[at], self.right[at])
            node[rows] = np.where(np.isnan(x), self.missing[at], step)
            inner = self.left[node] >= 0
        return node

    def leaf_points(self, n_features: int, binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each leaf, its node index and a point that lands in it (every split on its path holds); the
        ``binary`` features (one-hot slots, split on as categories) take 0 or 1, as Spark expects."""
        nodes, points = [], []
        stack = [(0, np.full(n_features, -np.inf), np.full(n_features, np.inf))]
        while stack:
            node, low, high = stack.pop()
            if self.left[node] < 0:
                above = np.where(np.isfinite(low), low + np.maximum(1, np.abs(np.nan_to_num(low))), 0.0)
                point = np.where(np.isfinite(high), high, above)
                nodes.append(node)
                points.append(np.where(binary, (low >= 0.5).astype(float), point))
                continue
            f, t = self.feature[node], self.threshold[node]
            stack.append((self.left[node], low, np.where(np.arange(n_features) == f, min(high[f], t), high)))
            stack.append((self.right[node], np.where(np.arange(n_features) == f, max(low[f], t), low), high))
        return np.array(nodes), np.array(points)


def _number(text: str) -> float:
    return float(text.replace("Infinity", "inf"))


def _split(lines: list[str], at: int, nodes: list[list[Any]]) -> int:
    """Parse the subtree starting at ``lines[at]`` into ``nodes``; return the index of the line after it."""
    index = len(nodes)
    leaf = _PREDICT.match(lines[at])
    if leaf:
        nodes.append([-1, -1, -1, -2, -2.0, _number(leaf.group(1)), False])
        return at + 1
    split = _IF.match(lines[at])
    if not split:
        raise RebuildError(f"unexpected line in the model's debug string: {lines[at]!r}")
    feature, kind, value = int(split.group(1)), split.group(2), split.group(3)
    nodes.append([0, 0, 0, feature, 0.0, np.nan, kind == "in"])
    first = index + 1
    after = _split(lines, at + 1, nodes)
    if not _ELSE.match(lines[after]) or int(_ELSE.match(lines[after]).group(1)) != feature:
        raise RebuildError(f"expected the Else of feature {feature}, found {lines[after]!r}")
    second = len(nodes)
    end = _split(lines, after + 1, nodes)
    if kind == "<=":
        nodes[index][:5] = [first, second, second, feature, _number(value)]
        return end
    # A categorical split (feature in {set} -> first child): only 0/1 slots (one-hot), as <= 0.5.
    categories = {_number(c) for c in value.strip("{}").split(",") if c}
    if categories == {0.0}:
        nodes[index][:5] = [first, second, second, feature, 0.5]
    elif categories == {1.0}:
        nodes[index][:5] = [second, first, second, feature, 0.5]
    else:
        raise RebuildError(f"categorical split of feature {feature} on {value}: only 0/1 slots are supported")
    return end


def parse_debug_string(text: str) -> list[tuple[float, Tree]]:
    """Each tree of a Spark tree model's ``toDebugString``, with its weight (1.0 for a single tree)."""
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    trees: list[tuple[float, Tree]] = []
    at = 0
    while at < len(lines):
        weight = 1.0
        header = _TREE.match(lines[at])
        if header:
            weight, at = _number(header.group(1)), at + 1
        elif trees:
            raise RebuildError(f"unexpected line between trees: {lines[at]!r}")
        nodes: list[list[Any]] = []
        at = _split(lines, at, nodes)
        columns = list(zip(*nodes, strict=True))
        ints = [np.array(c, dtype=np.int64) for c in columns[:4]]
        floats = [np.array(c, dtype=float) for c in columns[4:6]]
        trees.append((weight, Tree(*ints, *floats, np.array(columns[6], dtype=bool))))
    if not trees:
        raise RebuildError("the model's debug string holds no tree")
    return trees


def _leaf_probabilities(models: list[Any], points: np.ndarray, own: bool) -> np.ndarray:
    """Churn probability of every point under each of ``models`` (points x models), in one Spark job.

    ``own``: the models are a forest's trees, fresh objects whose Python-side column names may not be those
    of their JVM or server side: they are set here. Otherwise (a pipeline's model) they are read, not changed.
    """
    from pyspark.ml.functions import array_to_vector, vector_to_array  # noqa: PLC0415
    from pyspark.sql import SparkSession  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415

    spark = SparkSession.active()
    frame = spark.createDataFrame(
        pd.DataFrame({"point": np.arange(len(points)), "x": [row.tolist() for row in points]}),
        "point long, x array<double>",
    )
    scored = None
    for i, model in enumerate(models):
        if own:
            model.setFeaturesCol("features").setProbabilityCol("probability")
        # One small plan per tree, in a union: chaining the trees' transforms nests the plans and is much slower.
        part = model.transform(frame.select("point", array_to_vector("x").alias(model.getFeaturesCol())))
        part = part.select(F.lit(i).alias("tree"), "point", vector_to_array(model.getProbabilityCol())[1].alias("p"))
        scored = part if scored is None else scored.unionByName(part)
    table = scored.coalesce(1).toPandas()
    out = np.full((len(points), len(models)), np.nan)
    out[table["point"].to_numpy(), table["tree"].to_numpy()] = table["p"].to_numpy(float)
    return out


@dataclass
class Ensemble:
    """A rebuilt Spark tree model: trees with leaf values on the ``output`` scale, which add up over trees."""

    trees: list[Tree]
    values: list[np.ndarray]
    covers: list[np.ndarray]
    output: str

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The model's output for each row of ``X`` on the ``output`` scale (log-odds or probability)."""
        return np.sum([v[t.leaves(X)] for t, v in zip(self.trees, self.values, strict=True)], axis=0)

    def probability(self, X: np.ndarray) -> np.ndarray:
        """The churn probability, as Spark computes it from the output."""
        out = self.predict(X)
        return 1 / (1 + np.exp(-out)) if self.output == "log-odds" else out

    def check(self, X: np.ndarray, probability: object, who: str) -> None:
        """Raise :class:`RebuildError` unless the rebuilt probability is Spark's for every row of ``X``."""
        expected = np.asarray(probability, dtype=float)
        error = float(np.max(np.abs(self.probability(X) - expected), initial=0.0))
        if not error <= PROBABILITY_TOLERANCE:
            raise RebuildError(f"the rebuilt trees differ from Spark's probability by {error:.2e} on {who}")

    def shap_model(self) -> dict[str, Any]:
        """The ensemble in shap's custom tree format (``shap.TreeExplainer`` explains its raw output)."""
        trees = []
        for tree, value, cover in zip(self.trees, self.values, self.covers, strict=True):
            trees.append(
                {
                    "children_left": tree.left,
                    "children_right": tree.right,
                    "children_default": tree.missing,
                    "features": tree.feature,
                    "thresholds": np.nan_to_num(tree.threshold),
                    "values": value.reshape(-1, 1),
                    "node_sample_weight": cover,
                }
            )
        return {"trees": trees, "base_offset": 0.0, "tree_output": "raw_value", "input_dtype": np.float64}


def _fill_inner(tree: Tree, leaf_value: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and covers of every node: leaves as given, inner nodes the cover-weighted mean / sum of children."""
    value, cover = leaf_value.astype(float).copy(), np.where(tree.left < 0, np.maximum(counts, _EMPTY_COVER), 0.0)
    for node in range(len(tree.left) - 1, -1, -1):  # pre-order: children come after their parent
        left, right = tree.left[node], tree.right[node]
        if left >= 0:
            cover[node] = cover[left] + cover[right]
            value[node] = (value[left] * cover[left] + value[right] * cover[right]) / cover[node]
    return value, cover


def _probability_leaves(model: Any, trees: list[Tree], n_features: int) -> list[np.ndarray]:
    """Each classification tree's leaf churn probabilities / number of trees (NaN at inner nodes)."""
    kind = type(model).__name__
    models = list(model.trees) if kind == "RandomForestClassificationModel" else [model]
    if len(models) != len(trees):
        raise RebuildError(f"{kind}: {len(models)} tree models but {len(trees)} trees in the debug string")
    binary = np.zeros(n_features, dtype=bool)
    for tree in trees:
        binary[tree.feature[tree.categorical]] = True
    found = [tree.leaf_points(n_features, binary) for tree in trees]
    points = np.concatenate([p for _, p in found])
    scored = _leaf_probabilities(models, points, own=len(models) > 1)
    values, start = [], 0
    for i, (tree, (nodes, _)) in enumerate(zip(trees, found, strict=True)):
        value = np.full(len(tree.left), np.nan)
        value[nodes] = scored[start : start + len(nodes), i]
        start += len(nodes)
        # Every tree scored every leaf's point (on its thresholds): the rebuilt tree must route them as Spark did.
        if not np.array_equal(value[tree.leaves(points)], scored[:, i]):
            raise RebuildError(f"{kind}: tree {i} routes points differently from Spark")
        values.append(value / len(trees))
    return values


def rebuild(model: Any, X_train: np.ndarray) -> Ensemble:
    """Rebuild a fitted Spark tree classifier from its debug string (and, for leaf probabilities, its trees);
    the node covers are the training vectors ``X_train`` routed through each tree."""
    kind = type(model).__name__
    if getattr(model, "numClasses", 2) != 2:
        raise RebuildError(f"{kind} has {model.numClasses} classes; only binary churn models are rebuilt")
    parsed = parse_debug_string(model.toDebugString)
    trees = [tree for _, tree in parsed]
    if kind == "GBTClassificationModel":
        leaf_values, output = [2 * weight * tree.prediction for weight, tree in parsed], "log-odds"
    else:
        leaf_values, output = _probability_leaves(model, trees, X_train.shape[1]), "probability"
    filled = [
        _fill_inner(tree, value, np.bincount(tree.leaves(X_train), minlength=len(tree.left)).astype(float))
        for tree, value in zip(trees, leaf_values, strict=True)
    ]
    return Ensemble(trees, [v for v, _ in filled], [c for _, c in filled], output)

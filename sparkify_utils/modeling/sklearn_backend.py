"""The scikit-learn backend: the per-user table as a pandas frame on the driver, fits as scikit-learn pipelines.

For per-user tables that fit in the driver's memory (``model_backend=auto`` up to ``local_model_max_rows``
users). A Spark ML fit costs about 1.6 s of scheduled jobs whatever the table's size; the same fit here
takes milliseconds on a few hundred users, so the whole protocol runs in seconds. Inputs follow
:mod:`~sparkify_utils.modeling.encoding`, like the Spark backend's; the (split x model x params) fits run
in parallel with joblib. Models are saved with skops and read back by :func:`load_model`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from joblib import Parallel, delayed
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

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
    SCALED_MODELS,
    slot_name,
)
from sparkify_utils.modeling.splits import class_weights
from sparkify_utils.modeling.table import FINAL, LABEL, MODEL_NAMES, ROLE, ROW, FeatureSpec, ModelInputError

#: The Spark backend's grids plus one point each (same parameter names and meaning): fits are cheap here,
#: but every extra point is one more chance for the tuning folds to flatter a model, so the grids stay small.
PARAM_GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {"regParam": [0.001, 0.01, 0.1]},
    "dt": {"maxDepth": [3, 5, 8]},
    "rf": {"maxDepth": [4, 8, 12]},
    "gbt": {"maxDepth": [2, 3, 4]},
}
#: File of a saved model inside its directory.
MODEL_FILE = "model.skops"
#: Types in a saved model beyond those skops trusts by default (scikit-learn's estimators are among those).
TRUSTED_TYPES = ("numpy.dtype", "sklearn.tree._tree.Tree")
#: Iterations of logistic regression's solver: enough to converge on standardised inputs (no warning).
_LR_MAX_ITER = 1000


def model_input(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The feature columns as the pipelines read them: numbers and booleans as floats, strings as objects,
    every missing value as NaN (a collected Spark table holds None)."""
    numeric = frame[[*spec.numeric, *spec.boolean]].astype(float)
    strings = frame[list(spec.categorical)].astype(object)
    return pd.concat([numeric, strings.where(strings.notna(), np.nan)], axis=1)


def estimator(name: str, params: dict[str, Any], seed: int, fit_rows: int) -> Any:
    """The seeded classifier of ``model`` with its tuned ``params`` (Spark ML names, see :data:`PARAM_GRIDS`)."""
    if name == "lr":
        # Spark ML minimises the weighted mean loss + regParam/2 |b|^2, scikit-learn C x the weighted sum of the
        # losses + 1/2 |b|^2; the class weights sum to the number of fit rows, so C = 1 / (regParam x rows).
        return LogisticRegression(C=1.0 / (params["regParam"] * fit_rows), max_iter=_LR_MAX_ITER)
    depth = params["maxDepth"]
    if name == "dt":
        return DecisionTreeClassifier(max_depth=depth, min_samples_leaf=MIN_LEAF_USERS[name], random_state=seed)
    if name == "rf":
        return RandomForestClassifier(
            n_estimators=FOREST_TREES,
            max_depth=depth,
            max_features=FOREST_FEATURES,
            min_samples_leaf=MIN_LEAF_USERS[name],
            random_state=seed,
            n_jobs=1,
        )
    if name == "gbt":
        # GradientBoostingClassifier, not HistGradientBoosting: depth-limited trees on exact splits with row
        # subsampling, as Spark's GBT, and no early stopping that would switch itself on above 10,000 rows.
        return GradientBoostingClassifier(
            n_estimators=BOOSTING_ROUNDS,
            learning_rate=BOOSTING_STEP,
            subsample=BOOSTING_SUBSAMPLE,
            max_depth=depth,
            min_samples_leaf=MIN_LEAF_USERS[name],
            random_state=seed,
        )
    raise ModelInputError(f"Unknown model {name!r}: choose from {list(MODEL_NAMES)}.")


def build_pipeline(spec: FeatureSpec, name: str, params: dict[str, Any], seed: int, fit_rows: int) -> Pipeline:
    """Preprocessing (:mod:`~sparkify_utils.modeling.encoding`), a scaler for the scaled models, the classifier."""
    parts: list[tuple[str, Any, list[str]]] = []
    numeric = [*spec.numeric, *spec.boolean]
    if numeric:
        # keep_empty_features: a column missing in every fit row keeps its slot, so names stay aligned.
        parts.append(("num", SimpleImputer(strategy=IMPUTE_STRATEGY, keep_empty_features=True), numeric))
    if spec.categorical:
        # Unseen levels get all-zero slots (Spark ML puts them in the OTHER slot instead).
        onehot = make_pipeline(
            SimpleImputer(strategy="constant", fill_value=OTHER),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        parts.append(("cat", onehot, list(spec.categorical)))
    steps: list[tuple[str, Any]] = [("prep", ColumnTransformer(parts, sparse_threshold=0))]
    if name in SCALED_MODELS:
        steps.append(("scale", StandardScaler()))
    steps.append(("model", estimator(name, params, seed, fit_rows)))
    return Pipeline(steps)


def _fit(
    X: pd.DataFrame,
    y: np.ndarray,
    role: np.ndarray,
    split: str,
    name: str,
    params: dict[str, Any],
    spec: FeatureSpec,
    seed: int,
) -> Fitted:
    """Fit one pipeline on the split's fit rows (class-weighted) and predict its valid/test rows."""
    start = time.perf_counter()
    fit = np.flatnonzero(role == "fit")
    w_neg, w_pos = class_weights(y[fit])
    pipeline = build_pipeline(spec, name, params, seed, len(fit))
    pipeline.fit(X.iloc[fit], y[fit], model__sample_weight=np.where(y[fit] == 1, w_pos, w_neg))
    rows = np.flatnonzero(np.isin(role, ("valid", "test")))
    predictions = pd.DataFrame(
        {ROW: rows, LABEL: y[rows], ROLE: role[rows], "probability": pipeline.predict_proba(X.iloc[rows])[:, 1]}
    )
    return Fitted(split, name, params, pipeline, predictions, time.perf_counter() - start)


def _pipeline(fitted: Any) -> Pipeline:
    """The fitted pipeline, also inside the thresholded model :meth:`SklearnBackend.set_threshold` returns."""
    return fitted.estimator if isinstance(fitted, FixedThresholdClassifier) else fitted


class SklearnBackend:
    """Fits (split x model x params) tasks as scikit-learn pipelines on the collected per-user table."""

    name = "sklearn"
    model_format = (
        f"skops file {MODEL_FILE} per model directory: a scikit-learn Pipeline in a "
        "FixedThresholdClassifier (predict = at-risk flag); read with "
        "sparkify_utils.modeling.sklearn_backend.load_model, input from model_input()"
    )
    saves_with_spark = False

    def __init__(
        self, table: pd.DataFrame, roles: pd.DataFrame, spec: FeatureSpec, seed: int, parallelism: int
    ) -> None:
        self.table, self.roles, self.spec = table, roles, spec
        self.X, self.labels = model_input(table, spec), table[spec.label_col].to_numpy(float)
        self.seed, self.parallelism = seed, max(1, parallelism)

    def grid(self, model: str) -> list[dict[str, Any]]:
        """The 3-point grid of ``model`` (:data:`PARAM_GRIDS`)."""
        return grid_points(PARAM_GRIDS[model])

    def run(self, splits: list[str], tasks: list[tuple[str, dict[str, Any]]]) -> list[Fitted]:
        """Fit every (split, model, params) combination, ``parallelism`` at a time."""
        jobs = [(split, name, params) for split in splits for name, params in tasks]
        # Processes, not threads: most of a fit on a few hundred rows is Python code holding the GIL.
        return Parallel(n_jobs=self.parallelism)(
            delayed(_fit)(self.X, self.labels, self.roles[split].to_numpy(), split, name, params, self.spec, self.seed)
            for split, name, params in jobs
        )

    def feature_names(self, fitted: Any) -> list[str]:
        """Readable names of the preprocessed slots: the numeric columns, then ``column=level``."""
        prep = _pipeline(fitted).named_steps["prep"]
        names = [*self.spec.numeric, *self.spec.boolean]
        if self.spec.categorical:
            onehot = prep.named_transformers_["cat"][-1]
            names += [
                slot_name(column, level)
                for column, levels in zip(self.spec.categorical, onehot.categories_, strict=True)
                for level in levels
            ]
        return names

    def importance(self, model: str, fitted: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """|standardised coefficient| and the coefficient (LR), or the trees' impurity importance."""
        estimator_ = _pipeline(fitted).named_steps["model"]
        if model == "lr":
            coef = estimator_.coef_[0]
            return np.abs(coef), coef
        return estimator_.feature_importances_, None

    def scaling(self, fitted: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The StandardScaler's mean and sd before logistic regression (None for trees)."""
        steps = _pipeline(fitted).named_steps
        return (steps["scale"].mean_, steps["scale"].scale_) if "scale" in steps else None

    def estimator(self, fitted: Any) -> Any:
        """The fitted scikit-learn classifier, last step of the pipeline."""
        return _pipeline(fitted).named_steps["model"]

    def set_threshold(self, fitted: Any, threshold: float) -> FixedThresholdClassifier:
        """The fitted pipeline whose ``predict`` is the at-risk flag (probability >= threshold); no refit."""
        return FixedThresholdClassifier(_pipeline(fitted), threshold=threshold, response_method="predict_proba")

    def vectors(self, fitted: Any, users: Any) -> pd.DataFrame:
        """Probability and the preprocessed (pre-scaling) vector of each user of a Spark or pandas table."""
        columns = [self.spec.id_col, *self.spec.columns]
        frame = users[columns] if isinstance(users, pd.DataFrame) else users.select(*columns).toPandas()
        out = pd.DataFrame({"userId": frame[self.spec.id_col].astype(str), "probability": np.nan, "x": None})
        if len(frame):  # scikit-learn refuses an empty table
            pipeline, X = _pipeline(fitted), model_input(frame, self.spec)
            out["probability"] = pipeline.predict_proba(X)[:, 1]
            out["x"] = list(pipeline.named_steps["prep"].transform(X))
        return out.reset_index(drop=True)

    def training_users(self) -> pd.DataFrame:
        """The rows of the final fit's training users."""
        return self.table.loc[(self.roles[FINAL] == "fit").to_numpy()]

    def save(self, fitted: Any, path: str) -> str:
        """Write the model as ``path/model.skops``; returns that file's path."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        sio.dump(fitted, directory / MODEL_FILE)
        return str(directory / MODEL_FILE)

    def close(self) -> None:
        """Nothing is cached outside the Python objects."""


def load_model(path: str | Path) -> Any:
    """Read a model :meth:`SklearnBackend.save` wrote (its directory or file), refusing unexpected types."""
    file = Path(path)
    file = file / MODEL_FILE if file.is_dir() else file
    if not file.is_file():
        raise ModelInputError(f"No saved model at {file}: pass a models/<name> directory of a scikit-learn run.")
    # skops builds only the types it is told to trust: those this backend writes, nothing else.
    unexpected = sorted(set(sio.get_untrusted_types(file=file)) - set(TRUSTED_TYPES))
    if unexpected:
        raise ModelInputError(
            f"{file} holds types this project never saves ({', '.join(unexpected)}), so it was not loaded. "
            "Load it with skops.io.load(..., trusted=[...]) only if you trust where it comes from."
        )
    return sio.load(file, trusted=list(TRUSTED_TYPES))

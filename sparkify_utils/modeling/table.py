"""The modelling input: a per-user table, its columns sorted into id, label and features, and its checks.

Also the names every modelling module shares (models, baselines, internal column names), kept here,
the lowest module of the sub-package, so the others import them without cycles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkify_utils.artifacts import FEATURES

#: Models compared, in display order, with their readable names.
MODEL_NAMES = {
    "lr": "logistic regression",
    "dt": "decision tree",
    "rf": "random forest",
    "gbt": "gradient-boosted trees",
}
#: Baselines every model must beat: always the majority class, and a one-feature threshold rule.
BASELINE_NAMES = {"majority": "always majority", "rule": "one-feature rule"}
#: String columns with more levels than this are reported, not one-hot encoded (too few users per level).
MAX_CATEGORY_LEVELS = 20
#: Internal column names of the modelling tables (double underscores keep them apart from features).
LABEL, WEIGHT, ROW, ROLE = "__label", "__weight", "__row", "__role"
#: The split column of the final fit: training users are "fit", held-out users "test".
FINAL = "__final"
_NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)


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


def load_table(spark: SparkSession, path: str) -> DataFrame:
    """Read a per-user table: CSV (header, inferred types) when the path ends in .csv, else Parquet."""
    try:
        if path.rstrip("/").lower().endswith(".csv"):
            return spark.read.csv(path, header=True, inferSchema=True)
        return spark.read.parquet(path)
    except AnalysisException as exc:
        raise ModelInputError(
            f"Cannot read the per-user table at {path!r} ({str(exc).splitlines()[0]}). Run notebook {FEATURES} "
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


def check_parameters(
    models: Sequence[str], test_fraction: float, cv_folds: int, cv_repeats: int, tuning_folds: int
) -> None:
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise ModelInputError(f"models={list(models)!r}: choose one or more of {list(MODEL_NAMES)}.")
    if not 0 < test_fraction < 1:
        raise ModelInputError(f"test_fraction={test_fraction} must be between 0 and 1 (e.g. 0.2).")
    if cv_folds < 3:
        raise ModelInputError(f"cv_folds={cv_folds}: need at least 3 (one test, one validation, the rest to fit).")
    if cv_repeats < 1 or tuning_folds < 2:
        raise ModelInputError(f"cv_repeats={cv_repeats} must be >= 1 and tuning_folds={tuning_folds} >= 2.")


def check_table(
    table: pd.DataFrame, spec: FeatureSpec, test_fraction: float = 0.2, cv_folds: int = 5, tuning_folds: int = 3
) -> None:
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

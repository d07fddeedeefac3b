"""How a per-user table becomes model input, and the fixed model settings, shared by every backend.

Both backends (:mod:`~sparkify_utils.modeling.spark_backend`, :mod:`~sparkify_utils.modeling.sklearn_backend`)
build their pipelines from these definitions, so a difference between their results comes from the
libraries, not from two versions of the preprocessing:

* numeric columns as they are, booleans as 0/1 numbers; a missing value becomes the median of the fit rows;
* string columns (few levels, see ``table.MAX_CATEGORY_LEVELS``) one-hot encoded, one slot per level of the
  fit rows, named ``column=level``; a missing value gets the level :data:`OTHER`;
* standardisation (fit rows' mean and sd) before the :data:`SCALED_MODELS` only, so their coefficients are
  comparable across features; trees do not need it;
* class weights from each fit's own rows (``splits.class_weights``), given to the classifier only.
"""

from __future__ import annotations

#: How missing numeric and boolean values are imputed (statistic of the fit rows).
IMPUTE_STRATEGY = "median"
#: One-hot level of a missing (and, in Spark ML, also of an unseen) string value.
OTHER = "(other)"
#: Models fit on standardised inputs (coefficients per sd).
SCALED_MODELS = ("lr",)
#: Fixed settings of each model, by meaning; the tuned one (named as Spark ML names it) is in each backend's grid.
#: Spark ML pays per boosting round, so boosting takes few, large steps; both backends use the same.
MIN_LEAF_USERS = {"dt": 5, "rf": 2, "gbt": 1}
FOREST_TREES, FOREST_FEATURES = 50, "sqrt"
BOOSTING_ROUNDS, BOOSTING_STEP, BOOSTING_SUBSAMPLE = 10, 0.3, 0.8


def slot_name(column: str, level: object) -> str:
    """Readable name of a one-hot slot: ``column=level``."""
    return f"{column}={level}"

"""What a model backend provides to the comparison, and which backend a run uses.

The comparison (:mod:`sparkify_utils.modeling.compare`) owns the protocol: splits, tuning, CV,
thresholds, metrics, verdict. A backend only fits ``(split, model, params)`` tasks on the per-user
table and answers questions about a fitted model, so every backend is compared the same way.
Two exist: scikit-learn on the driver (:mod:`~sparkify_utils.modeling.sklearn_backend`) for tables that
fit in its memory, and Spark ML (:mod:`~sparkify_utils.modeling.spark_backend`) for larger ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any, Protocol

import numpy as np
import pandas as pd

from sparkify_utils.modeling.table import ModelInputError

#: Values of the ``model_backend`` parameter.
BACKEND_CHOICES = ("auto", "sklearn", "spark")


@dataclass
class Fitted:
    """One fitted model: which split and parameters, the model itself, and its probabilities.

    ``predictions`` has one row per evaluated user of the split: ``__row`` (row of the per-user
    table), ``__label``, ``__role`` (valid or test) and ``probability`` of churn.
    """

    split: str
    model: str
    params: dict[str, Any]
    fitted: Any
    predictions: pd.DataFrame
    seconds: float


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a parameter grid ``{name: [values]}``, in a fixed order."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in product(*(grid[k] for k in keys))]


class Backend(Protocol):
    """The interface of a model backend (Spark ML or scikit-learn)."""

    name: str
    #: Format of the saved models (said in ``metrics.json``).
    model_format: str
    #: True when Spark writes the saved models (into ``spark_dir``); False when the driver writes local files.
    saves_with_spark: bool

    def grid(self, model: str) -> list[dict[str, Any]]:
        """The tuning grid of ``model``."""
        ...

    def run(self, splits: list[str], tasks: list[tuple[str, dict[str, Any]]]) -> list[Fitted]:
        """Fit every ``(model, params)`` task on every split; predictions on the split's valid/test users."""
        ...

    def feature_names(self, fitted: Any) -> list[str]:
        """Readable names of the model's input slots (one-hot slots as ``column=value``)."""
        ...

    def importance(self, model: str, fitted: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Per input slot: importance, and the standardised coefficient for linear models (else None)."""
        ...

    def scaling(self, fitted: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and sd of the standardisation before a linear model (None for trees)."""
        ...

    def estimator(self, fitted: Any) -> Any:
        """The fitted classifier itself, after the preprocessing and scaling (for exact per-user contributions)."""
        ...

    def set_threshold(self, fitted: Any, threshold: float) -> Any:
        """The model whose own predictions flag ``probability >= threshold`` (returned; may be the same object)."""
        ...

    def vectors(self, fitted: Any, users: Any) -> pd.DataFrame:
        """Per user of ``users`` (a Spark DataFrame; scikit-learn also takes pandas): ``userId``, ``probability``
        and ``x``, the input vector before any scaling."""
        ...

    def training_users(self) -> Any:
        """The training users of the final fit, as a table of this backend (for :meth:`vectors`)."""
        ...

    def save(self, fitted: Any, path: str) -> str:
        """Write a fitted model into the directory ``path`` (its library reads it back); returns what it wrote."""
        ...

    def close(self) -> None:
        """Release what the backend cached."""
        ...


def check_backend(model_backend: str, local_model_max_rows: int) -> None:
    """Reject a ``model_backend`` or ``local_model_max_rows`` value, naming the choices."""
    if model_backend not in BACKEND_CHOICES:
        raise ModelInputError(
            f"model_backend={model_backend!r} is not a backend: choose one of {list(BACKEND_CHOICES)} (auto picks "
            "sklearn when the per-user table has at most local_model_max_rows rows, else spark)."
        )
    if local_model_max_rows < 0:
        raise ModelInputError(f"local_model_max_rows={local_model_max_rows} must be >= 0 (e.g. 1000000).")


def choose_backend(model_backend: str, users: int, local_model_max_rows: int) -> tuple[str, str]:
    """The backend that models a table of ``users`` rows, and why (``auto``: scikit-learn up to the limit)."""
    check_backend(model_backend, local_model_max_rows)
    if model_backend != "auto":
        return model_backend, f"model_backend={model_backend} was set explicitly"
    if users <= local_model_max_rows:
        return "sklearn", (
            f"auto: {users} users <= local_model_max_rows={local_model_max_rows}, so the table is "
            "modelled in the driver's memory with scikit-learn"
        )
    return "spark", (
        f"auto: {users} users > local_model_max_rows={local_model_max_rows}, so the table is modelled with Spark ML"
    )

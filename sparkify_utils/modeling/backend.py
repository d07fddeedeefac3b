"""What a model backend provides to the comparison: fits on user splits, and what a fitted model can tell.

The comparison (:mod:`sparkify_utils.modeling.compare`) owns the protocol: splits, tuning, CV,
thresholds, metrics, verdict. A backend only fits ``(split, model, params)`` tasks on the per-user
table and answers questions about a fitted model, so every backend is compared the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any, Protocol

import numpy as np
import pandas as pd


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

    def set_threshold(self, fitted: Any, threshold: float) -> Any:
        """The model whose own predictions flag ``probability >= threshold`` (returned; may be the same object)."""
        ...

    def vectors(self, fitted: Any, users: Any) -> pd.DataFrame:
        """Per user of ``users`` (a table of this backend): ``userId``, ``probability`` and ``x``, the input vector."""
        ...

    def training_users(self) -> Any:
        """The training users of the final fit, as a table of this backend (for :meth:`vectors`)."""
        ...

    def save(self, fitted: Any, path: str) -> None:
        """Write a fitted model so that :func:`load` of the same backend reads it back."""
        ...

    def close(self) -> None:
        """Release what the backend cached."""
        ...

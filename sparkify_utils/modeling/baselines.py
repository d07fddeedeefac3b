"""The baselines every model must beat: always the majority class, and a one-feature threshold rule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sparkify_utils.modeling.metrics import best_f1_threshold, roc_auc
from sparkify_utils.modeling.table import FeatureSpec, ModelInputError


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


def fit_rule(table: pd.DataFrame, spec: FeatureSpec, baseline_feature: str = "songs") -> RuleBaseline:
    """The one-feature rule on training users: ``baseline_feature`` (fewer -> churn) if present, else the
    numeric feature with the best univariate ROC-AUC (either direction)."""
    y = table[spec.label_col].to_numpy(float)
    candidates = [*spec.numeric, *spec.boolean]
    if baseline_feature in candidates:
        values = table[baseline_feature].to_numpy(float)
        return RuleBaseline(
            baseline_feature,
            -1,
            _filled(values),
            f"fewer {baseline_feature} -> churn (threshold chosen on training users)",
        )
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
        best,
        direction,
        _filled(table[best].to_numpy(float)),
        f"{baseline_feature!r} is not a numeric column, so the rule uses {best!r} ({more} -> churn), the feature "
        f"with the best univariate ROC-AUC on training users ({aucs[best]:.2f})",
    )


def _filled(values: np.ndarray) -> np.ndarray:
    median = np.nanmedian(values) if np.isfinite(values).any() else 0.0
    return np.where(np.isnan(values), median, values)


def baseline_scores(
    table: pd.DataFrame, train: np.ndarray, evaluate: np.ndarray, spec: FeatureSpec, chosen_rule: RuleBaseline
) -> dict[str, tuple[np.ndarray, float]]:
    """Scores on ``evaluate`` rows and thresholds of both baselines, fit on ``train`` rows only."""
    y = table[spec.label_col].to_numpy(float)
    prevalence = float(y[train].mean())
    values = table[chosen_rule.feature].to_numpy(float)
    rule = RuleBaseline(chosen_rule.feature, chosen_rule.direction, _filled(values[train]), chosen_rule.note)
    threshold = best_f1_threshold(y[train], rule.score(values[train]))
    return {
        "majority": (np.full(int(evaluate.sum()), prevalence), 0.5),
        "rule": (rule.score(values[evaluate]), threshold),
    }

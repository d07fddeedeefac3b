"""Is a retention campaign worth its cost? Expected and realised profit of contacting the riskiest k users.

A contacted user costs ``contact_cost``; a contacted churner is kept with probability ``save_rate``,
worth ``churner_value``. With calibrated churn probabilities p, contacting a user is worth
``p * save_rate * churner_value - contact_cost`` in expectation, so contacting users in decreasing p
makes the expected profit curve rise while that is positive and fall after: its peak is the
profit-optimal k, and the probability there the profit-optimal threshold. On held-out users the same
ranking gives the realised profit (who actually churned).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class EconomicsError(ValueError):
    """A campaign parameter is out of range; the message names it and the allowed values."""


@dataclass(frozen=True)
class Economics:
    """The three campaign parameters (currency units per user)."""

    contact_cost: float
    churner_value: float
    save_rate: float

    def __post_init__(self) -> None:
        for name in ("contact_cost", "churner_value"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise EconomicsError(f"{name}={value!r} must be a positive number (e.g. {name}=1.0).")
        if not isinstance(self.save_rate, (int, float)) or not 0 <= self.save_rate <= 1:
            raise EconomicsError(
                f"save_rate={self.save_rate!r} must be a share between 0 and 1 (of contacted churners kept)."
            )

    @property
    def break_even_probability(self) -> float:
        """The churn probability above which contacting a user pays off in expectation."""
        gain = self.save_rate * self.churner_value
        return self.contact_cost / gain if gain else float("inf")


def profit_curve(probability: object, econ: Economics, y: object | None = None) -> pd.DataFrame:
    """Profit of contacting the k riskiest users, k = 0..n: expected (from ``probability``) and, given
    labels ``y``, realised. ``threshold`` is the probability of the k-th user (the lowest one contacted)."""
    p = np.asarray(probability, dtype=float).ravel()
    order = np.argsort(-p, kind="mergesort")
    p_sorted = p[order]
    gain = econ.save_rate * econ.churner_value
    curve = pd.DataFrame(
        {
            "k": np.arange(p.size + 1),
            "threshold": np.r_[np.inf, p_sorted],
            "expected_profit": np.r_[0.0, np.cumsum(p_sorted * gain - econ.contact_cost)],
        }
    )
    if y is not None:
        y_sorted = np.asarray(y, dtype=float).ravel()[order]
        if y_sorted.size != p.size:
            raise ValueError(f"labels ({y_sorted.size}) and probabilities ({p.size}) differ in length")
        curve["realised_profit"] = np.r_[0.0, np.cumsum(y_sorted * gain - econ.contact_cost)]
    return curve


def best_campaign(curve: pd.DataFrame, column: str = "expected_profit") -> dict[str, float]:
    """The k with the highest profit in ``column`` (the smallest such k on ties), its threshold and profit."""
    best = int(np.argmax(curve[column].to_numpy()))
    row = curve.iloc[best]
    return {"k": int(row["k"]), "threshold": float(row["threshold"]), "profit": float(row[column])}

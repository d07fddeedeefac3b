"""When do users leave? Kaplan-Meier retention with confidence bands, log-rank tests, and a Cox model.

Durations are days from a user's first event to the cancellation (event observed) or to the end of
the log (censored: still subscribed then), from the users table. Everything here is per user (small),
computed with lifelines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index

from sparkify_utils.data.schema import DAY_MS

#: Ridge penalty of the Cox model: a few hundred users and tens of correlated features need one.
COX_PENALIZER = 0.1


def durations(lifetimes: pd.DataFrame) -> pd.DataFrame:
    """Per user of a users table (userId, churn, churn_ts, first_ts, last_ts): ``days`` and ``event`` (0/1).

    Users who never cancelled are censored at the log's last event time (they were still subscribed).
    """
    end_ts = lifetimes["last_ts"].max()
    churned = lifetimes["churn"].astype(int) == 1
    stop = lifetimes["churn_ts"].where(churned, end_ts)
    days = (stop - lifetimes["first_ts"]) / DAY_MS
    if days.isna().any() or (days < 0).any():
        raise ValueError("durations must be non-negative: a churn_ts or last_ts before first_ts in the users table?")
    return pd.DataFrame(
        {"userId": lifetimes["userId"].astype(str), "days": days.to_numpy(), "event": churned.astype(int).to_numpy()}
    )


def kaplan_meier(days: object, event: object, label: str = "users", alpha: float = 0.05) -> pd.DataFrame:
    """Retention (share not yet cancelled) by day with its pointwise confidence band (lifelines, Greenwood)."""
    fitter = KaplanMeierFitter(alpha=alpha).fit(np.asarray(days, float), np.asarray(event, int), label=label)
    band = fitter.confidence_interval_survival_function_
    table = pd.DataFrame(
        {
            "day": fitter.survival_function_.index.to_numpy(),
            "survival": fitter.survival_function_[label].to_numpy(),
            "lower": band.iloc[:, 0].to_numpy(),
            "upper": band.iloc[:, 1].to_numpy(),
            "at_risk": fitter.event_table["at_risk"].reindex(fitter.survival_function_.index).to_numpy(),
        }
    )
    return table.assign(group=label)


def logrank(days: object, event: object, in_group: object) -> dict[str, float]:
    """Log-rank test of equal retention between the users in ``in_group`` (bool) and the others."""
    d, e, g = np.asarray(days, float), np.asarray(event, int), np.asarray(in_group, bool)
    if g.all() or not g.any():
        return {"statistic": float("nan"), "p_value": float("nan"), "users_a": int(g.sum()), "users_b": int((~g).sum())}
    result = logrank_test(d[g], d[~g], event_observed_A=e[g], event_observed_B=e[~g])
    return {
        "statistic": float(result.test_statistic),
        "p_value": float(result.p_value),
        "users_a": int(g.sum()),
        "users_b": int((~g).sum()),
    }


@dataclass
class CoxResult:
    """A fitted Cox model: hazard ratios per standardised covariate and the held-out concordance."""

    hazard_ratios: pd.DataFrame
    concordance_train: float
    concordance_test: float
    covariates: list[str]
    test_users: int


def fit_cox(
    table: pd.DataFrame, covariates: list[str], train: np.ndarray, penalizer: float = COX_PENALIZER
) -> CoxResult:
    """Cox proportional hazards on ``covariates`` (standardised on training users) with ``days``/``event``.

    Fit on the ``train`` rows, concordance index (C-index) on the others: the share of comparable
    user pairs whose predicted risk orders their times to churn correctly (0.5 = chance).
    """
    usable = [c for c in covariates if table.loc[train, c].std(ddof=0) > 0]
    x = table[usable].astype(float)
    centre, scale = x[train].mean(), x[train].std(ddof=0)
    z = ((x - centre) / scale).fillna(0.0)
    frame = z.assign(days=table["days"].to_numpy(), event=table["event"].to_numpy())
    fitter = CoxPHFitter(penalizer=penalizer).fit(frame[train], duration_col="days", event_col="event")
    test = ~train

    def c_index(rows: np.ndarray) -> float:
        part = frame[rows]
        if part["event"].sum() == 0:
            return float("nan")
        return float(concordance_index(part["days"], -fitter.predict_partial_hazard(part), part["event"]))

    summary = fitter.summary
    ratios = pd.DataFrame(
        {
            "covariate": summary.index.to_numpy(),
            "hazard_ratio": summary["exp(coef)"].to_numpy(),
            "lower_95": summary["exp(coef) lower 95%"].to_numpy(),
            "upper_95": summary["exp(coef) upper 95%"].to_numpy(),
            "p_value": summary["p"].to_numpy(),
        }
    ).sort_values("p_value", kind="mergesort", ignore_index=True)
    return CoxResult(ratios, c_index(train), c_index(test), usable, int(test.sum()))

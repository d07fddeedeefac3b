"""When do users leave? Kaplan-Meier retention with confidence bands, log-rank tests, and a Cox model; and the
time-to-churn analysis of a comparison (by level and by predicted risk) from the run's users table.

Durations are days from a user's first event to the cancellation (event observed) or to the end of
the log (censored: still subscribed then), from the users table. Everything here is per user (small),
computed with lifelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index

from sparkify_utils.artifacts import EDA, USER_COLUMNS, USER_LIFETIMES
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.paths import RunPaths

if TYPE_CHECKING:  # the dashboard reads retention from here and must not import pyspark
    from sparkify_utils.modeling.table import FeatureSpec

#: Ridge penalty of the Cox model: a few hundred users and tens of correlated features need one.
COX_PENALIZER = 0.1
#: Columns whose name contains one of these are left out of the Cox model: they measure the duration itself.
DURATION_LIKE = ("tenure",)


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


@dataclass
class SurvivalResult:
    """Kaplan-Meier curves by segment with their log-rank tests, and the Cox model."""

    curves: pd.DataFrame
    tests: dict[str, dict[str, float]]
    hazard_ratios: pd.DataFrame
    concordance_train: float
    concordance_test: float
    covariates: list[str]
    users: int
    events: int
    note: str


def load_lifetimes(paths: RunPaths, features_path: str = "") -> tuple[pd.DataFrame | None, str]:
    """The run's users table (first event, cancellation, last event per user) for the time-to-churn analysis,
    or None and the sentence saying why there is none (a user's own ``features_path`` table has no timestamps)."""
    if features_path:
        return None, (
            f"Time to churn is skipped: the per-user table {features_path!r} is a table of your own, "
            "without each user's first event and cancellation time, which survival analysis needs. "
            "Calibration, lift, economics and reasons work on it all the same."
        )
    file = paths.file(USER_LIFETIMES)
    if not file.is_file():
        return None, (f"Time to churn is skipped: this run has no {USER_LIFETIMES.name} (written by notebook {EDA}).")
    lifetimes = pd.read_csv(file, dtype={"userId": str})
    missing = [c for c in USER_COLUMNS if c not in lifetimes.columns]
    if missing:
        return None, f"Time to churn is skipped: {USER_LIFETIMES.name} lacks columns {missing}; re-run {EDA}."
    return lifetimes, ""


def survival_analysis(
    spec: FeatureSpec,
    table: pd.DataFrame,
    lifetimes: pd.DataFrame,
    scores: pd.Series,
    held_out: set[str],
    threshold: float,
) -> SurvivalResult:
    """Kaplan-Meier by level and by predicted risk (``scores`` by userId, flagged at ``threshold`` or not) with
    log-rank tests, and a Cox model on the numeric features, fit on the users not ``held_out``, judged on those.

    Durations: days from a user's first event to the cancellation, or to the log's end (censored).
    """
    ids = table[spec.id_col].astype(str)
    lives = durations(lifetimes).set_index("userId").reindex(ids)
    if lives["days"].isna().any():
        missing = ids[lives["days"].isna().to_numpy()].head(3).tolist()
        raise ValueError(f"Users of the features table are missing from the users table (e.g. {missing}).")
    days, event = lives["days"].to_numpy(), lives["event"].to_numpy().astype(int)
    flagged = scores.reindex(ids).to_numpy() >= threshold
    segments: dict[str, tuple[str, str, np.ndarray]] = {}
    if "level" in table.columns:
        paid = (table["level"].astype(str) == "paid").to_numpy()
        segments["paid_vs_free"] = ("paid", "free", paid)
    segments["high_vs_low_risk"] = ("high predicted risk", "low predicted risk", flagged)
    curves = [kaplan_meier(days, event, f"All users ({len(ids)})")]
    tests = {}
    for key, (name_a, name_b, rows) in segments.items():
        for name, part in ((name_a, rows), (name_b, ~rows)):
            if part.any():
                curves.append(kaplan_meier(days[part], event[part], f"{name} ({int(part.sum())})").assign(segment=key))
        tests[key] = logrank(days, event, rows)
    covariates = [c for c in (*spec.numeric, *spec.boolean) if not any(s in c for s in DURATION_LIKE)]
    frame = table[covariates].astype(float).assign(days=days, event=event)
    frame[covariates] = frame[covariates].fillna(frame[covariates].median())
    train = ~ids.isin(held_out).to_numpy()
    cox = fit_cox(frame, covariates, train)
    left_out = [c for c in (*spec.numeric, *spec.boolean) if c not in covariates]
    note = (
        f"{len(ids)} users, {int(event.sum())} cancellations observed; durations from each user's first event "
        "to the cancellation or the log's end (censored). High predicted risk: the chosen model's calibrated "
        f"probability (out-of-fold for training users, held-out for test users) at or above {threshold:.3f}. "
        f"Cox model on {len(cox.covariates)} standardised features, fit on {int(train.sum())} training users, "
        f"concordance on {cox.test_users} held-out users"
        + (f"; left out as measures of the duration itself: {', '.join(left_out)}." if left_out else ".")
    )
    return SurvivalResult(
        pd.concat(curves, ignore_index=True).fillna({"segment": "all"}),
        tests,
        cox.hazard_ratios,
        cox.concordance_train,
        cox.concordance_test,
        cox.covariates,
        len(ids),
        int(event.sum()),
        note,
    )

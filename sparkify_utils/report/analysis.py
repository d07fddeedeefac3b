"""Computations on a run's per-user tables for the dashboard (pandas, no Spark): retention, weekly churn,
the level table, model scores and the at-risk filter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sparkify_utils.artifacts import FEATURE_IMPORTANCE
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.report.run import ArtifactError

ALL_LEVELS = "all"
#: Metrics the model comparison shows (of the seven in metrics.json), with their display names.
SHOWN_METRICS = {"f1": "churn F1", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC"}


def kaplan_meier(durations: pd.Series, observed: pd.Series) -> pd.DataFrame:
    """Product-limit survival estimate: one row per distinct time, starting at (0, 1.0).

    ``observed`` is 1 where the event happened at that duration and 0 where the user was still
    under observation then (censored). At tied times events count before censorings, as usual.
    """
    frame = pd.DataFrame({"t": np.asarray(durations, dtype=float), "d": np.asarray(observed, dtype=int)})
    if frame["t"].isna().any() or (frame["t"] < 0).any():
        raise ValueError("durations must be non-negative numbers; a user is seen after their last event?")
    grouped = frame.groupby("t")["d"].agg(events="sum", leaving="size").sort_index()
    at_risk = len(frame) - grouped["leaving"].cumsum().shift(fill_value=0)
    survival = (1 - grouped["events"] / at_risk).cumprod()
    table = pd.DataFrame({
        "time": grouped.index, "at_risk": at_risk.to_numpy(), "events": grouped["events"].to_numpy(),
        "censored": (grouped["leaving"] - grouped["events"]).to_numpy(), "survival": survival.to_numpy(),
    })
    start = pd.DataFrame({"time": [0.0], "at_risk": [len(frame)], "events": [0], "censored": [0], "survival": [1.0]})
    return pd.concat([start, table], ignore_index=True)



def retention_curves(lifetimes: pd.DataFrame) -> pd.DataFrame:
    """Share of users not yet cancelled by days since first seen: all users (KM) and churners only.

    Users who never cancelled are censored at the end of the log (they were still subscribed
    then); churners' durations end at their cancellation, so their curve falls to zero.
    """
    end_ts = lifetimes["last_ts"].max()
    churned = lifetimes["churn"].astype(int) == 1
    stop = lifetimes["churn_ts"].where(churned, end_ts)
    days = (stop - lifetimes["first_ts"]) / DAY_MS
    curves = [
        kaplan_meier(days, churned).assign(group=f"All users ({len(lifetimes)})"),
        kaplan_meier(days[churned], churned[churned]).assign(group=f"Churners ({int(churned.sum())})"),
    ]
    return pd.concat(curves, ignore_index=True).assign(day=lambda t: t["time"])


def churn_by_week(lifetimes: pd.DataFrame) -> pd.DataFrame:
    """Cancellations per week (Monday start, UTC) and their share of the users active that week."""
    # Compared in epoch ms: pandas < 3 can raise a spurious FloatingPointError converting a float column
    # with NaN (non-churners' churn_ts) to datetimes (pandas-dev/pandas#58419). NaN compares false.
    first, last = lifetimes["first_ts"], lifetimes["last_ts"]
    churn_ts = lifetimes["churn_ts"].where(lifetimes["churn"].astype(int) == 1)
    first_week = pd.Timestamp(int(first.min()), unit="ms").to_period("W-SUN").start_time
    weeks = pd.date_range(first_week, pd.Timestamp(int(last.max()), unit="ms"), freq="W-MON")
    rows = []
    for start in weeks:
        lo = (start - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
        hi = lo + 7 * DAY_MS
        active = int(((first < hi) & (last >= lo)).sum())
        cancelled = int(((churn_ts >= lo) & (churn_ts < hi)).sum())
        rows.append((start, active, cancelled, cancelled / active if active else float("nan")))
    return pd.DataFrame(rows, columns=["week", "active_users", "cancellations", "churn_rate"])


def filter_at_risk(table: pd.DataFrame, threshold: float, level: str = ALL_LEVELS) -> pd.DataFrame:
    """At-risk users with probability >= ``threshold`` (and of ``level`` unless "all"), riskiest first."""
    kept = table[table["probability"] >= threshold]
    if level != ALL_LEVELS:
        kept = kept[kept["level"] == level]
    return kept.sort_values(["probability", "userId"], ascending=[False, True]).reset_index(drop=True)


def level_table(per_user: pd.DataFrame) -> pd.DataFrame:
    """Users by level (rows) and churn group (columns 0/1) from ``level_churn_byUser.csv``."""
    table = pd.crosstab(per_user["level"].fillna("unknown"), per_user["churn"].astype(int))
    return table.reindex(columns=[0, 1], fill_value=0)


def _model_label(metrics: dict[str, Any], model: str) -> str:
    return metrics["models"].get(model, {}).get("label", model)


def model_scores(metrics: dict[str, Any]) -> pd.DataFrame:
    """Each model's CV mean and sd per shown metric from ``metrics.json``: model, metric, mean, sd."""
    return pd.DataFrame([
        {"model": _model_label(metrics, model), "metric": label, "mean": entry["cv"][metric]["mean"],
         "sd": entry["cv"][metric]["sd"]}
        for metric, label in SHOWN_METRICS.items()
        for model, entry in metrics["models"].items()
    ])



def chosen_importance(importance: pd.DataFrame, metrics: dict[str, Any]) -> tuple[str, pd.DataFrame]:
    """The chosen model's rows of ``feature_importance.csv`` and its display name."""
    chosen = metrics["chosen_model"]
    rows = importance[importance["model"] == chosen]
    if rows.empty:
        raise ArtifactError(f"feature_importance.csv has no rows for the chosen model {chosen!r}; re-run "
                            f"{FEATURE_IMPORTANCE.writer}.")
    return _model_label(metrics, chosen), rows

"""Computations on a run's per-user tables for the dashboard (pandas, no Spark): retention, weekly churn,
the level table, model scores, the at-risk filter and the campaign recomputed from stored scores."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparkify_utils.artifacts import FEATURE_IMPORTANCE
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.modeling.economics import Economics, best_campaign, profit_curve
from sparkify_utils.modeling.survival import durations, kaplan_meier, logrank
from sparkify_utils.report.run import ArtifactError

ALL_LEVELS = "all"
#: Metrics the model comparison shows (of the seven in metrics.json), with their display names.
SHOWN_METRICS = {"f1": "churn F1", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC"}


def retention_curves(lifetimes: pd.DataFrame, levels: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Share of users not yet cancelled by days since first seen (Kaplan-Meier with 95 % bands): all users,
    and free vs paid (level at the last event, from ``levels``) with the log-rank test between them.

    Users who never cancelled are censored at the end of the log (they were still subscribed then).
    """
    lives = durations(lifetimes)
    curves = [kaplan_meier(lives["days"], lives["event"], f"All users ({len(lives)})")]
    test: dict = {}
    if levels is not None:
        level = lives["userId"].map(levels.assign(userId=levels["userId"].astype(str)).set_index("userId")["level"])
        paid = (level == "paid").to_numpy()
        for name, rows in (("paid", paid), ("free", ~paid)):
            if rows.any():
                curves.append(kaplan_meier(lives["days"][rows], lives["event"][rows], f"{name} ({int(rows.sum())})"))
        test = logrank(lives["days"], lives["event"], paid)
    return pd.concat(curves, ignore_index=True), test


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
    return pd.DataFrame(
        [
            {
                "model": _model_label(metrics, model),
                "metric": label,
                "mean": entry["cv"][metric]["mean"],
                "sd": entry["cv"][metric]["sd"],
            }
            for metric, label in SHOWN_METRICS.items()
            for model, entry in metrics["models"].items()
        ]
    )


def chosen_importance(importance: pd.DataFrame, metrics: dict[str, Any]) -> tuple[str, pd.DataFrame]:
    """The chosen model's rows of ``feature_importance.csv`` and its display name."""
    chosen = metrics["chosen_model"]
    rows = importance[importance["model"] == chosen]
    if rows.empty:
        raise ArtifactError(
            f"feature_importance.csv has no rows for the chosen model {chosen!r}; re-run {FEATURE_IMPORTANCE.writer}."
        )
    return _model_label(metrics, chosen), rows


def ranked_scores(scored: pd.DataFrame) -> pd.DataFrame:
    """The scored users riskiest first, as the model step ranks them (calibrated probability, then raw score)."""
    keys = ["probability", *(["score"] if "score" in scored.columns else []), "userId"]
    return scored.sort_values(keys, ascending=[False] * (len(keys) - 1) + [True], kind="mergesort", ignore_index=True)


def campaign(
    decisions: dict[str, Any], scored: pd.DataFrame, contact_cost: float, churner_value: float, save_rate: float
) -> dict[str, Any]:
    """The campaign for these economics, from the run's stored scores (no Spark, no model): the expected profit
    curve of contacting the top k scored users (calibrated probabilities of ``at_risk_users.csv``) and its best k;
    on the held-out users (``decisions.json``), the expected-profit-optimal k and what it actually earned.

    Raises :class:`~sparkify_utils.modeling.economics.EconomicsError` naming a value out of range.
    """
    econ = Economics(contact_cost=contact_cost, churner_value=churner_value, save_rate=save_rate)
    ranked = ranked_scores(scored)
    curve = profit_curve(ranked["probability"].to_numpy(float), econ)
    best = best_campaign(curve)
    held = pd.DataFrame(decisions["held_out_scores"])
    held_curve = profit_curve(held["probability"].to_numpy(float), econ, held["label"].to_numpy(float))
    held_best = best_campaign(held_curve)
    realised = float(held_curve["realised_profit"].iloc[held_best["k"]])
    return {
        "economics": econ,
        "curve": curve,
        "best": best,
        "contacted": ranked.head(best["k"]),
        "held_out": {**held_best, "realised_profit": realised, "users": len(held)},
    }

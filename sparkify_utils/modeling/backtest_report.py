"""A backtest's result and how it is told: the per-cutoff table with the pooled metrics, the sentences on its gap
to the random-split CV figure and on its noise, the side-by-side table, and ``backtest.json``.

:mod:`~sparkify_utils.modeling.backtest` runs the backtest and fills a :class:`Backtest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Metrics of the backtest table (per cutoff and pooled).
BACKTEST_METRICS = ("f1", "pr_auc", "lift_10", "brier")


@dataclass
class Backtest:
    """The backtest's table (one row per test cutoff), pooled metrics and the CV figure beside them."""

    rows: pd.DataFrame
    overall: dict[str, Any]
    cross_validation: dict[str, Any]
    parameters: dict[str, Any]
    note: str
    skipped: str = ""
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)


def skipped(reason: str, parameters: dict[str, Any] | None = None) -> Backtest:
    """A backtest that did not run, and why (e.g. a user's own table without timestamps)."""
    return Backtest(pd.DataFrame(), {}, {}, parameters or {}, reason, skipped=reason)


def note(table: pd.DataFrame, ok: pd.DataFrame, overall: dict[str, Any], cv: dict[str, Any]) -> str:
    """The backtest in sentences: the gap to the CV figure, and how noisy the windows are."""
    gap = overall["f1"] - cv["f1_mean"]
    spread = cv["f1_sd"] + (overall["f1_sd"] if np.isfinite(overall["f1_sd"]) else 0.0)
    lines = [
        f"Out of time ({len(ok)} test cutoffs pooled, {overall['users']} users, {overall['churners']} cancelled within "
        f"the horizon), churn-class F1 is {overall['f1']:.3f} and PR-AUC {overall['pr_auc']:.3f}, against "
        f"{cv['f1_mean']:.3f} ± {cv['f1_sd']:.3f} and {cv['pr_auc_mean']:.3f} ± {cv['pr_auc_sd']:.3f} in the "
        f"random-split CV: a gap of {gap:+.3f} in F1, "
        + ("within" if abs(gap) <= spread else "beyond")
        + " the fold-to-fold and cutoff-to-cutoff spread."
    ]
    if cv["label_mode"] != "horizon":
        lines.append(
            f"The CV figure is for {cv['label_mode']} labels (cancelled at any time), the backtest for "
            "horizon labels (cancels within the horizon): run with label_mode=horizon to compare like with "
            "like."
        )
    few = int(ok["test_churners"].min())
    lines.append(
        f"Each test cutoff holds {few}–{int(ok['test_churners'].max())} churners among "
        f"{int(ok['test_users'].min())}–{int(ok['test_users'].max())} users, so finding one churner more or less "
        f"moves that cutoff's recall by up to {1 / few:.0%}"
        + (f"; F1 varies by sd {overall['f1_sd']:.3f} between cutoffs." if np.isfinite(overall["f1_sd"]) else ".")
        + (
            " With fewer than about 30 churners per window these numbers are noisy: read them as a range, and use a "
            "larger log (params/big.yaml) for stable backtests."
            if few < 30
            else ""
        )
    )
    if table["partial_lookback"].any():
        lines.append("Training cutoffs less than lookback_days after the log's start see a shortened lookback.")
    skipped_rows = table[table["status"] != "ok"]
    if len(skipped_rows):
        lines.append("Skipped: " + "; ".join(f"{r.test_cutoff} ({r.status})" for r in skipped_rows.itertuples()) + ".")
    return " ".join(lines)


def comparison_table(backtest: Backtest) -> pd.DataFrame:
    """Per test cutoff, pooled, and the random-split CV figure, side by side (F1, PR-AUC, lift at 10 %, Brier)."""
    rows = backtest.rows.assign(row=lambda t: "cutoff " + t["test_cutoff"])
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows.iloc[:0]
    table = ok.reindex(
        columns=["row", "train_users", "train_churners", "test_users", "test_churners", *BACKTEST_METRICS]
    )
    extra = []
    if backtest.overall:
        o = backtest.overall
        extra.append(
            {
                "row": f"pooled ({o['cutoffs']} cutoffs)",
                "test_users": o["users"],
                "test_churners": o["churners"],
                **{m: o[m] for m in BACKTEST_METRICS},
            }
        )
    if backtest.cross_validation:
        cv = backtest.cross_validation
        extra.append(
            {"row": f"random-split CV ({cv['label_mode']} labels)", "f1": cv["f1_mean"], "pr_auc": cv["pr_auc_mean"]}
        )
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True).set_index("row")


def backtest_document(backtest: Backtest) -> dict[str, Any]:
    """The content of ``backtest.json``."""
    return {
        "parameters": backtest.parameters,
        "skipped": backtest.skipped,
        "note": backtest.note,
        "cutoffs": backtest.rows.replace([np.inf, -np.inf], np.nan).to_dict("records"),
        "overall": backtest.overall,
        "cross_validation": backtest.cross_validation,
    }

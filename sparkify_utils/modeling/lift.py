"""Who a campaign reaches when it contacts the riskiest users first: gains, lift, capture and precision at k.

All functions take ``y`` (0/1, 1 = churned) and ``score`` (higher = riskier) of the same users; users
are ranked by score, ties broken by their order in the input so the result is deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Shares of users contacted that the lift table reports.
TOP_SHARES = (0.05, 0.10, 0.20)


def _ranked(y: object, score: object) -> np.ndarray:
    """Labels sorted from the highest score to the lowest (stable, so ties keep the input order)."""
    y_arr = np.asarray(y, dtype=float).ravel()
    s_arr = np.asarray(score, dtype=float).ravel()
    if y_arr.shape != s_arr.shape:
        raise ValueError(f"labels ({y_arr.size}) and scores ({s_arr.size}) differ in length")
    return y_arr[np.argsort(-s_arr, kind="mergesort")]


def gains_curve(y: object, score: object) -> pd.DataFrame:
    """Cumulative gains: for k = 0..n contacted users, the share contacted and the share of churners reached."""
    ranked = _ranked(y, score)
    n, churners = ranked.size, ranked.sum()
    k = np.arange(n + 1)
    reached = np.r_[0.0, np.cumsum(ranked)]
    return pd.DataFrame(
        {
            "k": k,
            "share_contacted": k / n if n else k * np.nan,
            "churners_reached": reached,
            "share_of_churners": reached / churners if churners else reached * np.nan,
        }
    )


def precision_at_k(y: object, score: object, k: int) -> float:
    """Share of churners among the ``k`` riskiest users (NaN for k = 0)."""
    ranked = _ranked(y, score)
    if not 0 <= k <= ranked.size:
        raise ValueError(f"k={k} must be between 0 and the number of users ({ranked.size})")
    return float(ranked[:k].mean()) if k else float("nan")


def lift_table(y: object, score: object, shares: tuple[float, ...] = TOP_SHARES) -> pd.DataFrame:
    """Per share of users contacted (top 5/10/20 % by default): k, precision, lift over random, capture rate.

    ``k`` is the share of users rounded up (at least one user), so small held-out sets still report.
    Lift is precision at k divided by the base rate; capture is the share of all churners reached.
    """
    ranked = _ranked(y, score)
    n, churners = ranked.size, ranked.sum()
    base_rate = churners / n if n else float("nan")
    rows = []
    for share in shares:
        if not 0 < share <= 1:
            raise ValueError(f"share {share} must be in (0, 1]")
        k = min(n, max(1, int(np.ceil(share * n))))
        reached = ranked[:k].sum()
        precision = reached / k
        rows.append(
            {
                "share": share,
                "k": k,
                "churners_reached": int(reached),
                "precision": precision,
                "lift": precision / base_rate if base_rate else float("nan"),
                "capture": reached / churners if churners else float("nan"),
            }
        )
    return pd.DataFrame(rows)

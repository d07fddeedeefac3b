"""Classification metrics on small per-user prediction tables (numpy/scipy only, no scikit-learn).

All functions take ``y`` (0/1 labels, 1 = churn) and ``score`` (higher = more likely churn) as
array-likes; "F1", "precision" and "recall" are those of the churn class unless named otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

#: Metrics of one evaluation, in display order (``weighted_f1`` is what the original called "accuracy").
METRICS = ("f1", "precision", "recall", "pr_auc", "roc_auc", "accuracy", "weighted_f1")


def _arrays(y: object, score: object) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float).ravel()
    s_arr = np.asarray(score, dtype=float).ravel()
    if y_arr.shape != s_arr.shape:
        raise ValueError(f"labels ({y_arr.size}) and scores ({s_arr.size}) differ in length")
    return y_arr, s_arr


def _f1(tp: float, fp: float, fn: float) -> float:
    # Zero (not NaN) when nothing is predicted or present, as scikit-learn's zero_division=0.
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def confusion_counts(y: object, predicted: object) -> dict[str, int]:
    """True/false positives/negatives of 0/1 predictions."""
    y_arr, p_arr = _arrays(y, predicted)
    pos, pred = y_arr == 1, p_arr == 1
    return {
        "tp": int(np.sum(pos & pred)),
        "fp": int(np.sum(~pos & pred)),
        "fn": int(np.sum(pos & ~pred)),
        "tn": int(np.sum(~pos & ~pred)),
    }


def _distinct_thresholds(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (descending) with cumulative TP and FP counts when predicting score >= each."""
    order = np.argsort(-score, kind="mergesort")
    s_sorted, y_sorted = score[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return s_sorted[last_of_tie], tps, fps


def roc_curve(y: object, score: object) -> pd.DataFrame:
    """ROC points (fpr, tpr, threshold), starting at (0, 0); ties in score form one step."""
    y_arr, s_arr = _arrays(y, score)
    thresholds, tps, fps = _distinct_thresholds(y_arr, s_arr)
    n_pos, n_neg = y_arr.sum(), y_arr.size - y_arr.sum()
    return pd.DataFrame(
        {
            "fpr": np.r_[0.0, fps / n_neg if n_neg else fps * np.nan],
            "tpr": np.r_[0.0, tps / n_pos if n_pos else tps * np.nan],
            "threshold": np.r_[np.inf, thresholds],
        }
    )


def pr_curve(y: object, score: object) -> pd.DataFrame:
    """Precision-recall points (recall, precision, threshold) at each distinct score, highest first."""
    y_arr, s_arr = _arrays(y, score)
    thresholds, tps, fps = _distinct_thresholds(y_arr, s_arr)
    n_pos = y_arr.sum()
    return pd.DataFrame(
        {
            "recall": tps / n_pos if n_pos else tps * np.nan,
            "precision": tps / (tps + fps),
            "threshold": thresholds,
        }
    )


def average_precision(y: object, score: object) -> float:
    """PR-AUC as average precision: sum over distinct scores of (recall gain) x precision."""
    curve = pr_curve(y, score)
    if curve["recall"].isna().any():
        return float("nan")
    recall_gain = np.diff(np.r_[0.0, curve["recall"].to_numpy()])
    return float(np.sum(recall_gain * curve["precision"].to_numpy()))


def roc_auc(y: object, score: object) -> float:
    """ROC-AUC via the Mann-Whitney statistic (a tied positive/negative pair counts one half)."""
    y_arr, s_arr = _arrays(y, score)
    n_pos = int(y_arr.sum())
    n_neg = y_arr.size - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(s_arr)
    return float((ranks[y_arr == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_f1_threshold(y: object, score: object) -> float:
    """Threshold that maximises churn-class F1 of ``score >= threshold`` on (validation) data.

    Returned as the midpoint between the lowest score flagged and the next lower score, so new users
    between the two observed scores are treated alike; ties in F1 keep the higher threshold.
    """
    y_arr, s_arr = _arrays(y, score)
    if not y_arr.sum():
        return 0.5
    thresholds, tps, fps = _distinct_thresholds(y_arr, s_arr)
    f1 = 2 * tps / (tps + fps + y_arr.sum())
    best = int(np.argmax(f1))
    return float((thresholds[best] + thresholds[best + 1]) / 2 if best + 1 < thresholds.size else thresholds[best])


def classification_metrics(y: object, score: object, threshold: float) -> dict[str, float]:
    """All :data:`METRICS` of ``score >= threshold`` (threshold-free PR-AUC/ROC-AUC use ``score``)."""
    y_arr, s_arr = _arrays(y, score)
    counts = confusion_counts(y_arr, (s_arr >= threshold).astype(float))
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    n_pos, n_neg = tp + fn, tn + fp
    f1_neg = _f1(tn, fn, fp)
    f1_pos = _f1(tp, fp, fn)
    return {
        "f1": f1_pos,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / n_pos if n_pos else 0.0,
        "pr_auc": average_precision(y_arr, s_arr),
        "roc_auc": roc_auc(y_arr, s_arr),
        "accuracy": (tp + tn) / y_arr.size,
        "weighted_f1": (n_pos * f1_pos + n_neg * f1_neg) / y_arr.size,
    }

"""Model-free looks at a per-user table: class balance, the leaky time features, univariate AUCs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.features.catalog import FeatureError
from sparkify_utils.features.window import log_end_ts
from sparkify_utils.modeling.metrics import roc_auc


def class_balance(features: DataFrame) -> dict[str, float]:
    """Users, churners and churn rate of a features table (one tiny aggregate)."""
    row = features.agg(F.count(F.lit(1)).alias("users"), F.sum("churn").alias("churners")).first()
    users, churners = int(row["users"]), int(row["churners"] or 0)
    return {"users": users, "churners": churners, "churn_rate": churners / users if users else float("nan")}


def leaky_time_features(users: DataFrame) -> pd.DataFrame:
    """Time features as the published projects measured them (to each user's last event): shown, never used.

    ``recency_at_log_end``: days from the last event to the log's end; ``observed_days``: days from the
    first to the last event. A churner's last event is the cancellation, so both encode the label.
    """
    end = log_end_ts(users)
    return users.select(
        "userId",
        "churn",
        ((F.lit(end) - F.col("last_ts")) / DAY_MS).alias("recency_at_log_end"),
        ((F.col("last_ts") - F.col("first_ts")) / DAY_MS).alias("observed_days"),
    ).toPandas()  # one row per user


def univariate_auc(table: pd.DataFrame, features: list[str], label: str = "churn") -> pd.DataFrame:
    """Model-free ROC-AUC of each numeric feature alone (Mann-Whitney rank statistic) and class medians.

    ``auc`` > 0.5 means churners have higher values; ``separation`` = max(auc, 1 - auc).
    """
    y = table[label].to_numpy().astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        raise FeatureError(f"Univariate AUC needs both classes; got {n_pos} churners and {n_neg} others.")
    rows = []
    for name in features:
        auc = roc_auc(y, table[name].to_numpy(float))
        rows.append((name, auc, max(auc, 1 - auc), table.loc[y, name].median(), table.loc[~y, name].median()))
    out = pd.DataFrame(rows, columns=["feature", "auc", "separation", "median_churn", "median_other"])
    return out.sort_values("separation", ascending=False, ignore_index=True)


def shuffled_auc(
    table: pd.DataFrame, features: list[str], seed: int, repeats: int = 20, label: str = "churn"
) -> pd.Series:
    """Mean univariate AUC per feature over ``repeats`` random permutations of the label (~0.5 if sane)."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(repeats):
        shuffled = table.assign(**{label: rng.permutation(table[label].to_numpy())})
        runs.append(univariate_auc(shuffled, features, label).set_index("feature")["auc"])
    return pd.concat(runs, axis=1).mean(axis=1).rename("shuffled_auc")

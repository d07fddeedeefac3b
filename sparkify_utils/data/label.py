"""The churn label: the one place that defines who churned, and when.

A churner is a user with a ``Cancellation Confirmation`` event, whether free or paid. The time of
the first one (``churn_ts``) is kept so later steps can stop their features before it.
"""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkify_utils.artifacts import EDA, USERS
from sparkify_utils.data.schema import CHURN_PAGE
from sparkify_utils.paths import RunPaths


class LabelError(ValueError):
    """The users table cannot be built or found; the message says how to fix it."""


def label_users(events: DataFrame) -> DataFrame:
    """One row per logged-in user: userId, churn (0/1), churn_ts, first_ts, last_ts (epoch ms)."""
    missing = [c for c in ("userId", "page", "ts") if c not in events.columns]
    if missing:
        raise LabelError(
            f"The events have no column {', '.join(missing)}. Fix: pass the clean events of ingest.ingest_events."
        )
    churn_ts = F.min(F.when(F.col("page") == CHURN_PAGE, F.col("ts"))).cast("long")
    users = (
        events.filter(F.col("userId") != "")
        .groupBy("userId")
        .agg(
            churn_ts.alias("churn_ts"),
            F.min("ts").cast("long").alias("first_ts"),
            F.max("ts").cast("long").alias("last_ts"),
        )
    )
    return users.select(
        "userId", F.col("churn_ts").isNotNull().cast("int").alias("churn"), "churn_ts", "first_ts", "last_ts"
    )


def write_users(events: DataFrame, paths: RunPaths) -> DataFrame:
    """Label the users of ``events``, write ``users.parquet`` once and return the written table."""
    label_users(events).write.mode("overwrite").parquet(paths.dataset(USERS))
    return read_users(events.sparkSession, paths)


def read_users(spark: SparkSession, paths: RunPaths) -> DataFrame:
    """The users table of a run (``users.parquet``, written by the EDA step)."""
    path = paths.dataset(USERS)
    try:
        return spark.read.parquet(path)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise LabelError(
                f"No users table at {path}. Fix: run notebook {EDA} with this run_dir/spark_dir first."
            ) from None
        raise

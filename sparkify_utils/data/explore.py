"""EDA aggregations of the clean events, computed in Spark from one pass over them.

The events are first reduced to an activity cube, one row per (userId, sessionId, UTC day, UTC hour)
with event and per-page counts, which is persisted; every EDA table is aggregated from it. Only
per-user or smaller tables reach pandas.

Every aggregation keeps fixed-width buffers, so Spark runs it as a (code-generated) hash aggregation:
the level at the last event is carried as a small integer code (``max_by`` of a string would make Spark
sort all the events and aggregate them row by row, several times slower on a large log).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from scipy.stats import chi2_contingency

from sparkify_utils.artifacts import EDA_SUMMARY, LEVEL_CHURN, PAGE_CHURN, SONGS_PER_USER, USER_COLUMNS, USER_LIFETIMES
from sparkify_utils.data.schema import CANCEL_PAGES, DAY_MS, HOUR_MS, MINUTE_MS, PAGES, SONG_PAGE
from sparkify_utils.paths import RunPaths

#: Significance level used in the notebook's wording of the chi-square test.
ALPHA = 0.05
#: Columns of the per-user table (``per_user_table``) in order.
PER_USER_COLUMNS = (
    "userId",
    "churn",
    "level",
    "songs",
    "events",
    "sessions",
    "median_session_minutes",
    "active_days",
    "churn_ts",
    "first_ts",
    "last_ts",
)


#: Cube column: the code of the level at the group's last event (``level_names`` decodes it).
LEVEL_CODE = "level_code"


def level_names(events: DataFrame) -> list[str]:
    """The distinct non-null levels of the events, sorted: code ``i`` (1-based) is ``level_names[i - 1]``."""
    return sorted(r["level"] for r in events.select("level").distinct().collect() if r["level"] is not None)


def _decode_level(code: Column, names: list[str]) -> Column:
    """The level name of a ``LEVEL_CODE`` (null for 0, a null level)."""
    return F.element_at(F.array(*[F.lit(n) for n in names]), F.nullif(code, F.lit(0))) if names else F.lit(None)


def activity_cube(events: DataFrame) -> DataFrame:
    """Events per (userId, sessionId, event_date, hour): counts, first/last ts, the code of the level at the
    last event (``LEVEL_CODE``, with the names in the ``level_names`` metadata key of the column), and one
    column per page.

    Persisted, because every other table here is aggregated from it; anonymous rows (userId "") are
    kept so the daily totals count every event.
    """
    names = level_names(events)
    code = F.array_position(F.array(*[F.lit(n) for n in names]), F.col("level")) if names else F.lit(0)
    hour = (F.floor(F.col("ts") / HOUR_MS) % 24).cast("int")
    cube = events.groupBy("userId", "sessionId", "event_date", hour.alias("hour")).agg(
        F.count(F.lit(1)).alias("events"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        F.max_by(code.cast("int"), "ts").alias(LEVEL_CODE, metadata={"level_names": names}),
        *[F.sum((F.col("page") == page).cast("long")).alias(page) for page in PAGES],
    )
    return cube.persist(StorageLevel.MEMORY_AND_DISK)


def user_profiles(cube: DataFrame, users: DataFrame) -> DataFrame:
    """Per logged-in user: the users table plus level at the last event, activity counts and page counts."""
    logged_in = cube.filter(F.col("userId") != "")
    # Session ids repeat across users, so a session is a (userId, sessionId) pair.
    sessions = logged_in.groupBy("userId", "sessionId").agg(
        ((F.max("last_ts") - F.min("first_ts")) / MINUTE_MS).alias("minutes")
    )
    per_session = sessions.groupBy("userId").agg(
        F.count(F.lit(1)).alias("sessions"), F.median("minutes").alias("median_session_minutes")
    )
    names = cube.schema[LEVEL_CODE].metadata.get("level_names", [])
    per_user = logged_in.groupBy("userId").agg(
        F.sum("events").alias("events"),
        F.sum(SONG_PAGE).alias("songs"),
        F.countDistinct("event_date").alias("active_days"),
        _decode_level(F.max_by(LEVEL_CODE, "last_ts"), names).alias("level"),
        *[F.sum(F.col(page)).alias(page) for page in PAGES],
    )
    return users.join(per_user, "userId").join(per_session, "userId")


def per_user_table(profiles: DataFrame) -> pd.DataFrame:
    """The per-user activity columns (``PER_USER_COLUMNS``) as pandas, one row per user."""
    return profiles.select(*PER_USER_COLUMNS).orderBy("churn", "userId").toPandas()


def churn_counts(users: DataFrame) -> pd.DataFrame:
    """Users per churn group (0 stayed, 1 churned; both rows always present) and each group's share."""
    rows = users.groupBy("churn").agg(F.count(F.lit(1)).alias("users")).collect()
    counts = {r["churn"]: r["users"] for r in rows}
    table = pd.DataFrame({"churn": [0, 1], "users": [counts.get(0, 0), counts.get(1, 0)]})
    total = table["users"].sum()
    table["share"] = table["users"] / total if total else float("nan")
    return table


def level_contingency(profiles: DataFrame) -> pd.DataFrame:
    """Users by level at their last event (rows free/paid) and churn group (columns 0/1)."""
    rows = profiles.groupBy("level", "churn").agg(F.count(F.lit(1)).alias("users")).collect()
    counts = {(r["level"] or "unknown", r["churn"]): r["users"] for r in rows}
    levels = sorted({"free", "paid"} | {level for level, _ in counts})
    table = pd.DataFrame(
        [[counts.get((level, churn), 0) for churn in (0, 1)] for level in levels],
        index=pd.Index(levels, name="level"),
        columns=pd.Index([0, 1], name="churn"),
    )
    return table


def chi_square(table: pd.DataFrame) -> dict[str, Any]:
    """Chi-square test of independence on a level x churn table (Yates-corrected for 2x2).

    A table with an empty row or column (e.g. no churners) has no test: statistic and p-value are None.
    """
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return {
            "statistic": None,
            "p_value": None,
            "dof": None,
            "significant": None,
            "note": "not computable: a level or churn group has no users",
        }
    result = chi2_contingency(table.to_numpy(), correction=True)
    return {
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "dof": int(result.dof),
        "significant": bool(result.pvalue < ALPHA),
        "note": f"chi-square test of independence, Yates continuity correction, alpha {ALPHA}",
    }


def page_churn(profiles: DataFrame) -> pd.DataFrame:
    """Per page and churn group: events, the page's total and the group's share of it, users, and the
    mean/median per-user rate per 100 songs (users without songs have no rate).

    Only pages present in the log are listed.
    """
    long = profiles.unpivot(["userId", "churn", "songs"], list(PAGES), "page", "count")
    rate = F.when(F.col("songs") > 0, F.col("count") * 100.0 / F.col("songs"))
    grouped = long.groupBy("page", "churn").agg(
        F.sum("count").alias("count"),
        F.count(F.lit(1)).alias("users"),
        F.avg(rate).alias("mean_per_100_songs"),
        F.median(rate).alias("median_per_100_songs"),
    )
    totals = grouped.withColumn("page_total", F.sum("count").over(Window.partitionBy("page")))
    table = (
        totals.filter(F.col("page_total") > 0)
        .withColumn("share", F.col("count") / F.col("page_total"))
        .orderBy(F.desc("page_total"), "page", "churn")
    )
    return table.select(*PAGE_CHURN.columns).toPandas()


def page_rate_contrast(pages: pd.DataFrame) -> pd.DataFrame:
    """Mean per-user visits per 100 songs of each page for stayed vs churned users, and their ratio
    (churned / stayed), largest first; NextSong and the label-defining cancellation pages are left out."""
    shown = pages[~pages["page"].isin((SONG_PAGE, *CANCEL_PAGES))]
    wide = shown.pivot(index="page", columns="churn", values="mean_per_100_songs").reindex(columns=[0, 1])
    wide.columns = ["stayed", "churned"]
    wide["ratio"] = wide["churned"] / wide["stayed"].where(wide["stayed"] > 0)
    return wide.sort_values("ratio", ascending=False).reset_index()


def group_medians(profiles: DataFrame) -> pd.DataFrame:
    """Per churn group (index 0/1, a group without users is a row of NaN): users and the median of each
    per-user activity column."""
    numeric = ["songs", "events", "sessions", "median_session_minutes", "active_days"]
    grouped = profiles.groupBy("churn").agg(F.count(F.lit(1)).alias("users"), *[F.median(c).alias(c) for c in numeric])
    return grouped.toPandas().set_index("churn").reindex([0, 1])


def daily_activity(cube: DataFrame, users: DataFrame) -> pd.DataFrame:
    """Per UTC day: events (all, incl. logged-out), songs, active logged-in users, of them future or
    past churners, and cancellations (churn events)."""
    churn = users.select("userId", "churn")
    daily = (
        cube.join(churn, "userId", "left")
        .groupBy("event_date")
        .agg(
            F.sum("events").alias("events"),
            F.sum(SONG_PAGE).alias("songs"),
            F.countDistinct(F.when(F.col("userId") != "", F.col("userId"))).alias("active_users"),
            F.countDistinct(F.when(F.col("churn") == 1, F.col("userId"))).alias("active_churners"),
            F.sum("Cancellation Confirmation").alias("cancellations"),
        )
    )
    return daily.orderBy("event_date").toPandas()


def time_patterns(cube: DataFrame, users: DataFrame) -> pd.DataFrame:
    """Logged-in events per churn group, weekday (1 = Sunday ... 7 = Saturday, UTC) and hour of day."""
    grouped = (
        cube.join(users.select("userId", "churn"), "userId")
        .groupBy("churn", F.dayofweek("event_date").alias("weekday"), "hour")
        .agg(F.sum("events").alias("events"))
    )
    return grouped.orderBy("churn", "weekday", "hour").toPandas()


def churn_timing(users: DataFrame) -> pd.DataFrame:
    """Per churner: UTC day of the cancellation and days from the user's first event to it."""
    churners = users.filter(F.col("churn") == 1).select(
        "userId",
        F.date_from_unix_date(F.floor(F.col("churn_ts") / DAY_MS).cast("int")).alias("churn_date"),
        ((F.col("churn_ts") - F.col("first_ts")) / DAY_MS).alias("days_to_churn"),
    )
    return churners.orderBy("churn_date", "userId").toPandas()


def _iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def eda_summary(
    cube: DataFrame,
    counts: pd.DataFrame,
    level_table: pd.DataFrame,
    test: dict[str, Any],
    medians: pd.DataFrame,
    quality: dict[str, Any],
) -> dict[str, Any]:
    """The headline numbers of the EDA (``eda_summary.json``), for the report and the dashboard."""
    span = cube.agg(
        F.min("first_ts").alias("first"),
        F.max("last_ts").alias("last"),
        F.sum(SONG_PAGE).alias("songs"),
        F.countDistinct("event_date").alias("days"),
    ).first()
    users, churners = int(counts["users"].sum()), int(counts.loc[counts["churn"] == 1, "users"].iloc[0])
    by_group = {
        str(churn): {k: None if pd.isna(v) else float(v) for k, v in row.items()} for churn, row in medians.iterrows()
    }
    return {
        "users": users,
        "churners": churners,
        "churn_rate": churners / users if users else None,
        "events": quality["rows_kept"],
        "anonymous_events": quality["anonymous_rows"],
        "songs": int(span["songs"] or 0),
        "first_event": _iso(span["first"]),
        "last_event": _iso(span["last"]),
        "days": int(span["days"]),
        "rows_read": quality["rows_read"],
        "rows_bad": sum(quality["rows_excluded"].values()) + sum(quality["rows_quarantined"].values()),
        "level_by_churn": {lvl: {str(c): int(n) for c, n in row.items()} for lvl, row in level_table.iterrows()},
        "chi2_statistic": test["statistic"],
        "chi2_p_value": test["p_value"],
        "chi2_dof": test["dof"],
        "level_churn_significant": test["significant"],
        "chi2_note": test["note"],
        "medians_by_churn": by_group,
    }


def write_exports(
    paths: RunPaths, per_user: pd.DataFrame, pages: pd.DataFrame, summary: dict[str, Any]
) -> dict[str, str]:
    """Write the original project's CSVs, ``user_lifetimes.csv`` (the users table, for the dashboard's
    time sections) and ``eda_summary.json`` into the run directory."""
    files = {
        LEVEL_CHURN: per_user[["churn", "userId", "level"]],
        PAGE_CHURN: pages,
        SONGS_PER_USER: per_user[["churn", "userId", "songs"]],
        USER_LIFETIMES: per_user[list(USER_COLUMNS)],
    }
    written = {}
    for artifact, table in files.items():
        table.to_csv(paths.file(artifact), index=False)
        written[artifact.name] = str(paths.file(artifact))
    paths.file(EDA_SUMMARY).write_text(json.dumps(summary, indent=2))
    written[EDA_SUMMARY.name] = str(paths.file(EDA_SUMMARY))
    return written

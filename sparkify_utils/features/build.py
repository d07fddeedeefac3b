"""Leakage-safe per-user churn features from the clean events, in two label modes.

``whole_period`` (the original project's framing): the label is "cancelled at any time in the log";
features use all of a user's events except the cancellation pages, and no feature is anchored on
the user's own last event (a churner's last event *is* the cancellation). Recency and trends are
therefore left out, and tenure is measured at the log's end, a moment common to every user.

``horizon`` (a forecasting framing): at a cutoff, features use only events strictly before it;
the population is the users active in the ``lookback_days`` before the cutoff and not cancelled
before it; the label is "cancels within ``horizon_days`` after the cutoff". The same code scores
the users active at the end of the log, where no label exists yet.

Events are read in two passes whatever the number of features (see
:mod:`sparkify_utils.features.aggregate`), and ``build_features_at`` builds the horizon-mode
tables of several cutoffs (the backtest's) from two passes in all. The label comes from the users
table of ``label.label_users``, the one definition of churn. This module turns the aggregates into
the training, scoring and user-item tables and writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkify_utils.artifacts import FEATURE_DICTIONARY, FEATURE_TABLE, SCORING_TABLE, USER_COLUMNS, USER_ITEM
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.features.aggregate import WINDOW, aggregates, aggregates_at
from sparkify_utils.features.catalog import (
    COUNTED_PAGES,
    DEFAULT_LABEL_MODE,
    LABEL_MODES,
    OS_PATTERNS,
    RATE_PAGES,
    STATE_REGION,
    TREND_DAYS,
    UNKNOWN,
    check_mode,
    feature_columns,
    feature_dictionary,
)
from sparkify_utils.features.window import FeatureWindow, resolve_window
from sparkify_utils.paths import RunPaths


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, 0 when the denominator is 0 (e.g. a rate of a user with no songs)."""
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(0.0))


def _os(user_agent: Column) -> Column:
    result = F.lit("Other")
    for pattern, name in reversed(OS_PATTERNS):
        result = F.when(user_agent.rlike(pattern), name).otherwise(result)
    return F.when(user_agent.isNull(), UNKNOWN).otherwise(result)


def _state(location: Column) -> Column:
    """First two-letter code after ', ' ("New York-Newark-Jersey City, NY-NJ-PA" -> NY)."""
    code = F.regexp_extract(location, r", ([A-Z]{2})", 1)
    return F.when(F.coalesce(code, F.lit("")) == "", UNKNOWN).otherwise(code)


def _region(state: Column) -> Column:
    mapping = F.create_map(*[F.lit(x) for pair in STATE_REGION.items() for x in pair])
    return F.coalesce(mapping[state], F.when(state == UNKNOWN, UNKNOWN).otherwise(F.lit("Other")))


#: Column of ``build_features_at``'s rows: the cutoff (ISO date) of the table they belong to.
CUTOFF_DATE = "cutoff_date"


@dataclass(frozen=True)
class _Bounds:
    """Where a table's features stop and its labels end (epoch ms): literals for one window's table, columns of
    the aggregates for a stack of several windows' tables."""

    label_mode: str
    cutoff_ts: Column
    horizon_end_ts: Column

    @classmethod
    def of(cls, window: FeatureWindow) -> _Bounds:
        return cls(window.label_mode, F.lit(window.cutoff_ts), F.lit(window.horizon_end_ts))


def _derive(agg: DataFrame, bounds: _Bounds, lookback_days: int) -> DataFrame:
    """Turn the raw aggregates into the feature columns (rates, times, categories)."""
    songs = F.col("songs")
    derived = {
        "songs_per_active_day": _ratio(songs, F.col("active_days")),
        "sessions_per_active_day": _ratio(F.col("sessions"), F.col("active_days")),
        "distinct_song_share": _ratio(F.col("distinct_songs"), songs),
        "paid_event_share": _ratio(F.col("paid_events"), F.col("events")),
        **{name: _ratio(F.col(page), songs) for name, page in RATE_PAGES.items()},
        "upgrades": F.col("Submit Upgrade"),
        "downgrades": F.col("Submit Downgrade"),
        "listening_hours": F.col("song_seconds") / 3600,
        "tenure_days": (bounds.cutoff_ts - F.col("registration_ts")) / DAY_MS,
        "recency_days": (bounds.cutoff_ts - F.col("last_event_ts")) / DAY_MS,
        "os": _os(F.col("userAgent")),
        "state": _state(F.col("location")),
    }
    for days in TREND_DAYS:
        recent = F.col(f"songs_last_{days}d")
        before = F.col("lookback_songs") - recent
        derived[f"trend_{days}d"] = (recent / days + 1) / (before / (lookback_days - days) + 1)
    out = agg.withColumns(derived).withColumn("region", _region(F.col("state")))
    return out.fillna(UNKNOWN, subset=["level", "gender"])


def _build(
    agg: DataFrame, users: DataFrame, bounds: _Bounds, lookback_days: int, labelled: bool, keys: Sequence[str] = ()
) -> DataFrame:
    """Feature columns (and the label if ``labelled``) from the per-user aggregates of ``bounds``'s window(s);
    ``keys`` are columns of ``agg`` kept in front (which table of a stack a row belongs to)."""
    agg = agg.join(users.select(*USER_COLUMNS), "userId", "left")
    if bounds.label_mode == "horizon":
        churn_ts = F.col("churn_ts")
        not_cancelled = churn_ts.isNull() | (churn_ts >= bounds.cutoff_ts)
        agg = agg.filter((F.col("lookback_events") > 0) & not_cancelled)
        label = churn_ts.isNotNull() & (churn_ts < bounds.horizon_end_ts)
    else:
        label = F.col("churn") == 1
    out = _derive(agg, bounds, lookback_days)
    names = feature_columns(bounds.label_mode)
    numeric = set(feature_columns(bounds.label_mode, ("numeric",)))
    cols = [F.col(n).cast("double").alias(n) if n in numeric else F.col(n) for n in names]
    if labelled:
        cols.insert(0, F.when(label, 1).otherwise(0).cast("int").alias("churn"))
    return out.select(*keys, "userId", *cols)


def build_features(
    events: DataFrame,
    users: DataFrame,
    label_mode: str = DEFAULT_LABEL_MODE,
    cutoff_date: str = "",
    horizon_days: int = 14,
    lookback_days: int = 28,
) -> DataFrame:
    """Per-user training table: ``userId``, ``churn`` (0/1) and the features of ``label_mode``.

    ``events`` are the clean events; ``users`` is the table of ``label.label_users`` (the one place
    that defines churn). Reads the events in two passes, whatever the number of features.
    """
    window = resolve_window(users, label_mode, cutoff_date, horizon_days, lookback_days)
    return _build(aggregates(events, window), users, _Bounds.of(window), lookback_days, labelled=True)


def build_features_at(
    events: DataFrame,
    users: DataFrame,
    cutoff_dates: Sequence[str],
    horizon_days: int = 14,
    lookback_days: int = 28,
) -> DataFrame:
    """The horizon-mode ``build_features`` table as of each of ``cutoff_dates``, stacked behind a ``cutoff_date``
    column (ISO date), from two passes over the events in all instead of two per cutoff.

    The rows of a cutoff are those of ``build_features(events, users, "horizon", cutoff_date, horizon_days,
    lookback_days)``, to the bit (see :func:`~sparkify_utils.features.aggregate.aggregates_at`).
    """
    windows = [resolve_window(users, "horizon", day, horizon_days, lookback_days) for day in cutoff_dates]
    labels = events.sparkSession.createDataFrame(
        [(i, w.cutoff_date, w.cutoff_ts, w.horizon_end_ts) for i, w in enumerate(windows)],
        f"{WINDOW} int, {CUTOFF_DATE} string, cutoff_ts long, horizon_end_ts long",
    )
    agg = aggregates_at(events, windows).join(F.broadcast(labels), WINDOW).drop(WINDOW)
    bounds = _Bounds("horizon", F.col("cutoff_ts"), F.col("horizon_end_ts"))
    return _build(agg, users, bounds, lookback_days, labelled=True, keys=(CUTOFF_DATE,))


def _log_end_window(users: DataFrame, label_mode: str, lookback_days: int) -> FeatureWindow:
    """The window of the scoring table: features up to the log's end, whatever the label mode."""
    check_mode(label_mode)
    return resolve_window(users, "whole_period", lookback_days=lookback_days)


def _scoring(agg: DataFrame, users: DataFrame, window: FeatureWindow, label_mode: str, lookback_days: int) -> DataFrame:
    """The scoring table from the per-user aggregates of ``window`` (see ``build_scoring``)."""
    if label_mode == "whole_period":
        features = _build(agg, users, _Bounds.of(window), lookback_days, labelled=True)
        # Recency would leak the label as a model input in this mode, but the at-risk list needs it.
        recency = users.select("userId", ((F.lit(window.log_end_ts) - F.col("last_ts")) / DAY_MS).alias("recency_days"))
        return features.filter(F.col("churn") == 0).drop("churn").join(recency, "userId", "left")
    return _build(agg, users, _Bounds.of(replace(window, label_mode="horizon")), lookback_days, labelled=False)


def build_scoring(
    events: DataFrame,
    users: DataFrame,
    label_mode: str = DEFAULT_LABEL_MODE,
    lookback_days: int = 28,
) -> DataFrame:
    """Users to score now, with the training table's feature columns and no label.

    ``horizon``: the users active in the last ``lookback_days`` of the log and not cancelled, with
    features at the log's end. ``whole_period``: the users who have not churned, plus their
    ``recency_days`` (shown in the at-risk list, never a model input in this mode).
    """
    window = _log_end_window(users, label_mode, lookback_days)
    return _scoring(aggregates(events, window), users, window, label_mode, lookback_days)


def user_item_table(events: DataFrame, users: DataFrame) -> DataFrame:
    """The original project's whole-period per-user table (page counts without the cancellation pages).

    Built from the same two passes as the features; ``distinct_songs`` counts (artist, song) pairs.
    """
    return _user_item(aggregates(events, resolve_window(users, "whole_period")), users)


def _user_item(agg: DataFrame, users: DataFrame) -> DataFrame:
    return (
        users.select("userId", "churn")
        .join(agg, "userId")
        .select(
            "userId",
            "churn",
            "gender",
            F.when(F.col("paid_events") > 0, "paid").otherwise("free").alias("level_max"),
            F.when(F.col("songs") > 0, F.col("song_seconds") / F.col("songs")).alias("song_length_avg"),
            F.col("song_max").alias("song_length_max"),
            F.col("song_min").alias("song_length_min"),
            "distinct_songs",
            "sessions",
            *COUNTED_PAGES,
        )
    )


@dataclass(frozen=True)
class FeatureTables:
    """A run's per-user tables: training ``features``, users to score, and the original ``user_item`` table."""

    features: DataFrame
    scoring: DataFrame
    user_item: DataFrame
    #: The features of the other label mode, to compare class balances (read it before ``write_outputs``).
    other: DataFrame
    #: Per-user aggregates the four share, kept in memory until ``write_outputs`` has written them.
    cached: DataFrame


def build_tables(
    events: DataFrame,
    users: DataFrame,
    label_mode: str = DEFAULT_LABEL_MODE,
    cutoff_date: str = "",
    horizon_days: int = 14,
    lookback_days: int = 28,
) -> FeatureTables:
    """``build_features``, ``build_scoring`` and ``user_item_table``, and the other label mode's features, from
    as few passes over the events as possible.

    The scoring and user_item tables (and whole_period features) all aggregate the events up to the log's
    end; horizon features aggregate them up to the cutoff too, in the same two passes (``aggregates_at``).
    Those aggregates (a row per user and window) are computed once and cached, so the events are read twice
    in all, instead of eight times.
    """
    window = resolve_window(users, label_mode, cutoff_date, horizon_days, lookback_days)
    other_mode = next(mode for mode in LABEL_MODES if mode != label_mode)
    other = resolve_window(users, other_mode, cutoff_date, horizon_days, lookback_days)
    # The whole_period window is the log's end: two windows serve both modes and the scoring table.
    end = _log_end_window(users, label_mode, lookback_days)
    cached = aggregates_at(events, [end, window if label_mode == "horizon" else other]).cache()
    end_agg, horizon_agg = (cached.filter(F.col(WINDOW) == i).drop(WINDOW) for i in (0, 1))
    agg = {"whole_period": end_agg, "horizon": horizon_agg}
    return FeatureTables(
        features=_build(agg[label_mode], users, _Bounds.of(window), lookback_days, labelled=True),
        scoring=_scoring(end_agg, users, end, label_mode, lookback_days),
        user_item=_user_item(end_agg, users),
        other=_build(agg[other_mode], users, _Bounds.of(other), lookback_days, labelled=True),
        cached=cached,
    )


def write_outputs(paths: RunPaths, tables: FeatureTables, label_mode: str) -> dict[str, str]:
    """Write features/scoring Parquet (Spark) and feature_dictionary.csv/user_item.csv (driver).

    Releases the tables' cached aggregates afterwards.
    """
    # Descriptive columns (e.g. 50 states for a few hundred users) stay out of the model tables.
    descriptive = feature_columns(label_mode, kinds=("descriptive",))
    written = {"features": paths.dataset(FEATURE_TABLE), "scoring": paths.dataset(SCORING_TABLE)}
    local: dict[str, Path] = {"feature_dictionary": paths.file(FEATURE_DICTIONARY), "user_item": paths.file(USER_ITEM)}
    try:
        tables.features.drop(*descriptive).write.mode("overwrite").parquet(written["features"])
        tables.scoring.drop(*descriptive).write.mode("overwrite").parquet(written["scoring"])
        tables.user_item.orderBy("userId").toPandas().to_csv(local["user_item"], index=False)  # one row per user
    finally:
        tables.cached.unpersist()
    dictionary = feature_dictionary(label_mode)
    dictionary[dictionary["kind"] != "descriptive"].to_csv(local["feature_dictionary"], index=False)
    return {**written, **{k: str(v) for k, v in local.items()}}

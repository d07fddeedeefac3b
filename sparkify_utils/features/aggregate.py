"""The per-user aggregates of the events before a cutoff: two passes over the events, whatever the features.

Pass 1 is one conditional aggregation per session, rolled up to users; pass 2 counts distinct songs
and artists (the only counts that need the events themselves).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkify_utils.artifacts import EDA
from sparkify_utils.data.schema import CANCEL_PAGES, DAY_MS, MINUTE_MS, SONG_PAGE
from sparkify_utils.features.catalog import COUNTED_PAGES, EVENT_COLUMNS, PROFILE_COLUMNS, TREND_DAYS, require_columns
from sparkify_utils.features.window import FeatureWindow, ms_to_date


def _count(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _last(column: str) -> Column:
    """Value at the group's latest event (ties broken by value, so the result is deterministic)."""
    return F.max(F.struct("ts", column))[column]


def _feature_events(events: DataFrame, window: FeatureWindow) -> DataFrame:
    """Logged-in users' events strictly before the cutoff, without the cancellation pages."""
    require_columns(
        events,
        EVENT_COLUMNS,
        "events",
        f"pass the clean events written by notebook {EDA} (read.read_clean_events).",
    )
    cond = (F.col("userId") != "") & ~F.col("page").isin(*CANCEL_PAGES) & (F.col("ts") < window.cutoff_ts)
    if "event_date" in events.columns:
        # Redundant with the ts test, but lets Spark skip whole days of events partitioned by event_date.
        cond &= F.col("event_date") <= F.lit(ms_to_date(window.cutoff_ts - 1))
    return events.filter(cond).select(*EVENT_COLUMNS)


def _session_aggregates(ev: DataFrame, window: FeatureWindow) -> tuple[DataFrame, list[str]]:
    """Pass 1: one conditional aggregation per session; returns it and the names of its event counts.

    Session ids repeat across users, so a session is a (userId, sessionId) pair. Every count is a
    conditional sum in this one aggregation; the users' totals are sums over their sessions.
    """
    page, ts = F.col("page"), F.col("ts")
    is_song = page == SONG_PAGE
    conditions = {
        "songs": is_song,
        "events": F.lit(True),
        "paid_events": F.col("level") == "paid",
        **{p: page == p for p in COUNTED_PAGES},
        "lookback_events": ts >= window.lookback_start_ts,
        "lookback_songs": is_song & (ts >= window.lookback_start_ts),
        **{f"songs_last_{d}d": is_song & (ts >= window.cutoff_ts - d * DAY_MS) for d in TREND_DAYS},
    }
    sessions = ev.groupBy("userId", "sessionId").agg(
        *[_count(condition).alias(name) for name, condition in conditions.items()],
        F.sum(F.when(is_song, F.col("length"))).alias("song_seconds"),
        F.min(F.when(is_song, F.col("length"))).alias("song_min"),
        F.max(F.when(is_song, F.col("length"))).alias("song_max"),
        F.min("ts").alias("start_ts"),
        F.max("ts").alias("end_ts"),
        F.min("registration").alias("registration"),
        F.collect_set(F.floor(ts / DAY_MS)).alias("days"),  # one or two days per session
        *[_last(c).alias(c) for c in PROFILE_COLUMNS],
    )
    return sessions, list(conditions)


def _user_aggregates(sessions: DataFrame, counts: list[str]) -> DataFrame:
    """Roll the sessions up to one row per user (sessions are few: this is cheap)."""
    return sessions.groupBy("userId").agg(
        *[F.sum(name).alias(name) for name in counts],
        F.count(F.lit(1)).alias("sessions"),
        F.avg("events").alias("events_per_session"),
        F.avg("songs").alias("songs_per_session"),
        F.avg((F.col("end_ts") - F.col("start_ts")) / MINUTE_MS).alias("session_minutes"),
        F.coalesce(F.sum("song_seconds"), F.lit(0.0)).alias("song_seconds"),
        F.min("song_min").alias("song_min"),
        F.max("song_max").alias("song_max"),
        # An account is at least as old as its first event (covers a missing registration).
        F.least(F.min("registration"), F.min("start_ts")).alias("registration_ts"),
        F.max("end_ts").alias("last_event_ts"),
        F.size(F.array_distinct(F.flatten(F.collect_list("days")))).alias("active_days"),
        # The latest session's latest value: max of (end ts, value) structs, as within a session.
        *[F.max(F.struct(F.col("end_ts").alias("ts"), F.col(c).alias(c)))[c].alias(c) for c in PROFILE_COLUMNS],
    )


def _song_aggregates(ev: DataFrame) -> DataFrame:
    """Pass 2: distinct songs and artists (the only counts that need the events themselves).

    Counted as the size of each user's set of 64-bit hashes: Spark plans two COUNT(DISTINCT)s as an
    Expand that shuffles every song twice, three times slower on the full log. Two different songs of
    one user share a hash with probability ~ n^2 / 2^65 (1e-13 for 10,000 songs), so the counts are exact
    in practice. Rows with a null artist or song do not count, as in COUNT(DISTINCT artist, song).
    """
    artist, song = F.col("artist"), F.col("song")
    return (
        ev.filter(F.col("page") == SONG_PAGE)
        .groupBy("userId")
        .agg(
            F.size(F.collect_set(F.when(artist.isNotNull() & song.isNotNull(), F.xxhash64(artist, song)))).alias(
                "distinct_songs"
            ),
            F.size(F.collect_set(F.when(artist.isNotNull(), F.xxhash64(artist)))).alias("distinct_artists"),
        )
    )


def aggregates(events: DataFrame, window: FeatureWindow) -> DataFrame:
    """Raw per-user aggregates of the events before the cutoff: the two passes over the events."""
    ev = _feature_events(events, window)
    sessions, counts = _session_aggregates(ev, window)
    agg = _user_aggregates(sessions, counts).join(_song_aggregates(ev), "userId", "left")
    return agg.fillna(0, subset=["distinct_songs", "distinct_artists"])

"""The per-user aggregates of the events before a cutoff, or before each of several cutoffs: two passes over
the events, whatever the features and however many cutoffs.

Pass 1 is one conditional aggregation per session and day, rolled up to each window's sessions, then users;
pass 2 counts distinct songs and artists (the only counts that need the events themselves).

Several cutoffs (the backtest's; the horizon features and the scoring table) share the two passes
(:func:`aggregates_at`). Cutoffs, lookback starts and trend windows are UTC midnights, so whether an event
counts in a window depends only on its day: pass 1 keeps
each session's days apart, and each window rolls up the days before its cutoff; pass 2 keeps the songs heard
between two consecutive cutoffs apart, and each window unites the sets before its cutoff. Song lengths and
session durations are summed as integers, so a total does not depend on how Spark splits and orders its parts:
the aggregates of a window are the same to the bit whether it comes alone or with others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkify_utils.artifacts import EDA
from sparkify_utils.data.schema import CANCEL_PAGES, DAY_MS, MINUTE_MS, SONG_PAGE
from sparkify_utils.features.catalog import COUNTED_PAGES, EVENT_COLUMNS, PROFILE_COLUMNS, TREND_DAYS, require_columns
from sparkify_utils.features.window import FeatureWindow, ms_to_date

#: Column of :func:`aggregates_at`'s rows: the position of their window in the list of windows.
WINDOW = "window"
#: Song lengths are summed in whole microseconds (see ``_session_partials``).
_US_PER_S = 1_000_000
#: Column of ``_window_sessions``'s parts: the time of a part's latest event.
_PART_END = "__part_end_ts"


def _count(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _day(ts: Column) -> Column:
    """Days since the epoch (UTC) of an epoch-ms timestamp."""
    return F.floor(ts / DAY_MS)


def _feature_events(events: DataFrame, cutoff_ts: int) -> DataFrame:
    """Logged-in users' events strictly before ``cutoff_ts``, without the cancellation pages."""
    require_columns(
        events,
        EVENT_COLUMNS,
        "events",
        f"pass the clean events written by notebook {EDA} (read.read_clean_events).",
    )
    cond = (F.col("userId") != "") & ~F.col("page").isin(*CANCEL_PAGES) & (F.col("ts") < cutoff_ts)
    if "event_date" in events.columns:
        # Redundant with the ts test, but lets Spark skip whole days of events partitioned by event_date.
        cond &= F.col("event_date") <= F.lit(ms_to_date(cutoff_ts - 1))
    return events.filter(cond).select(*EVENT_COLUMNS)


def _event_counts() -> dict[str, Column]:
    """The per-session counts that do not depend on the window: name -> the events it counts."""
    page = F.col("page")
    return {
        "songs": page == SONG_PAGE,
        "events": F.lit(True),
        "paid_events": F.col("level") == "paid",
        **{p: page == p for p in COUNTED_PAGES},
    }


def _window_counts(cutoff_day: Column, lookback_day: Column) -> dict[str, tuple[str, Column]]:
    """The per-session counts that depend on the window: name -> (the count of ``_event_counts`` it takes, the
    day it starts on)."""
    return {
        "lookback_events": ("events", lookback_day),
        "lookback_songs": ("songs", lookback_day),
        **{f"songs_last_{d}d": ("songs", cutoff_day - d) for d in TREND_DAYS},
    }


def _session_partials() -> dict[str, tuple[Column, Callable[[str], Column]]]:
    """The other per-session aggregates: name -> (its aggregate of events, how the aggregates of parts combine)."""
    song_length = F.when(F.col("page") == SONG_PAGE, F.col("length"))
    return {
        # A double sum depends on the order Spark adds the songs in, which follows how it splits the events and
        # the parts; whole microseconds (the log's lengths have five decimals) add up exactly. A
        # non-finite length (none in a Sparkify log) is left out rather than failing the cast.
        "song_us": (F.sum(F.rint(song_length * _US_PER_S).try_cast("long")), F.sum),
        "song_min": (F.min(song_length), F.min),
        "song_max": (F.max(song_length), F.max),
        "start_ts": (F.min("ts"), F.min),
        "end_ts": (F.max("ts"), F.max),
        "registration": (F.min("registration"), F.min),
    }


def _profile_values(sessions: DataFrame) -> DataFrame:
    """The profile columns' values out of their (ts, value) structs."""
    return sessions.withColumns({c: F.col(c)[c] for c in PROFILE_COLUMNS})


def _user_aggregates(sessions: DataFrame, counts: list[str], keys: Sequence[str] = ()) -> DataFrame:
    """Roll the sessions up to one row per user (per ``keys`` and user; sessions are few: this is cheap)."""
    return sessions.groupBy(*keys, "userId").agg(
        *[F.sum(name).alias(name) for name in counts],
        F.count(F.lit(1)).alias("sessions"),
        F.avg("events").alias("events_per_session"),
        F.avg("songs").alias("songs_per_session"),
        # Averaged in whole milliseconds (exact sums, see _session_partials), then in minutes.
        (F.avg(F.col("end_ts") - F.col("start_ts")) / MINUTE_MS).alias("session_minutes"),
        F.coalesce(F.sum("song_us") / _US_PER_S, F.lit(0.0)).alias("song_seconds"),
        F.min("song_min").alias("song_min"),
        F.max("song_max").alias("song_max"),
        # An account is at least as old as its first event (covers a missing registration).
        F.least(F.min("registration"), F.min("start_ts")).alias("registration_ts"),
        F.max("end_ts").alias("last_event_ts"),
        F.size(F.array_distinct(F.flatten(F.collect_list("days")))).alias("active_days"),
        # The latest session's latest value: max of (end ts, value) structs, as within a session.
        *[F.max(F.struct(F.col("end_ts").alias("ts"), F.col(c).alias(c)))[c].alias(c) for c in PROFILE_COLUMNS],
    )


def _song_keys() -> dict[str, Column]:
    """Per distinct-count column, the 64-bit hash of what it counts; null (not counted) for a null artist or song,
    as in COUNT(DISTINCT artist, song)."""
    artist, song = F.col("artist"), F.col("song")
    return {
        "distinct_songs": F.when(artist.isNotNull() & song.isNotNull(), F.xxhash64(artist, song)),
        "distinct_artists": F.when(artist.isNotNull(), F.xxhash64(artist)),
    }


def aggregates(events: DataFrame, window: FeatureWindow) -> DataFrame:
    """Raw per-user aggregates of the events before the cutoff: the two passes over the events."""
    return aggregates_at(events, [window]).drop(WINDOW)


def _window_sessions(ev: DataFrame, windows: DataFrame) -> tuple[DataFrame, list[str]]:
    """Pass 1: the sessions of each window (``WINDOW``, userId, sessionId) and the names of their event counts.

    Session ids repeat across users, so a session is a (userId, sessionId) pair. The events are aggregated once
    per (session, day), window-independent aggregates only (sessions x days rows, far fewer than the events);
    each window then takes its sessions' days before the cutoff, and counts a window-dependent count on a day if
    the day is on or after the count's start (every start is a midnight). The users' totals are sums over their
    sessions.

    A profile column's value is the one at the session's latest event, ties broken by value so that the result
    is deterministic: the maximum of (ts, value). The profile columns are keys of the parts rather than such
    maxima over the events, because a maximum of structs cannot be kept in a hash aggregation's buffer and Spark
    would sort every event (measured on the full log: this pass in 44 s instead of 32 s). A value is constant
    within its part, so the maximum of (latest ts, value) over a session's parts is the maximum over its events.
    """
    partials = _session_partials()
    day, cutoff_day, lookback_day = F.col("day"), F.col("cutoff_day"), F.col("lookback_day")
    parts = ev.groupBy("userId", "sessionId", _day(F.col("ts")).alias("day"), *PROFILE_COLUMNS).agg(
        *[_count(condition).alias(name) for name, condition in _event_counts().items()],
        *[agg.alias(name) for name, (agg, _) in partials.items()],
        F.max("ts").alias(_PART_END),
    )
    windowed = _window_counts(cutoff_day, lookback_day)
    sessions = (
        parts.join(F.broadcast(windows), day < cutoff_day)
        .groupBy(WINDOW, "userId", "sessionId")
        .agg(
            *[F.sum(name).alias(name) for name in _event_counts()],
            *[
                F.sum(F.when(day >= start, F.col(counted)).otherwise(0)).alias(name)
                for name, (counted, start) in windowed.items()
            ],
            *[combine(name).alias(name) for name, (_, combine) in partials.items()],
            *[F.max(F.struct(F.col(_PART_END).alias("ts"), F.col(c))).alias(c) for c in PROFILE_COLUMNS],
            F.collect_set("day").alias("days"),
        )
    )
    return _profile_values(sessions), [*_event_counts(), *windowed]


def _window_song_aggregates(ev: DataFrame, windows: Sequence[FeatureWindow]) -> DataFrame:
    """Pass 2: distinct songs and artists of each window (``WINDOW``, userId), the only counts that need the
    events themselves.

    Each song goes into the set of its period, between two consecutive cutoffs, so it is hashed and inserted
    once; a window counts the distinct members of the sets of the periods before its cutoff. Counted as sizes of
    sets of 64-bit hashes: Spark plans two COUNT(DISTINCT)s as an Expand that shuffles every song twice, three
    times slower on the full log. Two different songs of one user share a hash with probability ~ n^2 / 2^65
    (1e-13 for 10,000 songs), so the counts are exact in practice.
    """
    cutoffs = sorted({w.cutoff_ts for w in windows})
    ts = F.col("ts")
    period = sum((F.when(ts >= c, 1).otherwise(0) for c in cutoffs[:-1]), F.lit(0))
    keys = _song_keys()
    sets = (
        ev.filter(F.col("page") == SONG_PAGE)
        .withColumn("period", period)
        .groupBy("userId")
        .agg(
            *[
                F.collect_set(F.when(F.col("period") == p, key)).alias(f"{name}_{p}")
                for name, key in keys.items()
                for p in range(len(cutoffs))
            ]
        )
    )

    def distinct(name: str, periods: int) -> Column:
        return F.size(F.array_distinct(F.concat(*[F.col(f"{name}_{p}") for p in range(periods)])))

    per_window = [
        F.struct(F.lit(i).alias(WINDOW), *[distinct(name, cutoffs.index(w.cutoff_ts) + 1).alias(name) for name in keys])
        for i, w in enumerate(windows)
    ]
    return sets.select("userId", F.inline(F.array(*per_window)))


def aggregates_at(events: DataFrame, windows: Sequence[FeatureWindow]) -> DataFrame:
    """``aggregates`` of each of ``windows``, stacked with a leading ``WINDOW`` column, from two passes in all."""
    if not windows:
        raise ValueError("aggregates_at needs at least one window.")
    if any(ts % DAY_MS for w in windows for ts in (w.cutoff_ts, w.lookback_start_ts)):
        raise ValueError("aggregates_at needs windows whose cutoff and lookback start are UTC midnights.")
    spark = events.sparkSession
    bounds = spark.createDataFrame(
        [(i, w.cutoff_ts // DAY_MS, w.lookback_start_ts // DAY_MS) for i, w in enumerate(windows)],
        f"{WINDOW} int, cutoff_day long, lookback_day long",
    )
    ev = _feature_events(events, max(w.cutoff_ts for w in windows))
    sessions, counts = _window_sessions(ev, bounds)
    agg = _user_aggregates(sessions, counts, keys=(WINDOW,))
    agg = agg.join(_window_song_aggregates(ev, windows), [WINDOW, "userId"], "left")
    return agg.fillna(0, subset=list(_song_keys()))

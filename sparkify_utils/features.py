"""Leakage-safe per-user churn features from the clean events, in two label modes.

``whole_period`` (the original project's framing): the label is "cancelled at any time in the log";
features use all of a user's events except the cancellation pages, and no feature is anchored on
the user's own last event (a churner's last event *is* the cancellation). Recency and trends are
therefore left out, and tenure is measured at the log's end, a moment common to every user.

``horizon`` (a forecasting framing): at a cutoff, features use only events strictly before it;
the population is the users active in the ``lookback_days`` before the cutoff and not cancelled
before it; the label is "cancels within ``horizon_days`` after the cutoff". The same code scores
the users active at the end of the log, where no label exists yet.

Events are read in two passes whatever the number of features: one conditional aggregation per
session (rolled up to users), and one over the songs for the distinct song/artist counts. The label
comes from the users table of ``label.label_users``, the one definition of churn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkify_utils.config import RunPaths
from sparkify_utils.schema import CANCEL_PAGES, PAGES

#: The two ways of defining the label (see the module docstring).
LABEL_MODES = ("whole_period", "horizon")
DEFAULT_LABEL_MODE = "whole_period"
DAY_MS = 86_400_000
#: Windows (days before the cutoff) of the recent-activity and trend features.
TREND_DAYS = (7, 14)

#: Event columns the features read.
EVENT_COLUMNS = (
    "userId", "sessionId", "ts", "page", "song", "artist", "length", "level", "gender",
    "location", "userAgent", "registration",
)
#: Profile columns taken from the user's latest event before the cutoff.
PROFILE_COLUMNS = ("level", "gender", "userAgent", "location")
#: Users-table columns the features read (written by ``label.label_users``).
USER_COLUMNS = ("userId", "churn", "churn_ts", "first_ts", "last_ts")

#: Pages whose visits are counted per user: all but the two that reveal the label.
COUNTED_PAGES = tuple(p for p in PAGES if p not in CANCEL_PAGES)
#: Engagement features: a page's visits per song played.
RATE_PAGES = {
    "thumbs_up_per_song": "Thumbs Up",
    "thumbs_down_per_song": "Thumbs Down",
    "playlist_adds_per_song": "Add to Playlist",
    "friend_adds_per_song": "Add Friend",
    "ads_per_song": "Roll Advert",
    "errors_per_song": "Error",
    "help_per_song": "Help",
    "settings_per_song": "Settings",
    "home_per_song": "Home",
    "logouts_per_song": "Logout",
    "upgrade_visits_per_song": "Upgrade",
    "downgrade_visits_per_song": "Downgrade",
}

#: US state -> Census region (the 50 states and DC).
STATE_REGION = {
    **dict.fromkeys(("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"), "Northeast"),
    **dict.fromkeys(("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"), "Midwest"),
    **dict.fromkeys(
        ("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN", "AR", "LA", "OK",
         "TX"),
        "South",
    ),
    **dict.fromkeys(
        ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"), "West"
    ),
}

#: User-agent pattern -> operating system, tested in order (iOS agents also say "Mac OS X",
#: Android agents also say "Linux", so the specific ones come first).
OS_PATTERNS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Macintosh|Mac OS X", "Mac"),
    ("Linux|X11", "Linux"),
)
UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Feature:
    """One output column: its name, kind (numeric/categorical/descriptive) and meaning."""

    name: str
    kind: str
    description: str
    horizon_only: bool = False


#: The feature dictionary. ``categorical`` columns are strings the model step encodes;
#: ``descriptive`` columns are shown in the notebook but not written to the model tables (too many levels).
FEATURES: tuple[Feature, ...] = (
    Feature("songs", "numeric", "songs played (NextSong events)"),
    Feature("distinct_songs", "numeric", "distinct (artist, song) pairs played"),
    Feature("distinct_artists", "numeric", "distinct artists played"),
    Feature("events", "numeric", "events of any page except the cancellation pages"),
    Feature("sessions", "numeric", "distinct sessions"),
    Feature("active_days", "numeric", "distinct UTC days with at least one event"),
    Feature("listening_hours", "numeric", "total length of the songs played, in hours"),
    Feature("songs_per_active_day", "numeric", "songs per active day"),
    Feature("sessions_per_active_day", "numeric", "sessions started per active day"),
    Feature("events_per_session", "numeric", "mean events per session"),
    Feature("songs_per_session", "numeric", "mean songs per session"),
    Feature("session_minutes", "numeric", "mean session length (first to last event), minutes"),
    Feature("distinct_song_share", "numeric", "distinct songs / songs played (1 = never repeats a song)"),
    *(Feature(name, "numeric", f"'{page}' events per song played") for name, page in RATE_PAGES.items()),
    Feature("paid_event_share", "numeric", "share of the user's events at the paid level"),
    Feature("upgrades", "numeric", "Submit Upgrade events (free -> paid)"),
    Feature("downgrades", "numeric", "Submit Downgrade events (paid -> free)"),
    Feature("tenure_days", "numeric",
            "days from registration to the cutoff (whole_period: to the log's end, common to all users)"),
    Feature("recency_days", "numeric", "days from the user's last event to the cutoff", horizon_only=True),
    *(
        feature
        for days in TREND_DAYS
        for feature in (
            Feature(f"songs_last_{days}d", "numeric", f"songs in the {days} days before the cutoff",
                    horizon_only=True),
            Feature(f"trend_{days}d", "numeric",
                    f"songs per day in the last {days} days / songs per day in the rest of the lookback "
                    "window (each +1, so zero activity is defined; >1 = growing)", horizon_only=True),
        )
    ),
    Feature("level", "categorical", "level (free/paid) at the user's last event before the cutoff"),
    Feature("gender", "categorical", "gender (M/F) from the profile"),
    Feature("os", "categorical", "operating system from the user agent (Windows/Mac/Linux/iPhone/iPad/...)"),
    Feature("region", "categorical", "US Census region of the location's (first) state"),
    Feature("state", "descriptive", "US state of the location (first code of multi-state areas)"),
)


class FeatureError(ValueError):
    """The inputs or parameters of the features step are wrong; the message says how to fix them."""


@dataclass(frozen=True)
class FeatureWindow:
    """Where the features stop and the label starts, as epoch milliseconds (UTC midnights)."""

    label_mode: str
    cutoff_ts: int
    lookback_start_ts: int
    horizon_end_ts: int
    log_end_ts: int

    @property
    def cutoff_date(self) -> str:
        """The cutoff as an ISO date."""
        return _ms_to_date(self.cutoff_ts).isoformat()

    @property
    def log_last_day(self) -> str:
        """The last day of the log (ISO date)."""
        return _ms_to_date(self.log_end_ts - DAY_MS).isoformat()


def _ms_to_date(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date()


def _date_to_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _check_mode(label_mode: str) -> None:
    if label_mode not in LABEL_MODES:
        raise FeatureError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}.")


def _require_columns(df: DataFrame, columns: tuple[str, ...], what: str, fix: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FeatureError(f"The {what} lack the column(s) {', '.join(missing)}: {fix}")


def feature_columns(label_mode: str = DEFAULT_LABEL_MODE, kinds: tuple[str, ...] = ()) -> list[str]:
    """Names of the feature columns of ``label_mode`` (optionally only the given kinds), in order."""
    _check_mode(label_mode)
    return [
        f.name for f in FEATURES
        if (label_mode == "horizon" or not f.horizon_only) and (not kinds or f.kind in kinds)
    ]


def feature_dictionary(label_mode: str = DEFAULT_LABEL_MODE) -> pd.DataFrame:
    """The feature dictionary of ``label_mode`` as a table (feature, description, kind)."""
    names = set(feature_columns(label_mode))
    return pd.DataFrame(
        [(f.name, f.description, f.kind) for f in FEATURES if f.name in names],
        columns=["feature", "description", "kind"],
    )


def log_end_ts(users: DataFrame) -> int:
    """The midnight (epoch ms, UTC) after the log's last event of a logged-in user."""
    _require_columns(users, USER_COLUMNS, "users table", "build it with label.label_users (notebook 01_eda).")
    last_ts = users.agg(F.max("last_ts")).first()[0]
    if last_ts is None:
        raise FeatureError("The users table is empty: the log has no logged-in users to build features for.")
    return _date_to_ms(_ms_to_date(last_ts)) + DAY_MS


def resolve_window(
    users: DataFrame,
    label_mode: str = DEFAULT_LABEL_MODE,
    cutoff_date: str = "",
    horizon_days: int = 14,
    lookback_days: int = 28,
) -> FeatureWindow:
    """Turn the notebook parameters into a :class:`FeatureWindow` (reads one number from ``users``).

    The log ends at the midnight after its last event. ``whole_period`` puts the cutoff there;
    ``horizon`` defaults to the cutoff whose ``horizon_days`` end exactly with the log.
    """
    _check_mode(label_mode)
    if horizon_days < 1:
        raise FeatureError(f"horizon_days must be at least 1, got {horizon_days}.")
    if lookback_days <= max(TREND_DAYS):
        raise FeatureError(
            f"lookback_days must exceed the longest trend window ({max(TREND_DAYS)} days) so the trend "
            f"features have a 'before' period; got {lookback_days}."
        )
    log_end = log_end_ts(users)
    if label_mode == "whole_period":
        cutoff = log_end
    elif cutoff_date:
        try:
            cutoff = _date_to_ms(dt.date.fromisoformat(cutoff_date))
        except ValueError as exc:
            msg = f"cutoff_date must be an ISO date like 2018-11-15 (or empty), got {cutoff_date!r}."
            raise FeatureError(msg) from exc
        if cutoff + horizon_days * DAY_MS > log_end:
            latest = _ms_to_date(log_end - horizon_days * DAY_MS).isoformat()
            raise FeatureError(
                f"cutoff_date {cutoff_date} + horizon_days {horizon_days} runs past the log's last day "
                f"{_ms_to_date(log_end - DAY_MS)}, so some labels would be unobserved: use a cutoff_date "
                f"on or before {latest} (or leave it empty)."
            )
    else:
        cutoff = log_end - horizon_days * DAY_MS
    return FeatureWindow(
        label_mode=label_mode,
        cutoff_ts=cutoff,
        lookback_start_ts=cutoff - lookback_days * DAY_MS,
        horizon_end_ts=cutoff + horizon_days * DAY_MS if label_mode == "horizon" else log_end,
        log_end_ts=log_end,
    )


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, 0 when the denominator is 0 (e.g. a rate of a user with no songs)."""
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(0.0))


def _count(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _last(column: str) -> Column:
    """Value at the group's latest event (ties broken by value, so the result is deterministic)."""
    return F.max(F.struct("ts", column))[column]


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


def _feature_events(events: DataFrame, window: FeatureWindow) -> DataFrame:
    """Logged-in users' events strictly before the cutoff, without the cancellation pages."""
    _require_columns(
        events, EVENT_COLUMNS, "events",
        "pass the clean events written by notebook 01_eda (load.read_clean_events).",
    )
    cond = (F.col("userId") != "") & ~F.col("page").isin(*CANCEL_PAGES) & (F.col("ts") < window.cutoff_ts)
    if "event_date" in events.columns:
        # Redundant with the ts test, but lets Spark skip whole days of events partitioned by event_date.
        cond &= F.col("event_date") <= F.lit(_ms_to_date(window.cutoff_ts - 1))
    return events.filter(cond).select(*EVENT_COLUMNS)


def _session_aggregates(ev: DataFrame, window: FeatureWindow) -> tuple[DataFrame, list[str]]:
    """Pass 1: one conditional aggregation per session; returns it and the names of its event counts.

    Session ids repeat across users, so a session is a (userId, sessionId) pair. Every count is a
    conditional sum in this one aggregation; the users' totals are sums over their sessions.
    """
    page, ts = F.col("page"), F.col("ts")
    is_song = page == "NextSong"
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
        F.avg((F.col("end_ts") - F.col("start_ts")) / 60_000).alias("session_minutes"),
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
    return ev.filter(F.col("page") == "NextSong").groupBy("userId").agg(
        F.size(F.collect_set(F.when(artist.isNotNull() & song.isNotNull(), F.xxhash64(artist, song))))
        .alias("distinct_songs"),
        F.size(F.collect_set(F.when(artist.isNotNull(), F.xxhash64(artist)))).alias("distinct_artists"),
    )


def _aggregates(events: DataFrame, window: FeatureWindow) -> DataFrame:
    """Raw per-user aggregates of the events before the cutoff: the two passes over the events."""
    ev = _feature_events(events, window)
    sessions, counts = _session_aggregates(ev, window)
    agg = _user_aggregates(sessions, counts).join(_song_aggregates(ev), "userId", "left")
    return agg.fillna(0, subset=["distinct_songs", "distinct_artists"])


def _derive(agg: DataFrame, window: FeatureWindow, lookback_days: int) -> DataFrame:
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
        "tenure_days": (F.lit(window.cutoff_ts) - F.col("registration_ts")) / DAY_MS,
        "recency_days": (F.lit(window.cutoff_ts) - F.col("last_event_ts")) / DAY_MS,
        "os": _os(F.col("userAgent")),
        "state": _state(F.col("location")),
    }
    for days in TREND_DAYS:
        recent = F.col(f"songs_last_{days}d")
        before = F.col("lookback_songs") - recent
        derived[f"trend_{days}d"] = (recent / days + 1) / (before / (lookback_days - days) + 1)
    out = agg.withColumns(derived).withColumn("region", _region(F.col("state")))
    return out.fillna(UNKNOWN, subset=["level", "gender"])


def _build(agg: DataFrame, users: DataFrame, window: FeatureWindow, lookback_days: int, labelled: bool) -> DataFrame:
    """Feature columns (and the label if ``labelled``) from the per-user aggregates of ``window``."""
    agg = agg.join(users.select(*USER_COLUMNS), "userId", "left")
    if window.label_mode == "horizon":
        churn_ts = F.col("churn_ts")
        not_cancelled = churn_ts.isNull() | (churn_ts >= window.cutoff_ts)
        agg = agg.filter((F.col("lookback_events") > 0) & not_cancelled)
        label = churn_ts.isNotNull() & (churn_ts < window.horizon_end_ts)
    else:
        label = F.col("churn") == 1
    out = _derive(agg, window, lookback_days)
    names = feature_columns(window.label_mode)
    numeric = set(feature_columns(window.label_mode, ("numeric",)))
    cols = [F.col(n).cast("double").alias(n) if n in numeric else F.col(n) for n in names]
    if labelled:
        cols.insert(0, F.when(label, 1).otherwise(0).cast("int").alias("churn"))
    return out.select("userId", *cols)


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
    return _build(_aggregates(events, window), users, window, lookback_days, labelled=True)


def _log_end_window(users: DataFrame, label_mode: str, lookback_days: int) -> FeatureWindow:
    """The window of the scoring table: features up to the log's end, whatever the label mode."""
    _check_mode(label_mode)
    return resolve_window(users, "whole_period", lookback_days=lookback_days)


def _scoring(agg: DataFrame, users: DataFrame, window: FeatureWindow, label_mode: str, lookback_days: int) -> DataFrame:
    """The scoring table from the per-user aggregates of ``window`` (see ``build_scoring``)."""
    if label_mode == "whole_period":
        features = _build(agg, users, window, lookback_days, labelled=True)
        # Recency would leak the label as a model input in this mode, but the at-risk list needs it.
        recency = users.select("userId", ((F.lit(window.log_end_ts) - F.col("last_ts")) / DAY_MS).alias("recency_days"))
        return features.filter(F.col("churn") == 0).drop("churn").join(recency, "userId", "left")
    return _build(agg, users, replace(window, label_mode="horizon"), lookback_days, labelled=False)


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
    return _scoring(_aggregates(events, window), users, window, label_mode, lookback_days)


def class_balance(features: DataFrame) -> dict[str, float]:
    """Users, churners and churn rate of a features table (one tiny aggregate)."""
    row = features.agg(F.count(F.lit(1)).alias("users"), F.sum("churn").alias("churners")).first()
    users, churners = int(row["users"]), int(row["churners"] or 0)
    return {"users": users, "churners": churners, "churn_rate": churners / users if users else float("nan")}


def user_item_table(events: DataFrame, users: DataFrame) -> DataFrame:
    """The original project's whole-period per-user table (page counts without the cancellation pages).

    Built from the same two passes as the features; ``distinct_songs`` counts (artist, song) pairs.
    """
    return _user_item(_aggregates(events, resolve_window(users, "whole_period")), users)


def _user_item(agg: DataFrame, users: DataFrame) -> DataFrame:
    return users.select("userId", "churn").join(agg, "userId").select(
        "userId", "churn", "gender",
        F.when(F.col("paid_events") > 0, "paid").otherwise("free").alias("level_max"),
        F.when(F.col("songs") > 0, F.col("song_seconds") / F.col("songs")).alias("song_length_avg"),
        F.col("song_max").alias("song_length_max"),
        F.col("song_min").alias("song_length_min"),
        "distinct_songs", "sessions", *COUNTED_PAGES,
    )


def leaky_time_features(users: DataFrame) -> pd.DataFrame:
    """Time features as the published projects measured them (to each user's last event): shown, never used.

    ``recency_at_log_end``: days from the last event to the log's end; ``observed_days``: days from the
    first to the last event. A churner's last event is the cancellation, so both encode the label.
    """
    end = log_end_ts(users)
    return users.select(
        "userId", "churn",
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
        ranks = table[name].rank(method="average").to_numpy()  # ties share a rank, so they count 1/2
        auc = (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        rows.append((name, auc, max(auc, 1 - auc), table.loc[y, name].median(), table.loc[~y, name].median()))
    out = pd.DataFrame(rows, columns=["feature", "auc", "separation", "median_churn", "median_other"])
    return out.sort_values("separation", ascending=False, ignore_index=True)


def shuffled_auc(table: pd.DataFrame, features: list[str], seed: int, repeats: int = 20,
                 label: str = "churn") -> pd.Series:
    """Mean univariate AUC per feature over ``repeats`` random permutations of the label (~0.5 if sane)."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(repeats):
        shuffled = table.assign(**{label: rng.permutation(table[label].to_numpy())})
        runs.append(univariate_auc(shuffled, features, label).set_index("feature")["auc"])
    return pd.concat(runs, axis=1).mean(axis=1).rename("shuffled_auc")


@dataclass(frozen=True)
class FeatureTables:
    """A run's per-user tables: training ``features``, users to score, and the original ``user_item`` table."""

    features: DataFrame
    scoring: DataFrame
    user_item: DataFrame
    #: Per-user aggregates the three share, kept in memory until ``write_outputs`` has written them.
    cached: DataFrame


def build_tables(
    events: DataFrame,
    users: DataFrame,
    label_mode: str = DEFAULT_LABEL_MODE,
    cutoff_date: str = "",
    horizon_days: int = 14,
    lookback_days: int = 28,
) -> FeatureTables:
    """``build_features``, ``build_scoring`` and ``user_item_table`` from as few passes over the events as possible.

    The scoring and user_item tables (and whole_period features) all aggregate the events up to the log's
    end: that aggregation (one row per user) is computed once and cached, so whole_period reads the events
    twice in all and horizon four times, instead of six.
    """
    window = resolve_window(users, label_mode, cutoff_date, horizon_days, lookback_days)
    end = _log_end_window(users, label_mode, lookback_days)
    end_agg = _aggregates(events, end).cache()
    train_agg = end_agg if label_mode == "whole_period" else _aggregates(events, window)
    return FeatureTables(
        features=_build(train_agg, users, window, lookback_days, labelled=True),
        scoring=_scoring(end_agg, users, end, label_mode, lookback_days),
        user_item=_user_item(end_agg, users),
        cached=end_agg,
    )


def write_outputs(paths: RunPaths, tables: FeatureTables, label_mode: str) -> dict[str, str]:
    """Write features/scoring Parquet (Spark) and feature_dictionary.csv/user_item.csv (driver).

    Releases the tables' cached aggregates afterwards.
    """
    # Descriptive columns (e.g. 50 states for a few hundred users) stay out of the model tables.
    descriptive = feature_columns(label_mode, kinds=("descriptive",))
    written = {"features": paths.spark("features.parquet"), "scoring": paths.spark("scoring.parquet")}
    local: dict[str, Path] = {
        "feature_dictionary": paths.local("feature_dictionary.csv"), "user_item": paths.local("user_item.csv")
    }
    try:
        tables.features.drop(*descriptive).write.mode("overwrite").parquet(written["features"])
        tables.scoring.drop(*descriptive).write.mode("overwrite").parquet(written["scoring"])
        tables.user_item.orderBy("userId").toPandas().to_csv(local["user_item"], index=False)  # one row per user
    finally:
        tables.cached.unpersist()
    dictionary = feature_dictionary(label_mode)
    dictionary[dictionary["kind"] != "descriptive"].to_csv(local["feature_dictionary"], index=False)
    return {**written, **{k: str(v) for k, v in local.items()}}

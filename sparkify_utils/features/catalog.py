"""The feature catalogue: every per-user feature column, its kind and meaning, and the page groups behind them.

Both label modes (see :mod:`sparkify_utils.features.build`) share this dictionary; the horizon-only
features (recency, recent activity, trends) exist only where a common cutoff makes them leakage-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame

from sparkify_utils.data.schema import CANCEL_PAGES, PAGES, SONG_PAGE

#: The two ways of defining the label (see the module docstring).
LABEL_MODES = ("whole_period", "horizon")
DEFAULT_LABEL_MODE = "whole_period"
#: Windows (days before the cutoff) of the recent-activity and trend features.
TREND_DAYS = (7, 14)

#: Event columns the features read.
EVENT_COLUMNS = (
    "userId",
    "sessionId",
    "ts",
    "page",
    "song",
    "artist",
    "length",
    "level",
    "gender",
    "location",
    "userAgent",
    "registration",
)
#: Profile columns taken from the user's latest event before the cutoff.
PROFILE_COLUMNS = ("level", "gender", "userAgent", "location")
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
        ("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN", "AR", "LA", "OK", "TX"),
        "South",
    ),
    **dict.fromkeys(("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"), "West"),
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
    Feature("songs", "numeric", f"songs played ({SONG_PAGE} events)"),
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
    Feature(
        "tenure_days",
        "numeric",
        "days from registration to the cutoff (whole_period: to the log's end, common to all users)",
    ),
    Feature("recency_days", "numeric", "days from the user's last event to the cutoff", horizon_only=True),
    *(
        feature
        for days in TREND_DAYS
        for feature in (
            Feature(f"songs_last_{days}d", "numeric", f"songs in the {days} days before the cutoff", horizon_only=True),
            Feature(
                f"trend_{days}d",
                "numeric",
                f"songs per day in the last {days} days / songs per day in the rest of the lookback "
                "window (each +1, so zero activity is defined; >1 = growing)",
                horizon_only=True,
            ),
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


def check_mode(label_mode: str) -> None:
    if label_mode not in LABEL_MODES:
        raise FeatureError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}.")


def require_columns(df: DataFrame, columns: tuple[str, ...], what: str, fix: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FeatureError(f"The {what} lack the column(s) {', '.join(missing)}: {fix}")


def feature_columns(label_mode: str = DEFAULT_LABEL_MODE, kinds: tuple[str, ...] = ()) -> list[str]:
    """Names of the feature columns of ``label_mode`` (optionally only the given kinds), in order."""
    check_mode(label_mode)
    return [
        f.name for f in FEATURES if (label_mode == "horizon" or not f.horizon_only) and (not kinds or f.kind in kinds)
    ]


def feature_dictionary(label_mode: str = DEFAULT_LABEL_MODE) -> pd.DataFrame:
    """The feature dictionary of ``label_mode`` as a table (feature, description, kind)."""
    names = set(feature_columns(label_mode))
    return pd.DataFrame(
        [(f.name, f.description, f.kind) for f in FEATURES if f.name in names],
        columns=["feature", "description", "kind"],
    )

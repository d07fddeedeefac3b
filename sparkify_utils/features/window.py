"""Where features stop and the label starts: the cutoff, lookback and horizon of each label mode."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkify_utils.artifacts import EDA, USER_COLUMNS
from sparkify_utils.data.schema import DAY_MS
from sparkify_utils.features.catalog import (
    DEFAULT_LABEL_MODE,
    TREND_DAYS,
    FeatureError,
    check_mode,
    require_columns,
)


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
        return ms_to_date(self.cutoff_ts).isoformat()

    @property
    def log_last_day(self) -> str:
        """The last day of the log (ISO date)."""
        return ms_to_date(self.log_end_ts - DAY_MS).isoformat()


def ms_to_date(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date()


def date_to_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def log_end_ts(users: DataFrame) -> int:
    """The midnight (epoch ms, UTC) after the log's last event of a logged-in user."""
    require_columns(users, USER_COLUMNS, "users table", f"build it with label.label_users (notebook {EDA}).")
    last_ts = users.agg(F.max("last_ts")).first()[0]
    if last_ts is None:
        raise FeatureError("The users table is empty: the log has no logged-in users to build features for.")
    return date_to_ms(ms_to_date(last_ts)) + DAY_MS


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
    check_mode(label_mode)
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
            cutoff = date_to_ms(dt.date.fromisoformat(cutoff_date))
        except ValueError as exc:
            msg = f"cutoff_date must be an ISO date like 2018-11-15 (or empty), got {cutoff_date!r}."
            raise FeatureError(msg) from exc
        if cutoff + horizon_days * DAY_MS > log_end:
            latest = ms_to_date(log_end - horizon_days * DAY_MS).isoformat()
            raise FeatureError(
                f"cutoff_date {cutoff_date} + horizon_days {horizon_days} runs past the log's last day "
                f"{ms_to_date(log_end - DAY_MS)}, so some labels would be unobserved: use a cutoff_date "
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

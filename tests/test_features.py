"""Per-user features: hand-checked values, leakage guards, label modes, dictionary and AUC helpers."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from sparkify_utils.data import schema
from sparkify_utils.data.label import label_users
from sparkify_utils.data.read import EVENTS_SCHEMA
from sparkify_utils.features import build, catalog, univariate, window

START = dt.datetime(2018, 10, 1, tzinfo=dt.UTC)
DAY = schema.DAY_MS

WINDOWS_UA = "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 Chrome/36.0 Safari/537.36"
IPHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 Mobile/11D257"
MAC_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.77.4 Safari/537.77.4"
PROFILES = {
    "1": ("M", "Bakersfield, CA", WINDOWS_UA),
    "2": ("F", "New York-Newark-Jersey City, NY-NJ-PA", IPHONE_UA),
    "3": ("F", "Chicago-Naperville-Elgin, IL-IN-WI", MAC_UA),
    "4": ("M", "Boston-Cambridge-Newton, MA-NH", WINDOWS_UA),
}
REGISTRATION_MS = int(START.timestamp() * 1000) - 100 * DAY


def ms(day: float) -> int:
    """Epoch ms of ``day`` days after the log start (2018-10-01 UTC)."""
    return int(START.timestamp() * 1000 + day * DAY)


def event(user: str, session: int, day: float, page: str, level: str = "paid", song: int = 0) -> tuple:
    """One clean event row; songs get artist/title/length from ``song``."""
    ts = ms(day)
    is_song = page == "NextSong"
    if not user:
        return (
            None,
            "Logged Out",
            None,
            None,
            0,
            None,
            None,
            level,
            None,
            "GET",
            page,
            None,
            session,
            None,
            200,
            ts,
            None,
            "",
            dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date(),
        )
    gender, location, agent = PROFILES[user]
    return (
        f"artist{song % 3}" if is_song else None,
        "Cancelled" if "Cancellation" in page else "Logged In",
        "A",
        gender,
        0,
        "B",
        200.0 + song if is_song else None,
        level,
        location,
        "PUT",
        page,
        REGISTRATION_MS,
        session,
        f"song{song}" if is_song else None,
        200,
        ts,
        agent,
        user,
        dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date(),
    )


def session_rows(
    user: str, session: int, day: float, songs: int, level: str = "paid", extra: tuple[str, ...] = ()
) -> list[tuple]:
    """A session of ``songs`` songs (4 minutes apart) followed by the ``extra`` pages."""
    rows = [event(user, session, day + i * 240 / 86400, "NextSong", level, song=i) for i in range(songs)]
    rows += [event(user, session, day + (songs + i) * 240 / 86400, page, level) for i, page in enumerate(extra)]
    return rows


def cancellation(user: str, session: int, day: float) -> list[tuple]:
    """The two cancellation pages, one second apart."""
    return [event(user, session, day, "Cancel"), event(user, session, day + 1 / 86400, schema.CANCEL_PAGES[1])]


def base_rows() -> list[tuple]:
    """Four users over 40 days: 1 and 4 stay, 2 cancels on day 30, 3 cancels on day 5."""
    rows = []
    for d in range(0, 40, 2):  # user 1: a session every other day
        rows += session_rows("1", 100 + d, d + 0.5, songs=3, extra=("Thumbs Up",) if d % 4 == 0 else ())
    for d in range(0, 30, 3):  # user 2: free, ads, upgrades on day 12
        level = "free" if d < 12 else "paid"
        extra = ("Roll Advert", "Thumbs Down") if d < 12 else ("Home",)
        rows += session_rows("2", 200 + d, d + 0.25, songs=2, level=level, extra=extra)
    rows.append(event("2", 212, 12.3, "Submit Upgrade", "free"))
    rows += cancellation("2", 227, 29.9)
    rows += session_rows("3", 300, 1.0, songs=4) + cancellation("3", 300, 5.0)
    for d in (2, 20, 33, 38):  # user 4: sparse but active near the end
        rows += session_rows("4", 400 + d, d + 0.6, songs=1, extra=("Add Friend", "Error"))
    rows += [event("", 999, 3.0, "Home"), event("", 999, 3.1, "Login")]
    return rows


def frame(spark, rows):
    """DataFrame of clean events from rows."""
    return spark.createDataFrame(rows, EVENTS_SCHEMA)  # the clean-events contract 01 writes


def as_pandas(df) -> pd.DataFrame:
    """Per-user table as pandas, sorted by user (tiny)."""
    return df.toPandas().sort_values("userId", ignore_index=True)


@pytest.fixture(scope="module")
def base(spark):
    """The base events and their users table."""
    events = frame(spark, base_rows())
    return events, label_users(events)


@pytest.fixture(scope="module")
def whole(base):
    """Whole-period features of the base events (pandas)."""
    return as_pandas(build.build_features(*base, "whole_period"))


def test_hand_computed_values_whole_period(whole):
    out = whole.set_index("userId")
    assert list(out.index) == ["1", "2", "3", "4"]
    assert out["churn"].tolist() == [0, 1, 1, 0]
    u1 = out.loc["1"]
    assert u1["songs"] == 60 and u1["sessions"] == 20 and u1["active_days"] == 20
    assert u1["distinct_songs"] == 3 and u1["distinct_artists"] == 3
    assert u1["thumbs_up_per_song"] == pytest.approx(10 / 60)
    assert u1["session_minutes"] == pytest.approx(2 * 4 + (10 / 20) * 4)  # +1 page on half of them
    assert u1["listening_hours"] == pytest.approx(20 * (200 + 201 + 202) / 3600)
    assert u1["tenure_days"] == pytest.approx(100 + 39)  # log ends at the midnight after day 38
    assert (u1["os"], u1["state"], u1["region"], u1["gender"]) == ("Windows", "CA", "West", "M")
    u2 = out.loc["2"]
    assert (u2["upgrades"], u2["level"], u2["os"], u2["state"], u2["region"]) == (
        1,
        "paid",
        "iPhone",
        "NY",
        "Northeast",
    )
    assert u2["ads_per_song"] == pytest.approx(4 / 20)
    assert u2["paid_event_share"] == pytest.approx(18 / 35)  # 6 paid sessions x 3 events of 35
    assert out.loc["3", "region"] == "Midwest" and out.loc["4", "errors_per_song"] == 1.0
    assert set(out.columns) == {"churn", *catalog.feature_columns("whole_period")}
    assert not {"recency_days", "trend_7d"} & set(out.columns)  # anchored on the last event: leaky here


def test_whole_period_cancellation_pages_change_no_feature(spark, whole):
    before = whole
    # User 1 cancels right after its last session: only the label may move.
    leaked = frame(spark, base_rows() + cancellation("1", 138, 38.9))
    after = as_pandas(build.build_features(leaked, label_users(leaked), "whole_period"))
    assert after["churn"].tolist() == [1, 1, 1, 0]
    pd.testing.assert_frame_equal(before.drop(columns="churn"), after.drop(columns="churn"))


def test_horizon_events_at_or_after_cutoff_change_no_feature(spark, base):
    events, users = base
    before = as_pandas(build.build_features(events, users, "horizon", cutoff_date="2018-10-25"))
    late = base_rows()
    late += session_rows("1", 900, 24.0, songs=5, extra=("Thumbs Down", "Roll Advert", "Submit Downgrade"))
    late += session_rows("4", 901, 24.5, songs=9, level="free", extra=("Help", "Settings"))
    late += cancellation("4", 901, 26.0)
    late.append(event("1", 902, 24.0, "Logout"))  # exactly at the cutoff (midnight): excluded too
    leaked = frame(spark, late)
    after = as_pandas(build.build_features(leaked, label_users(leaked), "horizon", cutoff_date="2018-10-25"))
    pd.testing.assert_frame_equal(before.drop(columns="churn"), after.drop(columns="churn"))
    assert after.set_index("userId")["churn"].to_dict() == {"1": 0, "2": 1, "4": 1}


def test_horizon_population_label_and_time_features(base):
    events, users = base
    out = as_pandas(build.build_features(events, users, "horizon", cutoff_date="2018-10-21", horizon_days=14))
    out = out.set_index("userId")
    # 3 cancelled before the cutoff; 4 was active in the 28-day lookback (day 2) and stays.
    assert sorted(out.index) == ["1", "2", "4"]
    assert out["churn"].to_dict() == {"1": 0, "2": 1, "4": 0}  # 2 cancels on day 29.9 < day 20 + 14
    assert out.loc["1", "recency_days"] == pytest.approx(20 - (18.5 + 2 * 240 / 86400))
    assert out.loc["1", "tenure_days"] == pytest.approx(120)
    assert out.loc["1", "songs_last_7d"] == 9  # sessions on days 14, 16, 18
    # 9 songs in the last 7 days vs 7 sessions x 3 songs in the 21 lookback days before them
    assert out.loc["1", "trend_7d"] == pytest.approx((9 / 7 + 1) / (21 / 21 + 1))
    assert set(out.columns) == {"churn", *catalog.feature_columns("horizon")}


def test_horizon_default_cutoff_ends_with_the_log(base):
    _, users = base
    resolved = window.resolve_window(users, "horizon", horizon_days=14)
    assert resolved.log_last_day == "2018-11-08" and resolved.cutoff_date == "2018-10-26"
    assert resolved.horizon_end_ts == resolved.log_end_ts


def test_scoring_tables(base):
    events, users = base
    horizon = as_pandas(build.build_scoring(events, users, "horizon", lookback_days=28))
    assert horizon["userId"].tolist() == ["1", "4"]  # active in the last 28 days, not cancelled
    assert list(horizon.columns) == ["userId", *catalog.feature_columns("horizon")]
    assert horizon.set_index("userId").loc["1", "recency_days"] == pytest.approx(
        39 - (38.5 + 2 * 240 / 86400), abs=1e-6
    )
    scoring = as_pandas(build.build_scoring(events, users, "whole_period"))
    assert scoring["userId"].tolist() == ["1", "4"]
    assert list(scoring.columns) == ["userId", *catalog.feature_columns("whole_period"), "recency_days"]
    # Shown in the at-risk list only: days from the user's last event to the log's end.
    assert scoring.set_index("userId").loc["1", "recency_days"] == pytest.approx(
        39 - (38.5 + 2 * 240 / 86400), abs=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", catalog.LABEL_MODES)
def test_build_tables_matches_the_separate_builders(base, mode):
    events, users = base
    cutoff = "2018-10-20" if mode == "horizon" else ""
    other = next(m for m in catalog.LABEL_MODES if m != mode)
    tables = build.build_tables(events, users, mode, cutoff_date=cutoff)
    expected = {
        "features": build.build_features(events, users, mode, cutoff_date=cutoff),
        "scoring": build.build_scoring(events, users, mode),
        "user_item": build.user_item_table(events, users),
        "other": build.build_features(events, users, other, cutoff_date=cutoff),
    }
    for name, table in expected.items():
        pd.testing.assert_frame_equal(as_pandas(getattr(tables, name)), as_pandas(table), obj=f"{mode} {name}")
    assert tables.cached.is_cached
    tables.cached.unpersist()


def test_categorical_parsing(spark):
    rows = [
        (
            "Tampa-St. Petersburg-Clearwater, FL",
            "Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X)",
            "FL",
            "South",
            "iPad",
        ),
        ("Portland-Vancouver-Hillsboro, OR-WA", "Mozilla/5.0 (X11; Linux x86_64; rv:31.0)", "OR", "West", "Linux"),
        ("San Juan, PR", "Mozilla/5.0 (Linux; Android 4.4.2; Nexus 5)", "PR", "Other", "Android"),
        (None, None, "Unknown", "Unknown", "Unknown"),
    ]
    df = spark.createDataFrame(rows, "location string, ua string, state string, region string, os string")
    got = (
        df.select(build._state(F.col("location")).alias("s"), build._os(F.col("ua")).alias("o"))
        .withColumn("r", build._region(F.col("s")))
        .collect()
    )
    assert [(r.s, r.r, r.o) for r in got] == [(r[2], r[3], r[4]) for r in rows]


def test_feature_dictionary_covers_every_column():
    for mode in catalog.LABEL_MODES:
        table = catalog.feature_dictionary(mode)
        assert table["feature"].tolist() == catalog.feature_columns(mode)
        assert table["description"].str.len().min() > 10
        assert set(table["kind"]) <= {"numeric", "categorical", "descriptive"}
    assert len({f.name for f in catalog.FEATURES}) == len(catalog.FEATURES)


def test_univariate_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"churn": rng.integers(0, 2, 60), "x": rng.integers(0, 5, 60)})
    pos, neg = table.loc[table.churn == 1, "x"], table.loc[table.churn == 0, "x"]
    pairs = [(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)]
    auc = univariate.univariate_auc(table, ["x"]).iloc[0]
    assert auc["auc"] == pytest.approx(np.mean(pairs))
    assert auc["median_churn"] == pos.median()
    perfect = pd.DataFrame({"churn": [0, 0, 1, 1], "x": [1, 2, 3, 4]})
    assert univariate.univariate_auc(perfect, ["x"])["auc"].iloc[0] == 1.0
    with pytest.raises(catalog.FeatureError, match="both classes"):
        univariate.univariate_auc(perfect.assign(churn=0), ["x"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_mode": "weekly"}, "label_mode must be one of"),
        ({"label_mode": "horizon", "cutoff_date": "25/10/2018"}, "ISO date"),
        ({"label_mode": "horizon", "cutoff_date": "2018-11-01"}, "on or before 2018-10-26"),
        ({"label_mode": "horizon", "lookback_days": 10}, "lookback_days must exceed"),
    ],
)
def test_bad_parameters_are_explained(base, kwargs, message):
    events, users = base
    with pytest.raises(catalog.FeatureError, match=message):
        build.build_features(events, users, **kwargs)


def test_missing_columns_are_explained(base):
    events, users = base
    with pytest.raises(catalog.FeatureError, match="lack the column.*userAgent"):
        build.build_features(events.drop("userAgent"), users)
    with pytest.raises(catalog.FeatureError, match="users table lack.*churn_ts"):
        build.build_features(events, users.drop("churn_ts"))


def test_user_item_table_has_no_cancellation_pages(base):
    events, users = base
    table = as_pandas(build.user_item_table(events, users)).set_index("userId")
    assert not set(schema.CANCEL_PAGES) & set(table.columns)
    assert table.loc["2", "level_max"] == "paid" and table.loc["2", "Roll Advert"] == 4
    assert table.loc["3", "song_length_max"] == 203.0 and table["churn"].tolist() == [0, 1, 1, 0]


def partitioned(spark, events, tmp_path):
    """``events`` as notebook 01 stores them (Parquet by event_date), read back: their scans show in a plan."""
    path = str(tmp_path / "events.parquet")
    events.write.partitionBy("event_date").parquet(path)
    return spark.read.parquet(path)


def test_events_are_scanned_at_most_twice(spark, base, tmp_path):
    events, users = base
    stored = partitioned(spark, events, tmp_path)
    for mode in catalog.LABEL_MODES:
        out = build.build_features(stored, users, mode)
        plan = out._jdf.queryExecution().executedPlan().toString()
        assert 1 <= plan.count("FileScan parquet") <= 2, plan  # the users table is not Parquet here


def test_build_tables_reads_the_events_twice_in_either_mode(spark, base, tmp_path):
    """The three tables come from one cached set of aggregates: horizon's cutoff and the log's end share it."""
    events, users = base
    stored = partitioned(spark, events, tmp_path)
    for mode in catalog.LABEL_MODES:
        tables = build.build_tables(stored, users, mode)
        try:
            shared = tables.cached._jdf.queryExecution().executedPlan().toString()
            assert shared.count("FileScan parquet") == 2, shared
            for table in (tables.features, tables.scoring, tables.user_item, tables.other):
                plan = table._jdf.queryExecution().executedPlan().toString()
                assert "InMemoryTableScan" in plan and plan.count("FileScan parquet") == 2, plan
        finally:
            tables.cached.unpersist()


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    """Both modes' feature tables (pandas) of a generated 225-user log, the default size."""
    from sparkify_utils.data.ingest import ingest_events
    from sparkify_utils.paths import run_paths
    from sparkify_utils.synth.generate import generate_log

    root = tmp_path_factory.mktemp("generated")
    generate_log(root / "log.json", users=225, seed=7)
    events = ingest_events(spark, str(root / "log.json"), run_paths(str(root / "run"))).events
    users = label_users(events)
    return {mode: build.build_features(events, users, mode).toPandas() for mode in catalog.LABEL_MODES}


@pytest.mark.slow
@pytest.mark.parametrize("mode", catalog.LABEL_MODES)
def test_no_single_feature_separates_generated_churners(generated, mode):
    table = generated[mode]
    assert table["churn"].nunique() == 2 and table["userId"].is_unique
    aucs = univariate.univariate_auc(table, catalog.feature_columns(mode, ("numeric",)))
    assert aucs["separation"].max() < 0.99, aucs.head()


@pytest.mark.slow
@pytest.mark.parametrize("mode", catalog.LABEL_MODES)
def test_shuffled_label_gives_chance_auc_on_generated_data(generated, mode):
    table, repeats = generated[mode], 20
    shuffled = univariate.shuffled_auc(table, catalog.feature_columns(mode, ("numeric",)), seed=42, repeats=repeats)
    # Standard error of the mean AUC under the null (Mann-Whitney variance, no ties); 4 of them is wide.
    n_pos = int(table["churn"].sum())
    n_neg = len(table) - n_pos
    limit = 4 * np.sqrt((len(table) + 1) / (12 * n_pos * n_neg) / repeats)
    assert (shuffled - 0.5).abs().max() < limit, shuffled.sort_values()


# --- several cutoffs from one pass (build_features_at, the backtest's tables) ------------------------------------


def _each_cutoff(stacked: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    """The rows of one cutoff of a collected ``build_features_at`` table, as ``as_pandas`` has a single table."""
    rows = stacked[stacked[build.CUTOFF_DATE] == cutoff].drop(columns=build.CUTOFF_DATE)
    return rows.sort_values("userId", ignore_index=True)


def _assert_same_as_each_cutoff(
    stacked: pd.DataFrame, events, users, cutoffs: list[str], horizon_days: int, lookback_days: int
) -> None:
    """The collected ``build_features_at`` table ``stacked`` holds, at each of ``cutoffs``, ``build_features`` of
    ``events`` to the bit."""
    assert sorted(set(stacked[build.CUTOFF_DATE])) == sorted(cutoffs)
    for cutoff in cutoffs:
        alone = as_pandas(build.build_features(events, users, "horizon", cutoff, horizon_days, lookback_days))
        assert len(alone) > 0
        pd.testing.assert_frame_equal(_each_cutoff(stacked, cutoff), alone, check_exact=True, obj=cutoff)


@pytest.mark.slow
def test_features_at_cutoffs_equal_each_cutoff_where_sessions_cross_its_midnights(spark):
    # Cutoffs (days 13, 20, 24), lookback starts (15 days earlier) and trend starts (7 and 14 days) are midnights:
    # sessions run across the cutoff, lookback start and trend starts of day 20, and events fall exactly on them.
    rows = base_rows()
    rows += session_rows("1", 950, 19.98, songs=12, extra=("Thumbs Up",))  # 23:31 on day 19 to 00:19 on day 20
    rows.append(event("1", 950, 20.0, "NextSong", song=40))  # a new song exactly at the cutoff
    rows += session_rows("4", 951, 12.99, songs=5, extra=("Home",))  # over the 7-day trend start
    rows += session_rows("1", 953, 5.99, songs=5) + [event("1", 953, 6.0, "NextSong", song=41)]  # 14-day start
    rows += session_rows("2", 952, 4.99, songs=5) + [event("2", 952, 5.0, "Settings")]  # over the lookback start
    events = frame(spark, rows)
    users = label_users(events)
    cutoffs = ["2018-10-21", "2018-10-14", "2018-10-25"]
    stacked = build.build_features_at(events, users, cutoffs, horizon_days=14, lookback_days=15).toPandas()
    _assert_same_as_each_cutoff(stacked, events, users, cutoffs, 14, 15)
    # The session over the cutoff counts in the cutoff's table with its songs before midnight only.
    table = as_pandas(build.build_features(events, users, "horizon", "2018-10-21", 14, 15)).set_index("userId")
    assert table.loc["1", "songs_last_7d"] == 9 + 8 and table.loc["1", "sessions"] == 10 + 1 + 1


@pytest.fixture(scope="module")
def small_generated(spark, tmp_path_factory):
    """A generated 40-user log over 2018-10-01 .. 2018-12-02 as notebook 01 writes it, and its users table."""
    from sparkify_utils.data.ingest import ingest_events
    from sparkify_utils.paths import run_paths
    from sparkify_utils.synth.generate import generate_log

    root = tmp_path_factory.mktemp("small_generated")
    generate_log(root / "log.json", users=40, seed=11, workers=1)
    events = ingest_events(spark, str(root / "log.json"), run_paths(str(root / "run"))).events
    users = label_users(events)
    # A local copy: its plan reads no Parquet, so the events' scans can be counted.
    return events, spark.createDataFrame(users.collect(), users.schema)


#: The backtest's days for 3 cutoffs a week apart, a 14-day horizon, on a log ending 2018-12-03, out of order.
BACKTEST_DAYS = ["2018-11-19", "2018-10-22", "2018-11-05", "2018-10-29", "2018-11-12"]


@pytest.mark.slow
def test_features_at_cutoffs_equal_each_cutoff_on_a_generated_log(spark, small_generated):
    events, users = small_generated
    sessions = (
        events.filter(F.col("userId") != "")
        .groupBy("userId", "sessionId")
        .agg(F.min("ts").alias("start"), F.max("ts").alias("end"))
        .toPandas()
    )
    cutoffs = [window.date_to_ms(dt.date.fromisoformat(day)) for day in BACKTEST_DAYS]
    # The log holds what the day arithmetic must get right: sessions over midnight, some over a cutoff's.
    assert (sessions["start"] // DAY != sessions["end"] // DAY).sum() > 10
    assert sum(((sessions["start"] < c) & (sessions["end"] >= c)).sum() for c in cutoffs) > 0
    # The events in another order and the shuffles in other partitions: Spark adds each sum up in another order,
    # which must not change a bit.
    shuffled = events.orderBy(F.rand(seed=3))
    partitions = {"spark.sql.shuffle.partitions": "7", "spark.sql.adaptive.coalescePartitions.enabled": "false"}
    previous = {key: spark.conf.get(key) for key in partitions}
    try:
        for key, value in partitions.items():
            spark.conf.set(key, value)
        stacked = build.build_features_at(shuffled, users, BACKTEST_DAYS, horizon_days=14, lookback_days=21).toPandas()
    finally:
        for key, value in previous.items():
            spark.conf.set(key, value)
    _assert_same_as_each_cutoff(stacked, events, users, BACKTEST_DAYS, 14, 21)


@pytest.mark.slow
def test_features_at_cutoffs_read_the_events_twice_in_all(small_generated):
    events, users = small_generated
    plan = build.build_features_at(events, users, BACKTEST_DAYS)._jdf.queryExecution().executedPlan().toString()
    assert plan.count("FileScan parquet") == 2, plan


def test_aggregates_at_refuses_windows_off_midnight(base):
    from dataclasses import replace

    from sparkify_utils.features.aggregate import aggregates_at

    events, users = base
    resolved = window.resolve_window(users, "horizon", "2018-10-20")
    with pytest.raises(ValueError, match="UTC midnights"):
        aggregates_at(events, [resolved, replace(resolved, cutoff_ts=resolved.cutoff_ts + 1)])
    with pytest.raises(ValueError, match="at least one window"):
        aggregates_at(events, [])

"""The churn label: churners are users with a Cancellation Confirmation, free or paid."""

from __future__ import annotations

import pytest

from sparkify_utils.artifacts import USER_COLUMNS
from sparkify_utils.data.label import LabelError, label_users, read_users, write_users
from sparkify_utils.paths import run_paths

DAY = 86_400_000
T0 = 1538352000000
EVENT_COLUMNS = ["userId", "page", "ts", "level"]


def events(spark, rows):
    return spark.createDataFrame(rows, EVENT_COLUMNS)


def by_user(users):
    return {r["userId"]: r.asDict() for r in users.collect()}


def test_churners_free_and_paid_and_their_first_cancellation(spark):
    rows = [
        ("1", "NextSong", T0, "paid"),
        ("1", "Cancel", T0 + 10, "paid"),
        ("1", "Cancellation Confirmation", T0 + 11, "paid"),
        ("2", "NextSong", T0 + DAY, "free"),
        ("2", "Cancellation Confirmation", T0 + 2 * DAY, "free"),
        ("2", "Cancellation Confirmation", T0 + 3 * DAY, "free"),  # a second one does not move churn_ts
        ("3", "NextSong", T0 + 5, "paid"),
        ("3", "Cancel", T0 + 6, "paid"),  # Cancel without confirmation is not churn
        ("3", "Home", T0 + 4 * DAY, "paid"),
        ("", "Home", T0 + 9 * DAY, "free"),  # logged out: no user
    ]
    users = label_users(events(spark, rows))
    assert users.columns == list(USER_COLUMNS)
    assert dict(users.dtypes) == {
        "userId": "string",
        "churn": "int",
        "churn_ts": "bigint",
        "first_ts": "bigint",
        "last_ts": "bigint",
    }
    got = by_user(users)
    assert set(got) == {"1", "2", "3"}
    assert (got["1"]["churn"], got["1"]["churn_ts"]) == (1, T0 + 11)
    assert (got["2"]["churn"], got["2"]["churn_ts"], got["2"]["last_ts"]) == (1, T0 + 2 * DAY, T0 + 3 * DAY)
    assert (got["3"]["churn"], got["3"]["churn_ts"]) == (0, None)
    assert (got["3"]["first_ts"], got["3"]["last_ts"]) == (T0 + 5, T0 + 4 * DAY)


def test_a_log_without_cancellations_has_no_churners(spark):
    rows = [("1", "NextSong", T0, "free"), ("2", "Home", T0 + 1, "paid")]
    users = label_users(events(spark, rows))
    assert [r["churn"] for r in users.collect()] == [0, 0]


def test_missing_columns_are_refused(spark):
    with pytest.raises(LabelError, match="no column page"):
        label_users(spark.createDataFrame([("1", T0)], ["userId", "ts"]))


def test_users_table_is_written_once_and_read_back(spark, tmp_path):
    paths = run_paths(str(tmp_path / "run"))
    with pytest.raises(LabelError, match="run notebook 01_eda"):
        read_users(spark, paths)
    rows = [("7", "NextSong", T0, "paid"), ("7", "Cancellation Confirmation", T0 + 1, "paid")]
    written = write_users(events(spark, rows), paths)
    assert (tmp_path / "run" / "users.parquet").is_dir()
    assert (
        by_user(written)
        == by_user(read_users(spark, paths))
        == {"7": {"userId": "7", "churn": 1, "churn_ts": T0 + 1, "first_ts": T0, "last_ts": T0 + 1}}
    )

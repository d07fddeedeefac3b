"""EDA aggregations and figures, checked by hand against the basic fixture (3 users, 1 churner)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from sparkify_utils.artifacts import PAGE_CHURN
from sparkify_utils.data import explore
from sparkify_utils.data.ingest import ingest_events
from sparkify_utils.data.label import label_users
from sparkify_utils.paths import run_paths
from sparkify_utils.report import plots
from sparkify_utils.report.formatting import fmt

FIXTURES = Path(__file__).parent / "fixtures"
DAY = 86_400_000


@pytest.fixture(scope="module")
def eda(spark, tmp_path_factory):
    """The EDA tables of the basic fixture: users 10 and 20 stay, user 30 churns."""
    paths = run_paths(str(tmp_path_factory.mktemp("explore") / "run"))
    result = ingest_events(spark, str(FIXTURES / "basic.json"), paths)
    users = label_users(result.events)
    cube = explore.activity_cube(result.events)
    profiles = explore.user_profiles(cube, users).persist()
    level = explore.level_contingency(profiles)
    yield {
        "paths": paths,
        "quality": result.quality,
        "users": users,
        "cube": cube,
        "profiles": profiles,
        "counts": explore.churn_counts(users),
        "level": level,
        "test": explore.chi_square(level),
        "per_user": explore.per_user_table(profiles),
        "pages": explore.page_churn(profiles),
        "daily": explore.daily_activity(cube, users),
        "patterns": explore.time_patterns(cube, users),
        "timing": explore.churn_timing(users),
        "medians": explore.group_medians(profiles),
    }
    profiles.unpersist()
    cube.unpersist()


def test_per_user_table(eda):
    table = eda["per_user"].set_index("userId")
    assert list(table.reset_index().columns) == list(explore.PER_USER_COLUMNS)
    assert table.loc[["10", "20", "30"], ["churn", "level", "songs", "events", "sessions", "active_days"]].to_dict(
        "index"
    ) == {
        "10": {"churn": 0, "level": "paid", "songs": 3, "events": 7, "sessions": 1, "active_days": 1},
        "20": {"churn": 0, "level": "paid", "songs": 3, "events": 6, "sessions": 1, "active_days": 1},
        "30": {"churn": 1, "level": "free", "songs": 1, "events": 5, "sessions": 1, "active_days": 1},
    }
    assert table["median_session_minutes"].to_dict() == pytest.approx({"10": 13.0, "20": 10.0, "30": 6 + 1 / 60})


def test_churn_counts_and_level_table(eda):
    assert eda["counts"].to_dict("list") == {"churn": [0, 1], "users": [2, 1], "share": [2 / 3, 1 / 3]}
    table = eda["level"]
    assert table.loc["free"].tolist() == [0, 1] and table.loc["paid"].tolist() == [2, 0]


def test_chi_square_matches_the_yates_formula():
    table = pd.DataFrame([[12, 5], [3, 10]], index=["free", "paid"], columns=[0, 1])
    (a, b), (c, d) = table.to_numpy()
    n = a + b + c + d
    expected = n * (abs(a * d - b * c) - n / 2) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    test = explore.chi_square(table)
    assert test["statistic"] == pytest.approx(expected)
    assert test["dof"] == 1 and test["significant"] is (test["p_value"] < explore.ALPHA)


def test_chi_square_without_churners_is_not_computed():
    table = pd.DataFrame([[5, 0], [7, 0]], index=["free", "paid"], columns=[0, 1])
    test = explore.chi_square(table)
    assert test["statistic"] is None and test["p_value"] is None and "no users" in test["note"]


def test_page_churn_rates_per_100_songs(eda):
    pages = eda["pages"]
    assert list(pages.columns) == list(PAGE_CHURN.columns)
    assert "About" not in set(pages["page"])  # absent from the log
    thumbs = pages[pages["page"] == "Thumbs Up"].set_index("churn")
    assert thumbs["count"].tolist() == [1, 0] and thumbs["page_total"].tolist() == [1, 1]
    assert thumbs["share"].tolist() == [1.0, 0.0] and thumbs["users"].tolist() == [2, 1]
    # user 10: 1 per 3 songs, user 20: none -> mean and median of (33.3, 0)
    assert thumbs.loc[0, "mean_per_100_songs"] == pytest.approx(100 / 6)
    assert thumbs.loc[0, "median_per_100_songs"] == pytest.approx(100 / 6)
    songs = pages[pages["page"] == "NextSong"].set_index("churn")
    assert songs["count"].tolist() == [6, 1] and songs["mean_per_100_songs"].tolist() == [100.0, 100.0]


def test_daily_activity_and_time_patterns(eda):
    daily = eda["daily"]
    assert daily.assign(event_date=daily["event_date"].astype(str)).to_dict("list") == {
        "event_date": ["2018-10-01", "2018-10-02", "2018-10-03"],
        "events": [15, 5, 2],
        "songs": [6, 1, 0],
        "active_users": [2, 1, 0],
        "active_churners": [0, 1, 0],
        "cancellations": [0, 1, 0],
    }
    patterns = eda["patterns"]
    assert patterns["events"].sum() == 18  # logged-in events only
    monday = patterns[(patterns["churn"] == 0) & (patterns["weekday"] == 2) & (patterns["hour"] == 0)]
    assert monday["events"].tolist() == [13]  # 2018-10-01 was a Monday


def test_churn_timing(eda):
    timing = eda["timing"]
    assert timing["userId"].tolist() == ["30"]
    assert str(timing.loc[0, "churn_date"]) == "2018-10-02"
    assert timing.loc[0, "days_to_churn"] == pytest.approx((6 * 60_000 + 1000) / DAY)


def test_summary_and_exports(eda):
    test = eda["test"]
    summary = explore.eda_summary(eda["cube"], eda["counts"], eda["level"], test, eda["medians"], eda["quality"])
    assert (summary["users"], summary["churners"], summary["events"], summary["songs"]) == (3, 1, 22, 7)
    assert summary["churn_rate"] == pytest.approx(1 / 3)
    assert (summary["first_event"], summary["last_event"]) == ("2018-10-01T00:01:00+00:00", "2018-10-03T00:01:00+00:00")
    assert summary["level_by_churn"] == {"free": {"0": 0, "1": 1}, "paid": {"0": 2, "1": 0}}
    assert summary["chi2_p_value"] == test["p_value"]
    assert summary["medians_by_churn"]["0"]["songs"] == 3.0 and summary["medians_by_churn"]["1"]["songs"] == 1.0

    written = explore.write_exports(eda["paths"], eda["per_user"], eda["pages"], summary)
    run = eda["paths"].run_dir
    assert set(written) == {
        "level_churn_byUser.csv",
        "page_churn_byUser.csv",
        "numofsongs_byUser.csv",
        "user_lifetimes.csv",
        "eda_summary.json",
    }
    lifetimes = pd.read_csv(run / "user_lifetimes.csv", dtype={"userId": str}).set_index("userId")
    assert list(lifetimes.reset_index().columns) == ["userId", "churn", "churn_ts", "first_ts", "last_ts"]
    assert lifetimes.loc["30", "churn_ts"] == 1538352000000 + DAY + 11 * 60_000 + 1000
    assert list(pd.read_csv(run / "level_churn_byUser.csv").columns) == ["churn", "userId", "level"]
    assert list(pd.read_csv(run / "numofsongs_byUser.csv").columns) == ["churn", "userId", "songs"]
    assert list(pd.read_csv(run / "page_churn_byUser.csv").columns) == list(PAGE_CHURN.columns)
    assert json.loads((run / "eda_summary.json").read_text()) == summary


def test_figures_build_and_write_offline(eda, tmp_path):
    figures = {
        "churn": plots.churn_figure(eda["counts"]),
        "level": plots.level_figure(eda["level"], eda["test"]),
        "pages": plots.page_rates_figure(eda["pages"]),
        "songs": plots.box_figure(eda["per_user"], "songs", "Songs per user", "songs"),
        "daily": plots.daily_activity_figure(eda["daily"]),
        "hour": plots.hour_figure(eda["patterns"]),
        "weekday": plots.weekday_figure(eda["patterns"]),
        "churn_per_day": plots.churn_per_day_figure(eda["daily"]),
        "days_to_churn": plots.days_to_churn_figure(eda["timing"]),
    }
    assert all(isinstance(f, go.Figure) for f in figures.values())
    assert [t.name for t in figures["songs"].data] == ["stayed", "churned"]
    assert "churn rate 33.3%" in figures["churn"].layout.title.text
    hours = figures["hour"].data
    assert [sum(t.y) for t in hours] == pytest.approx([1.0, 1.0])  # shares within each group
    pages = figures["pages"].data[0].y
    assert "NextSong" not in pages and "Cancellation Confirmation" not in pages
    written = plots.write_figures(figures, tmp_path / "figures")
    assert len(written) == 2 * len(figures) and (tmp_path / "figures" / "plotly.min.js").exists()
    html = (tmp_path / "figures" / "churn.html").read_text()
    assert 'src="plotly.min.js"' in html  # no CDN: opens without internet


def test_page_rate_contrast_and_report_formatting(eda):
    contrast = explore.page_rate_contrast(eda["pages"]).set_index("page")
    assert not {"NextSong", "Cancel", "Cancellation Confirmation"} & set(contrast.index)
    assert contrast.loc["Thumbs Up", ["stayed", "churned", "ratio"]].tolist() == pytest.approx([100 / 6, 0.0, 0.0])
    assert pd.isna(contrast.loc["Thumbs Down", "ratio"])  # no user who stayed gave one: no ratio
    assert fmt(float("nan")) == "n/a" and fmt(0.5, ".0%") == "50%" and fmt(1234) == "1,234"

"""The synthetic log generator: format, conventions, determinism, argument errors and calibration."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from sparkify_utils.data.schema import ANONYMOUS_AUTH, CHURN_PAGE, PAGE_METHOD_STATUS, PAGES, RAW_FIELDS
from sparkify_utils.synth.calibration import calibration_report, format_report
from sparkify_utils.synth.generate import generate_log

START_MS, END_MS = 1538352000000, 1543795200000  # 2018-10-01 and 2018-12-03, UTC
PROFILE = ("firstName", "lastName", "gender", "location", "userAgent", "registration")
# 150 users with seed 42 is the smallest log whose calibration figures all land in their target
# ranges; smaller logs (≈30 churners) are too noisy for the churn-ratio checks.
CALIBRATION_USERS = 150


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
    """A 150-user log (about 170,000 events) and its summary."""
    path = tmp_path_factory.mktemp("generated") / "events.json"
    return path, generate_log(path, users=CALIBRATION_USERS, seed=42)


@pytest.fixture(scope="module")
def events(small_log):
    """The small log's events as dicts, in file order (test-only: the project reads logs with Spark)."""
    with open(small_log[0], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_summary_matches_file(small_log, events):
    path, summary = small_log
    assert summary.rows == len(events)
    assert summary.bytes == path.stat().st_size
    assert summary.users == CALIBRATION_USERS == len({e["userId"] for e in events} - {""})
    assert summary.path == str(path) and summary.seconds > 0


def test_fields_types_and_page_conventions(events):
    for event in events:
        assert tuple(event) == RAW_FIELDS
        method, status = PAGE_METHOD_STATUS[event["page"]]
        assert (event["method"], event["status"]) == (method, status)
        assert type(event["ts"]) is int and START_MS <= event["ts"] < END_MS
        assert type(event["itemInSession"]) is int and type(event["sessionId"]) is int
        assert event["level"] in ("free", "paid")
        song = (event["artist"], event["song"], event["length"])
        if event["page"] == "NextSong":
            assert isinstance(song[0], str) and isinstance(song[1], str) and type(song[2]) is float
        else:
            assert song == (None, None, None)
        assert (event["auth"] == "Cancelled") == (event["page"] == CHURN_PAGE)
    assert {e["page"] for e in events} == set(PAGES)
    assert {e["auth"] for e in events} == {"Logged In", "Logged Out", "Guest", "Cancelled"}


def test_anonymous_and_identified_rows(events):
    location = re.compile(r"^[^,]+(, [^,]+)*, [A-Z]{2}(-[A-Z]{2})*$")
    for event in events:
        if event["auth"] in ANONYMOUS_AUTH:
            assert event["userId"] == "" and all(event[f] is None for f in PROFILE)
        else:
            assert event["userId"] != "" and type(event["registration"]) is int
            assert event["gender"] in ("M", "F") and location.match(event["location"])
            assert event["firstName"] and event["lastName"] and event["userAgent"]
            assert event["registration"] <= event["ts"]
    anonymous = sum(e["userId"] == "" for e in events) / len(events)
    assert 0.02 <= anonymous <= 0.04


def test_profiles_and_catalogue_look_real(events):
    users = {e["userId"]: e for e in events if e["userId"]}
    assert len({u["location"] for u in users.values()}) >= 0.4 * len(users)
    assert len({u["userAgent"] for u in users.values()}) >= 20
    songs = [e for e in events if e["page"] == "NextSong"]
    assert len({e["song"] for e in songs}) > 0.2 * len(songs)  # heavy tail: many distinct, some repeated
    assert len({(e["artist"], e["song"]) for e in songs}) < len(songs)


def test_sessions_songs_back_to_back_and_churn_is_final(events):
    last_ts, churn_ts = {}, {}
    session_users = defaultdict(set)
    previous = None
    for event in events:
        user = event["userId"]
        if user:
            last_ts[user] = max(last_ts.get(user, 0), event["ts"])
            session_users[event["sessionId"]].add(user)
            if event["page"] == CHURN_PAGE:
                churn_ts[user] = event["ts"]
        if previous and previous["page"] == "NextSong" and previous["sessionId"] == event["sessionId"]:
            # The next event of a session waits until the song has finished playing.
            assert event["ts"] - previous["ts"] == max(1, round(previous["length"])) * 1000
            assert event["itemInSession"] == previous["itemInSession"] + 1
        previous = event
    assert churn_ts and all(last_ts[user] == ts for user, ts in churn_ts.items())
    assert any(len(users) > 1 for users in session_users.values()), "session ids should collide across users"


@pytest.mark.slow
def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    one = generate_log(tmp_path / "one.json", users=70, seed=5, workers=1)
    two = generate_log(tmp_path / "two.json", users=70, seed=5, workers=2)
    parts = generate_log(tmp_path / "parts", users=70, seed=5, workers=2)
    packed = generate_log(tmp_path / "packed.json.gz", users=70, seed=5)
    other = generate_log(tmp_path / "other.json", users=70, seed=6, workers=1)
    data = Path(one.path).read_bytes()
    assert data == Path(two.path).read_bytes()
    part_files = sorted(Path(parts.path).glob("part-*.json"))
    assert len(part_files) == 2 and b"".join(p.read_bytes() for p in part_files) == data
    assert gzip.decompress(Path(packed.path).read_bytes()) == data
    assert Path(other.path).read_bytes() != data
    assert (one.rows, one.users, one.bytes) == (parts.rows, parts.users, parts.bytes) == (packed.rows, 70, len(data))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be a positive integer"),
        ({"users": -3}, "users must be a positive integer"),
        ({"start": "2018-12-03", "end": "2018-10-01"}, "must be after start"),
        ({"end": "2018-10-01"}, "must be after start"),
        ({"start": "2018-13-45"}, "invalid start date"),
        ({"end": "soon"}, "invalid end date"),
        ({"workers": -1}, "workers must be"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        generate_log(tmp_path / "out.json", **{"users": 5, **kwargs})
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out.json").exists()


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("old")
    with pytest.raises(ValueError, match="--force"):
        generate_log(out, users=3)
    assert out.read_text() == "old"
    assert generate_log(out, users=3, force=True).rows > 0
    assert out.read_text().startswith('{"artist":')


def test_unwritable_output_location(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="cannot create output directory"):
        generate_log(blocker / "sub" / "out.json", users=3)
    not_parts = tmp_path / "mine"
    not_parts.mkdir()
    (not_parts / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a directory of generated part files"):
        generate_log(not_parts, users=3, force=True)
    assert (not_parts / "notes.txt").exists()


@pytest.mark.slow
def test_calibration_targets_hold(spark, small_log):
    # Fewer CV folds than the 5x5 of `sparkify calibrate` keep this test near a minute.
    rows = calibration_report(str(small_log[0]), spark, folds=3, repeats=1)
    failed = [row.check for row in rows if not row.passed]
    assert not failed, f"calibration failed: {failed}\n{format_report(rows)}"
    assert len(rows) >= 20

"""Loading and validation: real eventsim variants load to the contract, bad input is accounted for or refused."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from sparkify_utils.data import read
from sparkify_utils.data.duplicates import mark_duplicates, repeated_keys
from sparkify_utils.data.ingest import REASONS, classify_events, ingest_events, quality_table
from sparkify_utils.data.read import EVENTS_SCHEMA, DataLoadError, read_clean_events, read_events
from sparkify_utils.paths import run_paths

FIXTURES = Path(__file__).parent / "fixtures"
BAD = FIXTURES / "bad"


def ingest(spark, path, tmp_path, **kwargs):
    """Ingest ``path`` into a fresh run directory under ``tmp_path``."""
    return ingest_events(spark, str(path), run_paths(str(tmp_path / "run")), **kwargs)


def assert_balanced(quality: dict) -> None:
    excluded = sum(quality["rows_excluded"].values())
    quarantined = sum(quality["rows_quarantined"].values())
    assert quality["rows_read"] == quality["rows_kept"] + excluded + quarantined


def test_basic_log_matches_the_clean_events_contract(spark, tmp_path):
    result = ingest(spark, FIXTURES / "basic.json", tmp_path)
    events = result.events
    assert [(f.name, f.dataType) for f in events.schema.fields] == [(f.name, f.dataType) for f in EVENTS_SCHEMA.fields]
    assert events.count() == 22
    q = result.quality
    assert (q["rows_read"], q["rows_kept"], q["anonymous_rows"], q["users"], q["files_read"]) == (22, 22, 4, 3, 1)
    assert_balanced(q)
    on_disk = json.loads((tmp_path / "run" / "data_quality.json").read_text())
    assert on_disk == q
    assert sorted(str(r["event_date"]) for r in events.select("event_date").distinct().collect()) == [
        "2018-10-01",
        "2018-10-02",
        "2018-10-03",
    ]
    anon = events.filter(F.col("userId") == "")
    assert anon.count() == 4 and anon.filter(F.col("registration").isNotNull()).count() == 0
    first = events.filter((F.col("userId") == "10") & (F.col("itemInSession") == 0)).first()
    assert (first["ts"], first["registration"], first["status"], str(first["event_date"])) == (
        1538352060000,
        1536000000000,
        200,
        "2018-10-01",
    )


def test_float_registration_is_cast_to_epoch_ms(spark, tmp_path):
    events = ingest(spark, FIXTURES / "float_registration.json", tmp_path).events
    regs = {r["userId"]: r["registration"] for r in events.filter(F.col("userId") != "").collect()}
    assert regs == {"10": 1536000000000}


def test_millisecond_timestamps_are_kept_exactly(spark, tmp_path):
    events = ingest(spark, FIXTURES / "ms_ts.json", tmp_path).events
    expected = {json.loads(line)["ts"] for line in (FIXTURES / "ms_ts.json").read_text().splitlines()}
    assert {r["ts"] for r in events.select("ts").collect()} == expected
    assert all(ts % 1000 for ts in expected)


def test_last_line_without_trailing_newline_is_read(spark, tmp_path):
    text = (FIXTURES / "no_trailing_newline.json").read_text()
    assert not text.endswith("\n")
    events = ingest(spark, FIXTURES / "no_trailing_newline.json", tmp_path).events
    assert events.count() == 5
    assert events.filter(F.col("page") == "Cancellation Confirmation").count() == 1


def test_unknown_extra_fields_are_ignored(spark, tmp_path):
    result = ingest(spark, FIXTURES / "extra_fields.json", tmp_path)
    assert result.events.columns == EVENTS_SCHEMA.fieldNames()
    assert result.quality["rows_kept"] == 6 and sum(result.quality["rows_quarantined"].values()) == 0


def test_directory_of_small_daily_files_with_13_pages_and_no_churners(spark, tmp_path):
    result = ingest(spark, FIXTURES / "daily_no_churn", tmp_path)
    assert result.quality["files_read"] == 5
    assert result.quality["rows_read"] == result.quality["rows_kept"] == 60
    pages = {r["page"] for r in result.events.select("page").distinct().collect()}
    assert len(pages) == 13 and "Cancellation Confirmation" not in pages


def test_glob_and_file_url_inputs(spark, tmp_path):
    by_glob = ingest(spark, FIXTURES / "daily_no_churn" / "2018-11-0[12]-events.json", tmp_path / "a")
    assert by_glob.quality["files_read"] == 2 and by_glob.quality["rows_kept"] == 24
    by_url = ingest(spark, (FIXTURES / "basic.json").resolve().as_uri(), tmp_path / "b")
    assert by_url.quality["rows_kept"] == 22


def test_gzipped_json_lines(spark, tmp_path):
    gz = tmp_path / "events.json.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "basic.json").read_bytes()))
    result = ingest(spark, gz, tmp_path)
    assert result.quality["rows_kept"] == 22 and result.quality["users"] == 3


def test_parquet_input_including_our_own_clean_events(spark, tmp_path):
    first = ingest(spark, FIXTURES / "basic.json", tmp_path / "first")
    again = ingest(spark, tmp_path / "first" / "run" / "events.parquet", tmp_path / "again")
    assert again.quality["format"] == "parquet"
    assert again.quality["rows_kept"] == 22
    cols = EVENTS_SCHEMA.fieldNames()
    order = ["userId", "ts", "page"]
    assert again.events.select(*cols).orderBy(order).collect() == first.events.select(*cols).orderBy(order).collect()


def test_parquet_without_required_columns_is_refused(spark, tmp_path):
    path = str(tmp_path / "no_user.parquet")
    spark.read.json(str(FIXTURES / "basic.json")).drop("userId").write.parquet(path)
    with pytest.raises(DataLoadError, match="has no column userId"):
        read_events(spark, path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (FIXTURES / "does_not_exist.json", "No such path"),
        (FIXTURES / "nothing_matches_*.json", "No such path"),
        (BAD / "empty.json", "is empty"),
        (BAD / "json_array.json", "is a JSON array"),
        (BAD / "one_line_array.json", "is a JSON array"),
        (BAD / "events.csv", "is not JSON lines"),
        (BAD / "no_ts.json", r"Required column\(s\) ts absent"),
        (BAD / "logged_out_only.json", "No logged-in user is left"),
        (BAD / "iso_ts.json", r"`ts` must be epoch milliseconds .*found '2018-10-01T\d\d:\d\d:00Z'"),
        (BAD / "saved_web_page.json", "is an HTML page, not a JSON-lines event log"),
        (BAD / "truncated.json.gz", "is a truncated gzip stream"),
    ],
)
def test_bad_inputs_get_a_clear_error(spark, tmp_path, path, message):
    with pytest.raises(DataLoadError, match=message) as err:
        ingest(spark, path, tmp_path)
    assert str(path) in str(err.value) and "Fix:" in str(err.value)


def test_gzip_broken_past_its_first_lines_names_the_file(spark, tmp_path):
    """Spark itself fails reading these (the first lines decompress): the error names the file and the fix."""
    whole = gzip.compress((FIXTURES / "basic.json").read_bytes() * 2000, mtime=0)
    (tmp_path / "logs").mkdir()
    truncated = tmp_path / "logs" / "events.json.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    for path in (truncated, tmp_path / "logs"):  # the file, and a directory holding it
        with pytest.raises(DataLoadError, match="truncated gzip stream") as err:
            ingest(spark, path, tmp_path)
        message = str(err.value)
        assert str(truncated) in message and "gunzip -t" in message and "Fix:" in message
        assert "Py4JJavaError" not in message and "at org.apache" not in message
    not_gzip = tmp_path / "plain.json.gz"
    not_gzip.write_bytes((FIXTURES / "basic.json").read_bytes())
    with pytest.raises(DataLoadError, match="is not a valid gzip stream.*Fix:"):
        ingest(spark, not_gzip, tmp_path)


def test_wrong_field_type_is_explained_in_the_bad_rows_error(spark, tmp_path):
    lines = (FIXTURES / "basic.json").read_text().splitlines()
    iso = json.loads(lines[3]) | {"ts": "2018-10-01T08:30:00Z"}
    path = tmp_path / "some_iso.json"
    path.write_text("\n".join([*lines, json.dumps(iso)]) + "\n")
    with pytest.raises(DataLoadError, match="malformed_json 1") as err:
        ingest(spark, path, tmp_path, bad_row_policy="fail")
    assert "`ts` must be epoch milliseconds (a number such as 1538352117000), found '2018-10-01T08:30:00Z'" in str(
        err.value
    )


def test_empty_directory_is_refused(spark, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataLoadError, match="is empty"):
        ingest(spark, tmp_path / "empty_dir", tmp_path)


def test_bad_parameters_are_refused(spark, tmp_path):
    with pytest.raises(DataLoadError, match="bad_row_policy"):
        ingest(spark, FIXTURES / "basic.json", tmp_path, bad_row_policy="ignore")
    with pytest.raises(DataLoadError, match="valid_from must be an ISO date"):
        ingest(spark, FIXTURES / "basic.json", tmp_path, valid_from="yesterday")


def test_seconds_timestamps_leave_no_users(spark, tmp_path):
    seconds = tmp_path / "seconds.json"
    rows = [json.loads(line) for line in (FIXTURES / "basic.json").read_text().splitlines()]
    seconds.write_text("\n".join(json.dumps(r | {"ts": r["ts"] // 1000}) for r in rows) + "\n")
    with pytest.raises(DataLoadError, match="ts_out_of_range 22.*epoch milliseconds"):
        ingest(spark, seconds, tmp_path)


MIXED = BAD / "mixed_bad_lines.json"


def test_quarantine_writes_each_bad_row_with_its_reason(spark, tmp_path):
    result = ingest(spark, MIXED, tmp_path)
    q = result.quality
    assert q["rows_quarantined"] == dict.fromkeys(REASONS, 1)
    assert q["rows_kept"] == 22 and q["rows_read"] == 27
    assert_balanced(q)
    quarantine = spark.read.json(q["quarantine_path"]).collect()
    assert sorted(r["reason"] for r in quarantine) == sorted(REASONS)
    malformed = next(r["raw"] for r in quarantine if r["reason"] == "malformed_json")
    assert malformed == MIXED.read_text().splitlines()[22]
    table = quality_table(q)
    assert table.loc[table["rows"] == "quarantined", "count"].sum() == 5


def test_drop_excludes_bad_rows_without_quarantine(spark, tmp_path):
    result = ingest(spark, MIXED, tmp_path, bad_row_policy="drop")
    q = result.quality
    assert q["rows_excluded"] == dict.fromkeys(REASONS, 1)
    assert sum(q["rows_quarantined"].values()) == 0 and q["quarantine_path"] is None
    assert not (tmp_path / "run" / "quarantine").exists()
    table = quality_table(q)
    assert table.loc[table["rows"] == "excluded", "count"].tolist() == [1] * len(REASONS)
    assert result.events.count() == 22


def test_fail_raises_with_counts_and_examples(spark, tmp_path):
    with pytest.raises(DataLoadError) as err:
        ingest(spark, MIXED, tmp_path, bad_row_policy="fail")
    message = str(err.value)
    assert "5 of 27 rows" in message
    for reason in REASONS:
        assert f"{reason} 1 (e.g. " in message
    assert not (tmp_path / "run" / "events.parquet").exists()


def test_valid_range_is_a_parameter(spark, tmp_path):
    q = ingest(spark, FIXTURES / "basic.json", tmp_path, valid_until="2018-10-02").quality
    assert q["rows_quarantined"]["ts_out_of_range"] == 7 and q["rows_kept"] == 15


def test_read_clean_events_needs_a_previous_run(spark, tmp_path):
    with pytest.raises(DataLoadError, match="run notebook 01_eda"):
        read_clean_events(spark, run_paths(str(tmp_path / "never_run")))


@pytest.fixture(scope="module")
def injected_log(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A generated log split over part files, with known bad lines injected into one of them."""
    from sparkify_utils.synth.generate import generate_log

    base = tmp_path_factory.mktemp("injected")
    generate_log(base / "log", users=12, start="2018-10-01", end="2018-10-15", seed=3, workers=1)
    parts = sorted((base / "log").glob("*.json"))
    lines = parts[0].read_text().splitlines()
    good = [json.loads(line) for line in lines[:40]]
    injected = {
        "malformed_json": ['{"ts": 1538352117000, "page": "Home", "userId": "3"', "not json at all", "{]"],
        "missing_required": [json.dumps({k: v for k, v in good[i].items() if k != "ts"}) for i in range(2)]
        + [json.dumps(good[2] | {"page": None}), json.dumps(good[3] | {"userId": None, "auth": "Logged In"})],
        "unknown_page": [json.dumps(good[i] | {"page": "Karaoke"}) for i in range(2)],
        "duplicate": lines[5:10],
        "ts_out_of_range": [json.dumps(good[i] | {"ts": good[i]["ts"] // 1000}) for i in range(3)]
        + [json.dumps(good[9] | {"ts": 4_200_000_000_000})],
    }
    extra = [line for bad in injected.values() for line in bad]
    parts[0].write_text("\n".join(lines[:20] + extra + lines[20:]) + "\n")
    return base / "log", {reason: len(bad) for reason, bad in injected.items()}


@pytest.mark.parametrize("policy", ["quarantine", "drop", "fail"])
def test_every_row_is_accounted_for_under_each_policy(spark, tmp_path, injected_log, policy):
    path, injected = injected_log
    if policy == "fail":
        with pytest.raises(DataLoadError, match=f"{sum(injected.values())} of "):
            ingest(spark, path, tmp_path, bad_row_policy=policy)
        return
    result = ingest(spark, path, tmp_path, bad_row_policy=policy)
    q = result.quality
    lines = sum(len([x for x in p.read_text().splitlines() if x.strip()]) for p in path.glob("*.json"))
    assert q["rows_read"] == lines
    assert_balanced(q)
    bad = q["rows_quarantined"] if policy == "quarantine" else q["rows_excluded"]
    assert bad == injected
    assert result.events.count() == q["rows_kept"] == lines - sum(injected.values())
    assert result.events.filter(F.col("userId") == "").count() == q["anonymous_rows"] > 0
    if policy == "quarantine":
        assert spark.read.json(q["quarantine_path"]).count() == sum(injected.values())
    shutil.rmtree(tmp_path / "run")


@pytest.mark.parametrize("broadcast_limit", [2_000_000, 0])  # the lookup sent to every task, or joined
def test_duplicates_keep_one_copy_per_key(spark, tmp_path, broadcast_limit):
    base = {
        "ts": 1538352117000,
        "page": "NextSong",
        "userId": "7",
        "sessionId": 5,
        "itemInSession": 1,
        "auth": "Logged In",
        "song": "A",
        "artist": "X",
        "length": 200.0,
    }
    rows = [
        base,
        base,
        base,  # three exact copies: two are duplicates
        base | {"itemInSession": 2},
        base | {"itemInSession": 2, "song": "B"},  # same keys, other song
        base | {"itemInSession": 3},  # unique
        base | {"itemInSession": 4, "page": "Karaoke"},
        base | {"itemInSession": 4, "page": "Karaoke"},
    ]
    path = tmp_path / "log.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    parsed = classify_events(read_events(spark, str(path)))
    marked = mark_duplicates(parsed, repeated_keys(parsed), broadcast_limit=broadcast_limit)
    reasons = sorted((r["itemInSession"], r["reason"] or "") for r in marked.collect())
    assert reasons == [
        (1, ""),
        (1, "duplicate"),
        (1, "duplicate"),
        (2, ""),
        (2, "duplicate"),
        (3, ""),
        (4, "unknown_page"),
        (4, "unknown_page"),
    ]  # a bad row's copy keeps its own reason
    kept = {r["song"] for r in marked.filter("itemInSession = 2 AND reason IS NULL").collect()}
    reparted = classify_events(read_events(spark, str(path)).repartition(3))
    again = mark_duplicates(reparted, repeated_keys(reparted), broadcast_limit)
    assert kept == {r["song"] for r in again.filter("itemInSession = 2 AND reason IS NULL").collect()}


def _with_duplicates(tmp_path: Path, name: str, change) -> tuple[Path, list[dict]]:
    """basic.json with ``change`` applied to each row, then 5 of its rows again (the duplicates)."""
    rows = [change(json.loads(line)) for line in (FIXTURES / "basic.json").read_text().splitlines()]
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in [*rows, *rows[:3], *rows[-2:]]) + "\n")
    return path, rows


@pytest.mark.parametrize(
    "change",
    [
        # Rebuilt exactly from the clean events: the copies are taken out of the part files that hold them.
        lambda r: r | {"userId": "1261737"} if r["userId"] == "" else r,  # the full log's placeholder id
        # Not rebuilt from the clean events (fractional ms): the raw rows are classified once more.
        lambda r: r | {"ts": r["ts"] + 0.25},
    ],
    ids=["rebuilt_from_parquet", "raw_again"],
)
def test_duplicates_are_counted_and_taken_out_on_either_path(spark, tmp_path, change):
    path, rows = _with_duplicates(tmp_path, "dups.json", change)
    result = ingest(spark, path, tmp_path)
    q = result.quality
    assert q["rows_read"] == 27 and q["rows_kept"] == 22 and q["rows_quarantined"]["duplicate"] == 5
    assert q["anonymous_rows"] == 4 and q["users"] == 3
    assert_balanced(q)
    events = result.events
    keys = ["userId", "sessionId", "itemInSession", "ts", "page"]
    assert events.count() == 22 and events.dropDuplicates(keys).count() == 22
    assert sorted(r["ts"] for r in events.select("ts").collect()) == sorted(int(r["ts"]) for r in rows)
    quarantine = spark.read.json(q["quarantine_path"]).collect()
    assert sorted(r["reason"] for r in quarantine) == ["duplicate"] * 5


def test_removing_duplicates_rewrites_only_the_files_that_hold_them(spark, tmp_path, monkeypatch):
    # 27 rows at most 10 per file: rows 0-9, 10-19 and 20-26 (the 5 copies are rows 22-26 of rows 0-2 and 20-21).
    monkeypatch.setattr(read, "EVENTS_FILE_ROWS", 10)
    path, _ = _with_duplicates(tmp_path, "dups.json", lambda r: r)
    q = ingest(spark, path, tmp_path).quality
    assert q["rows_kept"] == 22 and q["rows_quarantined"]["duplicate"] == 5
    files = sorted(Path(q["events_path"]).glob("part-*.parquet"))
    rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
    assert sum(rows) == 22 and max(rows) <= 10, rows
    # Part files are named after the job that wrote them: the middle one, with no copy, is the first pass's.
    jobs = {f.name.split("-", 2)[2].rsplit("-c", 1)[0] for f in files}
    assert len(jobs) == 2, [f.name for f in files]

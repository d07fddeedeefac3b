"""Validating a raw log into clean events: every row read is either kept or accounted for.

JSON parsing is the expensive part of a 12 GB log, so the usual log is parsed once, as fast as a bare
``spark.read.json(...).write.parquet(...)``:

1. One pass over the raw rows gives each a ``reason`` (null when clean), counts them by reason with an
   :class:`~pyspark.sql.Observation` of that same pass (rows, present columns, logged-out rows, the
   smallest example line per reason) and writes the clean rows to ``events.parquet``.
2. One cheap columnar aggregation over what was written gives the logged-in users and the hashes of the
   duplicate keys seen more than once (usually none, or a few).
3. Only when needed, more work: duplicates are marked on the clean events read back from Parquet (they
   give back the raw rows exactly; the first pass checks that) and the events are rewritten without them;
   bad rows for the quarantine take one more pass over the raw log. A log whose clean rows cannot be
   rebuilt from Parquet (fractional timestamps, several ids for logged-out rows, ...) and has duplicates
   goes through the exact logic once more on the raw rows, persisted to disk.

The counts, the clean events and the quarantine are the same whichever path a log takes. No step
shuffles the whole log. Finding and removing duplicates is :mod:`sparkify_utils.data.duplicates`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from sparkify_utils.artifacts import DATA_QUALITY, EVENTS, QUARANTINE
from sparkify_utils.data.duplicates import (
    duplicates_from_events,
    mark_duplicates,
    remove_duplicates,
    repeated_keys,
    restorable,
)
from sparkify_utils.data.read import (
    CORRUPT_COLUMN,
    EVENTS_SCHEMA,
    REQUIRED_COLUMNS,
    TYPE_FIX,
    DataLoadError,
    explained_read_failures,
    read_clean_events,
    read_events,
    resolve_format,
    write_clean_events,
    wrong_types,
)
from sparkify_utils.data.rows import KEY_HASH, anonymous, clean_columns, key_hash, raw_text
from sparkify_utils.data.schema import PAGES
from sparkify_utils.paths import RunPaths, is_url

#: What ``bad_row_policy`` may be: raise, leave bad rows out, or leave them out and keep a copy.
BAD_ROW_POLICIES = ("fail", "drop", "quarantine")
#: Why a row is not kept, in the order the checks apply (a row gets the first that matches).
REASONS = ("malformed_json", "missing_required", "unknown_page", "ts_out_of_range", "duplicate")
DEFAULT_VALID_FROM = "2000-01-01"
DEFAULT_VALID_UNTIL = "2100-01-01"
#: Reasons a row gets from its own values (``duplicate`` needs the other rows).
ROW_REASONS = REASONS[:-1]


@dataclass(frozen=True)
class LoadResult:
    """The clean events (read back from ``events.parquet``) and the data-quality report."""

    events: DataFrame
    quality: dict[str, Any]


def _epoch_ms(value: str, name: str) -> int:
    """An ISO date/time parameter (UTC unless it says otherwise) as epoch milliseconds."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise DataLoadError(f"{name} must be an ISO date like 2018-10-01, got {value!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _row_reason(lo: int, hi: int) -> Column:
    """The first reason of ``REASONS`` (except ``duplicate``) a raw row fails, null if it passes them all."""
    ts = F.col("ts")
    missing = ts.isNull() | F.col("page").isNull() | (F.col("userId").isNull() & ~anonymous())
    return (
        F.when(F.col(CORRUPT_COLUMN).isNotNull(), "malformed_json")
        .when(missing, "missing_required")
        .when(~F.col("page").isin(*PAGES), "unknown_page")
        .when(F.isnan(ts) | (ts < lo) | (ts >= hi), "ts_out_of_range")
    )


def _with_reason(raw: DataFrame, valid_from: str, valid_until: str) -> DataFrame:
    lo, hi = _epoch_ms(valid_from, "valid_from"), _epoch_ms(valid_until, "valid_until")
    if lo >= hi:
        raise DataLoadError(f"valid_from {valid_from} must be before valid_until {valid_until}.")
    return raw.withColumn("reason", _row_reason(lo, hi))


def classify_events(
    raw: DataFrame, valid_from: str = DEFAULT_VALID_FROM, valid_until: str = DEFAULT_VALID_UNTIL
) -> DataFrame:
    """Add ``reason`` to every raw row (null if clean) and, to clean rows, ``__key_hash`` (see ``key_hash``).

    Duplicates are not marked here (see ``mark_duplicates``): finding them needs a second look at the rows.
    """
    classified = _with_reason(raw, valid_from, valid_until)
    return classified.withColumn(KEY_HASH, F.when(F.col("reason").isNull(), key_hash()))


def _summarise(classified: DataFrame) -> dict[str, Any]:
    """One groupBy over the persisted rows: counts, present-column counts, users, an example per reason."""
    logged_out = anonymous()
    rows = (
        classified.groupBy("reason")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            *[F.count(c).alias(f"present_{c}") for c in REQUIRED_COLUMNS],
            F.sum(logged_out.cast("long")).alias("anonymous"),
            F.countDistinct(F.when(~logged_out, F.col("userId"))).alias("users"),
            # min, not first: the same example whatever order the partitions arrive in.
            F.min(F.when(F.col("reason").isNotNull(), raw_text())).alias("example"),
        )
        .collect()
    )
    by_reason = {r["reason"]: r for r in rows}
    clean = by_reason.get(None)
    parsed = [r for r in rows if r["reason"] != "malformed_json"]
    return {
        "read": sum(r["rows"] for r in rows),
        "bad": {reason: by_reason[reason]["rows"] if reason in by_reason else 0 for reason in REASONS},
        "examples": {r["reason"]: r["example"] for r in rows if r["reason"]},
        "kept": clean["rows"] if clean else 0,
        "anonymous": clean["anonymous"] if clean else 0,
        "users": clean["users"] if clean else 0,
        "parsed": sum(r["rows"] for r in parsed),
        "present": {c: sum(r[f"present_{c}"] for r in parsed) for c in REQUIRED_COLUMNS},
    }


def _first_pass_metrics() -> list[Column]:
    """What the first pass observes: rows by reason, an example of each, present columns, logged-out rows,
    and whether the clean rows give back the raw rows exactly (``as_raw``). No distinct counts: an
    observation cannot hold them."""
    reason, clean, logged_out = F.col("reason"), F.col("reason").isNull(), anonymous()
    parsed = F.coalesce(reason != "malformed_json", F.lit(True))
    anonymous_clean = clean & logged_out
    return [
        F.count(F.lit(1)).alias("read"),
        F.count(F.when(clean, 1)).alias("kept"),
        *[F.count(F.when(reason == r, 1)).alias(f"bad_{r}") for r in ROW_REASONS],
        # min, not first: the same example whatever order the partitions arrive in.
        *[F.min(F.when(reason == r, raw_text())).alias(f"example_{r}") for r in ROW_REASONS],
        *[F.count(F.when(parsed, F.col(c))).alias(f"present_{c}") for c in REQUIRED_COLUMNS],
        F.count(F.when(anonymous_clean, 1)).alias("anonymous"),
        F.min(F.when(anonymous_clean, F.col("userId"))).alias("anonymous_id_min"),
        F.max(F.when(anonymous_clean, F.col("userId"))).alias("anonymous_id_max"),
        F.count(F.when(anonymous_clean & F.col("userId").isNull(), 1)).alias("anonymous_id_nulls"),
        F.count(F.when(clean & ~restorable(), 1)).alias("not_restorable"),
    ]


def _first_summary(m: dict[str, Any]) -> dict[str, Any]:
    """The summary (as ``_summarise`` gives it) of the first pass's observation; duplicates not yet counted."""
    return {
        "read": m["read"],
        "bad": {r: m[f"bad_{r}"] if r in ROW_REASONS else 0 for r in REASONS},
        "examples": {r: m[f"example_{r}"] for r in ROW_REASONS if m[f"example_{r}"] is not None},
        "kept": m["kept"],
        "anonymous": m["anonymous"],
        "parsed": m["read"] - m["bad_malformed_json"],
        "present": {c: m[f"present_{c}"] for c in REQUIRED_COLUMNS},
    }


def _anonymous_id(m: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether the clean events give back the raw rows exactly, and the one raw id of logged-out rows
    (``""`` in eventsim's files, a placeholder in the full log; None when there are none)."""
    one_id = m["anonymous_id_nulls"] == 0 and m["anonymous_id_min"] == m["anonymous_id_max"]
    return m["not_restorable"] == 0 and one_id, m["anonymous_id_min"]


def _discard(path: str) -> None:
    """Remove a dataset this ingest wrote before it failed, so a failed load leaves no clean events behind.

    Local paths only: on a cluster URL the partial dataset stays until the next run overwrites it (the run
    has failed, so nothing reads it).
    """
    local = path.removeprefix("file://") if path.startswith("file://") else None if is_url(path) else path
    if local:
        shutil.rmtree(local, ignore_errors=True)


def _check_structure(summary: dict[str, Any], path: str, files: list[str]) -> None:
    """Raise for inputs that are not a Sparkify log at all (empty, not JSON lines, no required column)."""
    if summary["read"] == 0:
        raise DataLoadError(
            f"The input {path} is empty ({len(files)} file(s), no lines). "
            "Fix: point input_path at a non-empty event log, or generate one with `sparkify generate`."
        )
    if summary["parsed"] == 0:
        line = summary["examples"].get("malformed_json") or ""
        example = line[:120]
        if types := wrong_types(line):
            raise DataLoadError(
                f"No line of {path} could be read as a Sparkify event: each is JSON, but a field has the wrong "
                f"type: {types} (e.g. {example!r}). {TYPE_FIX}"
            )
        raise DataLoadError(
            f"{path} is not JSON lines: none of its {summary['read']} lines is a JSON event object "
            f"(first bad line: {example!r}). Fix: provide one JSON object per line; convert a JSON array "
            "with `jq -c '.[]'` and a CSV with a CSV-to-JSON-lines tool."
        )
    absent = [c for c, n in summary["present"].items() if n == 0]
    if absent:
        raise DataLoadError(
            f"Required column(s) {', '.join(absent)} absent from every record of {path}. Fix: point "
            "input_path at a Sparkify event log (every event has ts in epoch ms, page and userId)."
        )


def _bad_rows_error(summary: dict[str, Any], path: str) -> DataLoadError:
    parts = [f"{reason} {n} (e.g. {summary['examples'][reason][:160]!r})" for reason, n in summary["bad"].items() if n]
    malformed = summary["examples"].get("malformed_json")
    types = wrong_types(malformed) if malformed else None
    explained = f" The malformed lines are JSON with a field of the wrong type: {types}." if types else ""
    fix = f"{TYPE_FIX} Or" if types else "Fix: correct or remove those rows, or"
    return DataLoadError(
        f"{sum(summary['bad'].values())} of {summary['read']} rows in {path} are bad: {'; '.join(parts)}."
        f"{explained} {fix} rerun with bad_row_policy='quarantine' (sets them aside with their reason) or 'drop'."
    )


def ingest_events(
    spark: SparkSession,
    input_path: str,
    paths: RunPaths,
    bad_row_policy: str = "quarantine",
    valid_from: str = DEFAULT_VALID_FROM,
    valid_until: str = DEFAULT_VALID_UNTIL,
    fmt: str = "auto",
) -> LoadResult:
    """Read, validate and write the clean events once; write ``data_quality.json``; return both.

    ``bad_row_policy``: ``fail`` raises with the counts per reason, ``drop`` leaves bad rows out,
    ``quarantine`` also writes them (``reason``, ``raw``) as JSON lines to the ``quarantine`` dataset of ``paths``.
    A load that raises leaves no ``events.parquet`` behind (on a local ``spark_dir``; see ``_discard``).
    """
    if bad_row_policy not in BAD_ROW_POLICIES:
        raise DataLoadError(
            f"Unknown bad_row_policy {bad_row_policy!r}. Fix: use one of {', '.join(BAD_ROW_POLICIES)}."
        )
    raw = read_events(spark, input_path, fmt)
    files = sorted(raw.inputFiles())
    classified = _with_reason(raw, valid_from, valid_until)
    events_path, quarantine_path = paths.dataset(EVENTS), paths.dataset(QUARANTINE)

    # 1. The one pass over the raw log: counted by the observation while the clean rows are written.
    observation = Observation()
    observed = classified.observe(observation, *_first_pass_metrics())
    with explained_read_failures(input_path, files):
        write_clean_events(observed.filter(F.col("reason").isNull()).select(*clean_columns()), events_path)
    first = observation.get
    summary = _first_summary(first)
    persisted: list[DataFrame] = []
    try:
        _check_structure(summary, input_path, files)
        # 2. Users and duplicate candidates from the columnar copy (a few columns of it).
        written = spark.read.schema(EVENTS_SCHEMA).parquet(events_path)
        users = written.agg(F.count_distinct(F.when(F.col("userId") != "", F.col("userId")))).first()[0]
        candidates = repeated_keys(
            written.select(F.lit(None).cast("string").alias("reason"), key_hash().alias(KEY_HASH))
        )
        # 3. Only when needed: duplicates and the bad rows to set aside.
        final_events, set_aside, bad_rows_from_raw = None, [], True
        # Kept apart from the Parquet it comes from, which may be rewritten below.
        repeated = candidates.localCheckpoint(storageLevel=StorageLevel.DISK_ONLY)
        duplicates, anonymous_id = None, None
        if repeated.count():
            rebuildable, anonymous_id = _anonymous_id(first)
            if rebuildable:
                duplicates = duplicates_from_events(written, repeated, anonymous_id, summary)
                set_aside.extend([duplicates.select("reason", "raw")] if duplicates is not None else [])
            else:
                parsed = classify_events(raw, valid_from, valid_until).persist(StorageLevel.DISK_ONLY)
                persisted.append(parsed)
                marked = mark_duplicates(parsed, repeated)
                with explained_read_failures(input_path, files):
                    summary = _summarise(marked)
                final_events = marked.filter(F.col("reason").isNull()).select(*clean_columns())
                set_aside = [marked.filter(F.col("reason").isNotNull()).select("reason", raw_text().alias("raw"))]
                bad_rows_from_raw = False
        if bad_row_policy == "fail" and any(summary["bad"].values()):
            raise _bad_rows_error(summary, input_path)
        if users == 0:
            bad = ", ".join(f"{r} {n}" for r, n in summary["bad"].items() if n) or "none"
            raise DataLoadError(
                f"No logged-in user is left in {input_path} after cleaning: {summary['kept']} rows kept "
                f"({summary['anonymous']} logged-out/guest), bad rows: {bad}. Fix: check the log has rows "
                f"with a userId and that ts is epoch milliseconds within valid_from {valid_from} .. "
                f"valid_until {valid_until}."
            )
        if final_events is not None:
            write_clean_events(final_events, events_path)
        elif duplicates is not None:
            remove_duplicates(written, repeated, anonymous_id, duplicates, events_path)
        if bad_row_policy == "quarantine":
            if bad_rows_from_raw and any(summary["bad"][r] for r in ROW_REASONS):
                # The one more pass over the raw log, only for a log with bad rows.
                bad_rows = classified.filter(F.col("reason").isNotNull())
                set_aside.insert(0, bad_rows.select("reason", raw_text().alias("raw")))
            rows = set_aside[0] if set_aside else spark.createDataFrame([], "reason string, raw string")
            for more in set_aside[1:]:
                rows = rows.unionByName(more)
            with explained_read_failures(input_path, files):
                rows.write.mode("overwrite").json(quarantine_path)
    except Exception:
        _discard(events_path)
        raise
    finally:
        for df in persisted:
            df.unpersist()
    summary["users"] = users

    quarantined = bad_row_policy == "quarantine"
    zeros = dict.fromkeys(REASONS, 0)
    quality = {
        "input_path": input_path,
        "format": resolve_format(input_path, fmt),
        "files_read": len(files),
        "files": files[:20],
        "bad_row_policy": bad_row_policy,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "rows_read": summary["read"],
        "rows_kept": summary["kept"],
        "rows_excluded": zeros if quarantined else summary["bad"],
        "rows_quarantined": summary["bad"] if quarantined else zeros,
        "anonymous_rows": summary["anonymous"],
        "users": summary["users"],
        "events_path": events_path,
        "quarantine_path": quarantine_path if quarantined else None,
    }
    paths.file(DATA_QUALITY).write_text(json.dumps(quality, indent=2))
    return LoadResult(events=read_clean_events(spark, paths), quality=quality)


def quality_table(quality: dict[str, Any]) -> pd.DataFrame:
    """``data_quality.json`` as a table: rows read, kept (and of them anonymous), and bad rows by reason
    under the run's policy (quarantined, or excluded for ``drop``/``fail``)."""
    read = quality["rows_read"]
    quarantined = quality["bad_row_policy"] == "quarantine"
    bad = quality["rows_quarantined"] if quarantined else quality["rows_excluded"]
    rows = [
        ("read", "", read),
        ("kept", "", quality["rows_kept"]),
        ("kept", "of which logged-out/guest (no userId)", quality["anonymous_rows"]),
        *(("quarantined" if quarantined else "excluded", reason, n) for reason, n in bad.items()),
    ]
    table = pd.DataFrame(rows, columns=["rows", "reason", "count"])
    table["share of read"] = table["count"] / read if read else float("nan")
    return table

"""Validating a raw log into clean events: every row read is either kept or accounted for.

JSON parsing is the expensive part of a 12 GB log, so it happens once: each row gets a ``reason``
(null when clean) in one projection, the result is persisted to disk, duplicates are found with one
aggregation over a hash of their keys, and the counts (one groupBy), the clean Parquet and the
quarantine are all computed from it. No step shuffles the whole log.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from sparkify_utils.artifacts import DATA_QUALITY, EVENTS, QUARANTINE
from sparkify_utils.data.read import (
    CORRUPT_COLUMN,
    EVENTS_SCHEMA,
    REQUIRED_COLUMNS,
    DataLoadError,
    read_clean_events,
    read_events,
    resolve_format,
)
from sparkify_utils.data.schema import ANONYMOUS_AUTH, DAY_MS, PAGES, RAW_FIELDS
from sparkify_utils.paths import RunPaths

#: What ``bad_row_policy`` may be: raise, leave bad rows out, or leave them out and keep a copy.
BAD_ROW_POLICIES = ("fail", "drop", "quarantine")
#: Why a row is not kept, in the order the checks apply (a row gets the first that matches).
REASONS = ("malformed_json", "missing_required", "unknown_page", "ts_out_of_range", "duplicate")
#: Two rows with the same values here are the same event.
DUPLICATE_KEYS = ("userId", "sessionId", "itemInSession", "ts", "page")
DEFAULT_VALID_FROM = "2000-01-01"
DEFAULT_VALID_UNTIL = "2100-01-01"
_KEY_HASH, _REPEATED = "__key_hash", "__repeated"


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


def _anonymous() -> Column:
    """Logged-out/guest rows: eventsim writes ``userId == ""``; the full file uses a placeholder id."""
    return F.coalesce(F.col("auth").isin(*ANONYMOUS_AUTH) | (F.col("userId") == ""), F.lit(False))


def _row_reason(lo: int, hi: int) -> Column:
    """The first reason of ``REASONS`` (except ``duplicate``) a raw row fails, null if it passes them all."""
    ts = F.col("ts")
    missing = ts.isNull() | F.col("page").isNull() | (F.col("userId").isNull() & ~_anonymous())
    return (
        F.when(F.col(CORRUPT_COLUMN).isNotNull(), "malformed_json")
        .when(missing, "missing_required")
        .when(~F.col("page").isin(*PAGES), "unknown_page")
        .when(F.isnan(ts) | (ts < lo) | (ts >= hi), "ts_out_of_range")
    )


def classify_events(
    raw: DataFrame, valid_from: str = DEFAULT_VALID_FROM, valid_until: str = DEFAULT_VALID_UNTIL
) -> DataFrame:
    """Add ``reason`` to every raw row (null if clean) and ``__key_hash``, the hash of ``DUPLICATE_KEYS``.

    Duplicates are not marked here (see ``mark_duplicates``): finding them needs a second look at the rows.
    """
    lo, hi = _epoch_ms(valid_from, "valid_from"), _epoch_ms(valid_until, "valid_until")
    if lo >= hi:
        raise DataLoadError(f"valid_from {valid_from} must be before valid_until {valid_until}.")
    return raw.withColumn("reason", _row_reason(lo, hi)).withColumn(_KEY_HASH, F.xxhash64(*DUPLICATE_KEYS))


def repeated_keys(classified: DataFrame) -> DataFrame:
    """The hashes of ``DUPLICATE_KEYS`` that more than one clean row has (one aggregation; usually few rows)."""
    return (classified.filter(F.col("reason").isNull()).groupBy(_KEY_HASH).count()
            .filter(F.col("count") > 1).select(_KEY_HASH, F.lit(True).alias(_REPEATED)))


def mark_duplicates(classified: DataFrame, repeated: DataFrame, broadcast_limit: int = 2_000_000) -> DataFrame:
    """Mark every copy but one of the clean rows that share ``DUPLICATE_KEYS`` with reason ``duplicate``.

    A window over all rows would shuffle the whole log. Instead, ``repeated`` (``repeated_keys``; persist
    it, every action on the result reads it) holds the few key hashes seen more than once; only rows with
    those hashes go through the window (on the real keys, so a hash collision cannot mark a row). The copy
    kept is the one with the smallest hash of the whole row, so the choice does not depend on the partitioning.
    """
    clean = F.col("reason").isNull()
    n_repeated = repeated.count()
    if n_repeated == 0:
        return classified
    # Small (the usual case): sent to every task, so the log itself is not shuffled for the join.
    lookup = F.broadcast(repeated) if n_repeated <= broadcast_limit else repeated
    flagged = classified.join(lookup, on=_KEY_HASH, how="left")
    candidate = clean & F.col(_REPEATED).isNotNull()
    window = Window.partitionBy(*DUPLICATE_KEYS).orderBy(F.xxhash64(*RAW_FIELDS))
    copies = flagged.filter(candidate).withColumn(
        "reason", F.when(F.row_number().over(window) > 1, F.lit("duplicate"))
    )
    # coalesce() because a null _REPEATED would make ``~candidate`` null, which filter() drops.
    others = flagged.filter(~F.coalesce(candidate, F.lit(False)))
    return others.unionByName(copies).drop(_REPEATED)


def _raw_text() -> Column:
    """The line as read for malformed rows, else the parsed record re-encoded as JSON."""
    return F.coalesce(F.col(CORRUPT_COLUMN), F.to_json(F.struct(*RAW_FIELDS)))


def clean_columns() -> list[Column]:
    """Projection of classified raw rows onto the clean-events contract (``EVENTS_SCHEMA``)."""
    anonymous = _anonymous()
    cast = {f.name: f.dataType for f in EVENTS_SCHEMA.fields}
    cols = {name: F.col(name).cast(cast[name]) for name in RAW_FIELDS}
    cols["registration"] = F.when(~anonymous, cols["registration"])
    cols["userId"] = F.when(anonymous, F.lit("")).otherwise(F.col("userId"))
    # Pure epoch arithmetic: the UTC day whatever the session time zone.
    event_date = F.date_from_unix_date(F.floor(F.col("ts") / DAY_MS).cast("int"))
    return [*(cols[name].alias(name) for name in RAW_FIELDS), event_date.alias("event_date")]


def _summarise(classified: DataFrame) -> dict[str, Any]:
    """One groupBy over the persisted rows: counts, present-column counts, users, an example per reason."""
    anonymous = _anonymous()
    rows = classified.groupBy("reason").agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.count(c).alias(f"present_{c}") for c in REQUIRED_COLUMNS],
        F.sum(anonymous.cast("long")).alias("anonymous"),
        F.countDistinct(F.when(~anonymous, F.col("userId"))).alias("users"),
        # min, not first: the same example whatever order the partitions arrive in.
        F.min(F.when(F.col("reason").isNotNull(), _raw_text())).alias("example"),
    ).collect()
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


def _check_structure(summary: dict[str, Any], path: str, files: list[str]) -> None:
    """Raise for inputs that are not a Sparkify log at all (empty, not JSON lines, no required column)."""
    if summary["read"] == 0:
        raise DataLoadError(
            f"The input {path} is empty ({len(files)} file(s), no lines). "
            "Fix: point input_path at a non-empty event log, or generate one with `sparkify generate`."
        )
    if summary["parsed"] == 0:
        example = (summary["examples"].get("malformed_json") or "")[:120]
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
    parts = [
        f"{reason} {n} (e.g. {summary['examples'][reason][:160]!r})"
        for reason, n in summary["bad"].items() if n
    ]
    return DataLoadError(
        f"{sum(summary['bad'].values())} of {summary['read']} rows in {path} are bad: {'; '.join(parts)}. "
        "Fix: correct or remove those rows, or rerun with bad_row_policy='quarantine' (sets them aside "
        "with their reason) or 'drop'."
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
    """
    if bad_row_policy not in BAD_ROW_POLICIES:
        raise DataLoadError(
            f"Unknown bad_row_policy {bad_row_policy!r}. Fix: use one of {', '.join(BAD_ROW_POLICIES)}."
        )
    raw = read_events(spark, input_path, fmt)
    files = sorted(raw.inputFiles())
    # Parsed once, kept on local disk (not in the driver's heap, which in local mode is the executor's).
    parsed = classify_events(raw, valid_from, valid_until).persist(StorageLevel.DISK_ONLY)
    # Read by the counts, the clean write and the quarantine write: aggregated once, not three times.
    repeated = repeated_keys(parsed).persist()
    events_path, quarantine_path = paths.dataset(EVENTS), paths.dataset(QUARANTINE)
    try:
        classified = mark_duplicates(parsed, repeated)
        summary = _summarise(classified)
        _check_structure(summary, input_path, files)
        if bad_row_policy == "fail" and any(summary["bad"].values()):
            raise _bad_rows_error(summary, input_path)
        if summary["users"] == 0:
            bad = ", ".join(f"{r} {n}" for r, n in summary["bad"].items() if n) or "none"
            raise DataLoadError(
                f"No logged-in user is left in {input_path} after cleaning: {summary['kept']} rows kept "
                f"({summary['anonymous']} logged-out/guest), bad rows: {bad}. Fix: check the log has rows "
                f"with a userId and that ts is epoch milliseconds within valid_from {valid_from} .. "
                f"valid_until {valid_until}."
            )
        clean = classified.filter(F.col("reason").isNull()).select(*clean_columns())
        # Not partitioned by day: one file per task instead of one per (task, day), thousands of small
        # files on the full log. Filters on ts still skip row groups by their min/max statistics.
        clean.write.mode("overwrite").parquet(events_path)
        if bad_row_policy == "quarantine":
            bad_rows = classified.filter(F.col("reason").isNotNull())
            bad_rows.select("reason", _raw_text().alias("raw")).write.mode("overwrite").json(quarantine_path)
    finally:
        repeated.unpersist()
        parsed.unpersist()

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

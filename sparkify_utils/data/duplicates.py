"""Duplicate events: finding the few keys seen more than once, marking every copy but one, and taking the
copies out of ``events.parquet`` (only the part files that hold them, when those are on a local disk)."""

from __future__ import annotations

import contextlib
import os
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from sparkify_utils.data.read import CORRUPT_COLUMN, EVENTS_SCHEMA, RAW_SCHEMA, write_clean_events
from sparkify_utils.data.rows import DUPLICATE_KEYS, KEY_HASH, anonymous, clean_columns, key_hash, raw_text
from sparkify_utils.data.schema import RAW_FIELDS

_REPEATED = "__repeated"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_FILE, _ROW = "__file", "__row"


def repeated_keys(classified: DataFrame) -> DataFrame:
    """The hashes of ``DUPLICATE_KEYS`` that more than one clean row has (one aggregation; usually few rows)."""
    return (
        classified.filter(F.col("reason").isNull())
        .groupBy(KEY_HASH)
        .count()
        .filter(F.col("count") > 1)
        .select(KEY_HASH, F.lit(True).alias(_REPEATED))
    )


def mark_duplicates(classified: DataFrame, repeated: DataFrame, broadcast_limit: int = 2_000_000) -> DataFrame:
    """Mark every copy but one of the clean rows that share ``DUPLICATE_KEYS`` with reason ``duplicate``.

    A window over all rows would shuffle the whole log. Instead, ``repeated`` (``repeated_keys``; persist
    it, every action on the result reads it) holds the few key hashes seen more than once; only rows with
    those hashes go through the window (on the real keys, so a hash collision or a candidate that only
    shares the hashed keys cannot mark a row). The copy kept is the one with the smallest hash of the whole
    row, so the choice does not depend on the partitioning.
    """
    clean = F.col("reason").isNull()
    n_repeated = repeated.count()
    if n_repeated == 0:
        return classified
    # Small (the usual case): sent to every task, so the log itself is not shuffled for the join.
    lookup = F.broadcast(repeated) if n_repeated <= broadcast_limit else repeated
    flagged = classified.join(lookup, on=KEY_HASH, how="left")
    candidate = clean & F.col(_REPEATED).isNotNull()
    window = Window.partitionBy(*DUPLICATE_KEYS).orderBy(F.xxhash64(*RAW_FIELDS))
    copies = flagged.filter(candidate).withColumn("reason", F.when(F.row_number().over(window) > 1, F.lit("duplicate")))
    # coalesce() because a null _REPEATED would make ``~candidate`` null, which filter() drops.
    others = flagged.filter(~F.coalesce(candidate, F.lit(False)))
    return others.unionByName(copies).drop(_REPEATED)


def restorable() -> Column:
    """True for a clean row that ``as_raw`` rebuilds exactly from ``events.parquet`` (values and types),
    given one id for all logged-out rows (checked apart): whole-millisecond ``ts`` and ``registration``,
    no ``registration`` on logged-out rows (the clean events drop it), integers that fit the clean types."""
    ts, registration = F.col("ts"), F.col("registration")

    def whole(c: Column) -> Column:
        return c.isNull() | (c == c.cast("long").cast("double"))

    def fits_int(name: str) -> Column:
        return F.col(name).isNull() | F.col(name).between(_INT_MIN, _INT_MAX)

    restorable = (
        whole(ts)
        & fits_int("itemInSession")
        & fits_int("status")
        & F.when(anonymous(), registration.isNull()).otherwise(whole(registration))
    )
    return F.coalesce(restorable, F.lit(False))


def as_raw(events: DataFrame, anonymous_id: str | None, *keep: str) -> DataFrame:
    """The raw rows (``RAW_SCHEMA`` types, as classified clean rows) rebuilt from the clean events.

    Exact when the first pass found every clean row restorable: the casts only widen back, and a logged-out
    row's blanked ``userId`` becomes the log's one id for them again.
    """
    raw_type = {f.name: f.dataType for f in RAW_SCHEMA.fields}
    cols = {name: F.col(name).cast(raw_type[name]) for name in RAW_FIELDS}
    cols["userId"] = F.when(F.col("userId") == "", F.lit(anonymous_id)).otherwise(F.col("userId"))
    return events.select(
        *(cols[name].alias(name) for name in RAW_FIELDS),
        F.lit(None).cast("string").alias(CORRUPT_COLUMN),
        F.lit(None).cast("string").alias("reason"),
        key_hash().alias(KEY_HASH),
        *keep,
    )


def located(events: DataFrame) -> DataFrame:
    """``events`` (read from Parquet) with the file and the row index within it of each row."""
    return events.select("*", F.col("_metadata.file_path").alias(_FILE), F.col("_metadata.row_index").alias(_ROW))


def duplicates_from_events(
    written: DataFrame, repeated: DataFrame, anonymous_id: str | None, summary: dict[str, Any]
) -> DataFrame | None:
    """Mark duplicates on the raw rows rebuilt from the clean events and count them into ``summary``.

    Returns the duplicate copies (``reason``, ``raw``, and where each is: its Parquet file and row index),
    kept on local disk by a local checkpoint; None when the candidates only share the hashed keys.
    """
    marked = mark_duplicates(as_raw(located(written), anonymous_id, _FILE, _ROW), repeated)
    duplicates = (
        marked.filter(F.col("reason") == "duplicate")
        .select("reason", raw_text().alias("raw"), anonymous().alias("anonymous"), _FILE, _ROW)
        .localCheckpoint(storageLevel=StorageLevel.DISK_ONLY)
    )
    counts = duplicates.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(F.when(F.col("anonymous"), 1)).alias("anonymous"),
        F.min("raw").alias("example"),
    ).first()
    if counts["rows"] == 0:
        return None
    summary["bad"]["duplicate"] = counts["rows"]
    summary["examples"]["duplicate"] = counts["example"]
    summary["kept"] -= counts["rows"]
    summary["anonymous"] -= counts["anonymous"]
    return duplicates


def remove_duplicates(
    written: DataFrame, repeated: DataFrame, anonymous_id: str | None, duplicates: DataFrame, events_path: str
) -> None:
    """Take the duplicate copies out of ``events.parquet``.

    When the Parquet files that hold them are visible here (a local ``spark_dir``), only those files are
    rewritten: their rows but the copies (found by file and row index) are appended as new files, then the
    old files are deleted. Otherwise the whole dataset is rewritten, from a local checkpoint of the events
    without the copies (the Parquet they are computed from is the one replaced).
    """
    spark = written.sparkSession
    files = sorted(r[_FILE] for r in duplicates.select(_FILE).distinct().collect())
    local = [unquote(urlparse(f).path) if f.startswith("file:") else None for f in files]
    if all(path and os.path.isfile(path) for path in local):
        rows = located(spark.read.schema(EVENTS_SCHEMA).parquet(*files))
        copies = F.broadcast(duplicates.select(_FILE, _ROW))
        kept = rows.join(copies, [_FILE, _ROW], "left_anti").select(*EVENTS_SCHEMA.fieldNames())
        write_clean_events(kept, events_path, mode="append")
        for path in local:
            for name in (path, os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.crc")):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)
        return
    marked = mark_duplicates(as_raw(written, anonymous_id), repeated)
    clean = marked.filter(F.col("reason").isNull()).select(*clean_columns())
    write_clean_events(clean.localCheckpoint(storageLevel=StorageLevel.DISK_ONLY), events_path)
